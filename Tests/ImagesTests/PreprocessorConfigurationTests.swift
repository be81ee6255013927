import Foundation
import XCTest

@testable import Images

final class PreprocessorConfigurationTests: XCTestCase {
    private func parse(_ json: String) throws -> PreprocessorConfiguration {
        try JSONDecoder().decode(PreprocessorConfiguration.self, from: Data(json.utf8))
    }

    func testOpenAIsIntegerSizesReadAsShortestEdgeAndSquareCrop() throws {
        let c = try Fixtures.configuration("clip336")
        XCTAssertEqual(c.size, .shortestEdge(336))
        XCTAssertEqual([c.cropHeight, c.cropWidth], [336, 336])
        XCTAssertEqual(c.imageMean, PreprocessorConfiguration.openAIMean)
        XCTAssertEqual(c.rescaleFactor, 1.0 / 255.0)
        XCTAssertTrue(c.doConvertRGB && c.doRescale && c.doNormalize && c.doResize && c.doCenterCrop)
    }

    func testDictionarySizesAreRead() throws {
        let c = try Fixtures.configuration("oddcrop")
        XCTAssertEqual(c.size, .shortestEdge(19))
        XCTAssertEqual([c.cropHeight, c.cropWidth], [24, 15])
        XCTAssertEqual(try parse(#"{"size": {"height": 20, "width": 40}}"#).size, .exact(height: 20, width: 40))
    }

    func testMissingKeysTakeCLIPImageProcessorDefaults() throws {
        let c = try parse("{}")
        XCTAssertEqual(c, PreprocessorConfiguration())
        XCTAssertEqual(c.size, .shortestEdge(224))
    }

    func testAScalarMeanAppliesToEveryChannel() throws {
        XCTAssertEqual(try parse(#"{"image_mean": 0.5, "image_std": 0.25}"#).imageStd, [0.25, 0.25, 0.25])
    }

    func testResampleFiltersOtherThanBicubicAreRejectedByName() {
        XCTAssertThrowsError(try parse(#"{"resample": 2}"#)) {
            XCTAssertEqual($0 as? PreprocessingError, .unsupportedResample(2, name: "bilinear"))
            XCTAssertTrue("\($0)".contains("only 3 (bicubic"), "\($0)")
        }
    }

    func testUnsupportedOrInvalidSizesAreRejected() {
        for json in [#"{"size": {"shortest_edge": 224, "longest_edge": 1333}}"#, #"{"size": 0}"#,
                     #"{"crop_size": {"height": 5}}"#, #"{"image_mean": [0.5, 0.5]}"#, #"{"image_std": [1, 0, 1]}"#] {
            XCTAssertThrowsError(try parse(json), json) { error in
                guard case .invalidConfiguration = error as? PreprocessingError else {
                    return XCTFail("\(json): \(error)")
                }
            }
        }
    }

    func testAMissingFileIsReportedWithItsPath() {
        let missing = "/nonexistent/preprocessor_config.json"
        XCTAssertThrowsError(try PreprocessorConfiguration(contentsOf: missing)) { error in
            guard case .unreadableConfiguration(let path, _) = error as? PreprocessingError else {
                return XCTFail("\(error)")
            }
            XCTAssertEqual(path, "/nonexistent/preprocessor_config.json")
        }
    }
}
