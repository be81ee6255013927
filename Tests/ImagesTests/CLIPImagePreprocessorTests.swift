import TensorCore
import XCTest

@testable import Images

final class CLIPImagePreprocessorTests: XCTestCase {
    private let references = Fixtures.references
    private let configurations = ["clip336", "small30", "oddcrop"]

    private func preprocessor(_ config: String, padToSquare: Bool = false) throws -> CLIPImagePreprocessor {
        try CLIPImagePreprocessor(configuration: Fixtures.configuration(config), padToSquare: padToSquare)
    }

    /// Fixture files with a reference under `prefix` (e.g. "small30." → "small30.<file>").
    private func files(withReference prefix: String) -> [String] {
        Fixtures.images.filter { references.has(prefix + $0) }
    }

    /// The bytes before rescale/normalize against transformers' for every file and configuration:
    /// reproducing Pillow's fixed-point resample makes them identical.
    func testResizedAndCroppedBytesEqualTransformersForEveryConfiguration() throws {
        for config in configurations {
            let p = try preprocessor(config)
            let names = files(withReference: "\(config).")
            XCTAssertGreaterThanOrEqual(names.count, config == "clip336" ? 4 : 40, config)
            var worst = 0, values = 0, equal = 0.0
            for name in names {
                let image = try ImageDecoder.decode(try Fixtures.bytes(name))
                let out = try p.resizedAndCropped(image)
                let expected = references.bytes("\(config).\(name)")
                XCTAssertEqual([3, out.height, out.width], references.shape("\(config).\(name)"), "\(config) \(name)")
                let actual = channelsFirst(out)
                guard actual.count == expected.count else { continue }
                let (d, share, _) = compare(actual, expected)
                worst = max(worst, d)
                equal += share * Double(actual.count)
                values += actual.count
            }
            print("\(config): \(names.count) images, \(values) values, max |Δ| = \(worst)/255, "
                  + String(format: "%.4f%% identical", 100 * equal / Double(values)))
            XCTAssertEqual(worst, 0, "\(config): max |Δ| = \(worst)")
        }
    }

    func testNormalisedPixelValuesMatchTransformers() throws {
        var checked = 0
        for config in configurations {
            let p = try preprocessor(config)
            for name in files(withReference: "\(config).norm.") {
                let out = try p(try ImageDecoder.decode(try Fixtures.bytes(name)))
                let key = "\(config).norm.\(name)"
                assertClose(out, references.floats(key), references.shape(key), "\(config) \(name)")
                checked += 1
            }
        }
        XCTAssertGreaterThanOrEqual(checked, 5)
    }

    /// At 336 the F32 references would take 1.35 MB each; rescale+normalize maps each byte on its own, so
    /// transformers' output is its value map (`clip336.lut`) applied to its own byte output.
    func testCLIP336PixelValuesMatchTransformersThroughItsValueMap() throws {
        let p = try preprocessor("clip336")
        let (lutInput, lutOutput) = (references.bytes("lut.input"), references.floats("clip336.lut"))
        var map = [[Float]](repeating: [Float](repeating: .nan, count: 256), count: 3)
        for i in 0..<256 {
            for c in 0..<3 { map[c][Int(lutInput[3 * i + c])] = lutOutput[c * 256 + i] }
        }
        for name in files(withReference: "clip336.") {
            let bytes = references.bytes("clip336.\(name)")
            let plane = bytes.count / 3
            let expected = (0..<bytes.count).map { map[$0 / plane][Int(bytes[$0])] }
            let out = try p(try ImageDecoder.decode(try Fixtures.bytes(name)))
            assertClose(out, expected, [3, 336, 336], "clip336 \(name)")
        }
    }

    func testRescaleAndNormalizeMapEveryByteValueAsTransformers() throws {
        let input = references.bytes("lut.input")
        let image = try RGBImage(width: 16, height: 16, pixels: input)
        for config in configurations {
            var configuration = try Fixtures.configuration(config)
            configuration.doResize = false
            configuration.doCenterCrop = false
            let out = try CLIPImagePreprocessor(configuration: configuration)(image)
            assertClose(out, references.floats("\(config).lut"), [3, 16, 16], "\(config) value map", tolerance: 0)
        }
    }

    func testPadModeMatchesLLaVAsExpand2SquareThenTheProcessor() throws {
        var checked = 0
        for config in configurations {
            let p = try preprocessor(config, padToSquare: true)
            XCTAssertEqual(p.transparency, .discard, "LLaVA's loader drops alpha before padding")
            for name in files(withReference: "pad.\(config).norm.") {
                let image = try ImageDecoder.decode(try Fixtures.bytes(name))
                let bytes = channelsFirst(try p.resizedAndCropped(image))
                let difference = compare(bytes, references.bytes("pad.\(config).\(name)")).maxDifference
                XCTAssertEqual(difference, 0, "\(config) \(name)")
                assertClose(try p(image), references.floats("pad.\(config).norm.\(name)"),
                            references.shape("pad.\(config).norm.\(name)"), "pad \(config) \(name)")
                checked += 1
            }
        }
        XCTAssertGreaterThanOrEqual(checked, 7)
    }

    func testPaddingFillIsLLaVAsTruncatedMeanColour() {
        let fill = RGBImage.squarePaddingFill(mean: PreprocessorConfiguration.openAIMean)
        XCTAssertEqual([fill.0, fill.1, fill.2], [122, 116, 104])
    }

    func testTransparentImagesAreCompositedOntoWhiteAsTransformers() throws {
        let names = Fixtures.images.filter { references.has("composited.\($0)") }
        XCTAssertGreaterThanOrEqual(names.count, 8)
        for name in names {
            let image = try ImageDecoder.decode(try Fixtures.bytes(name))
            XCTAssertEqual(image.compositedOntoWhite().pixels, references.bytes("composited.\(name)"), name)
        }
    }

    func testBatchStacksTheSingleImageOutputs() throws {
        let p = try preprocessor("small30")
        let images = try ["png_rgb_257x411.png", "jpeg_1x300.jpg", "png_rgba_199x131.png"].map {
            try ImageDecoder.decode(try Fixtures.bytes($0))
        }
        let batch = try p.batch(images)
        XCTAssertEqual(batch.shape, [3, 3, 30, 30])
        for (i, image) in images.enumerated() {
            XCTAssertEqual(batch.slice(i).scalars, try p(image).scalars)
        }
        XCTAssertThrowsError(try p.batch([])) { error in
            guard case .batchShapeMismatch = error as? PreprocessingError else { return XCTFail("\(error)") }
        }
    }

    func testImagesOfDifferentOutputSizesCannotBeBatchedWithoutACrop() throws {
        var configuration = try Fixtures.configuration("small30")
        configuration.doCenterCrop = false
        let p = try CLIPImagePreprocessor(configuration: configuration)
        let images = try ["png_rgb_257x411.png", "png_rgb_30x30.png"].map {
            try ImageDecoder.decode(try Fixtures.bytes($0))
        }
        XCTAssertEqual(try p(images[0]).shape, [3, 47, 30])  // int(30 * 411 / 257) = 47
        XCTAssertTrue(p.outputSize(width: 257, height: 411) == (47, 30))
        let padded = try CLIPImagePreprocessor(configuration: configuration, padToSquare: true)
        XCTAssertTrue(padded.outputSize(width: 257, height: 411) == (30, 30))
        XCTAssertEqual(try padded(images[0]).shape, [3, 30, 30])
        XCTAssertThrowsError(try p.batch(images)) { error in
            guard case .batchShapeMismatch = error as? PreprocessingError else { return XCTFail("\(error)") }
        }
    }

    func testOutputsOverThePixelLimitAreRejected() throws {
        var configuration = try Fixtures.configuration("clip336")
        configuration.doCenterCrop = false
        let p = try CLIPImagePreprocessor(configuration: configuration, maxOutputPixels: 1_000_000)
        let column = try ImageDecoder.decode(try Fixtures.bytes("png_rgb_1x300.png"))
        XCTAssertThrowsError(try p(column)) {
            XCTAssertEqual($0 as? PreprocessingError, .outputTooLarge(width: 336, height: 100_800, limit: 1_000_000))
        }
    }

    private func assertClose(
        _ actual: Tensor, _ expected: [Float], _ shape: [Int], _ what: String, tolerance: Float = 1e-5,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertEqual(actual.shape, shape, "\(what): shape", file: file, line: line)
        guard actual.count == expected.count else { return }
        let worst = zip(actual.scalars, expected).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(worst, tolerance, "\(what): max |Δ| = \(worst)", file: file, line: line)
    }
}
