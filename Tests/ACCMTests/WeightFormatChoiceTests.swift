import ACCM
import Foundation
import Models
import Tensor
import Weights
import XCTest

/// The weight format per component: from the manifest's "weights", overridden by `--weights` settings, and
/// what a loaded stage then holds.
final class WeightFormatChoiceTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("accm-weights-\(UUID().uuidString)")
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/accm/model")
        try FileManager.default.copyItem(at: source, to: directory)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    private func writeManifest(weights: Any?) throws {
        let url = directory.appendingPathComponent("accm.json")
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        json["weights"] = weights
        try JSONSerialization.data(withJSONObject: json).write(to: url)
    }

    func testSettingsApplyInOrderToAllOrOneComponent() throws {
        var choice = WeightFormatChoice()
        try choice.apply(settings: ["int8", "vision=f32", "llava=stored"])
        XCTAssertEqual(choice.format(for: .vision), .f32)
        XCTAssertEqual(choice.format(for: .captionLanguageModel), .int8)
        XCTAssertNil(choice.format(for: .llava))
        XCTAssertThrowsError(try choice.apply(settings: ["int3"])) { XCTAssertTrue("\($0)".contains("'int3' is not a weight format"), "\($0)") }
        XCTAssertThrowsError(try choice.apply(settings: ["decoder=int4"])) {
            XCTAssertTrue("\($0)".contains("unknown component 'decoder'"), "\($0)")
        }
    }

    func testTheManifestChoosesPerComponentAndTheCommandLineOverrides() throws {
        try writeManifest(weights: ["llava": "bf16", "vision": "f32"])
        let model = try ModelDirectory(directory.path)
        XCTAssertEqual(model.matrixFormat(.llava), .bf16)
        XCTAssertEqual(model.matrixFormat(.vision), .f32)
        XCTAssertNil(model.matrixFormat(.selector))
        let decoder = try DecoderStage.load(model)
        XCTAssertEqual(decoder.languageModel.matrixFormats, [.bf16])

        let overridden = try ModelDirectory(directory.path, weightSettings: ["llava=int8"])
        XCTAssertEqual(overridden.matrixFormat(.llava), .int8)
        XCTAssertEqual(overridden.matrixFormat(.vision), .f32)
        // The fixture's LLaMA is 48 wide: only down_proj (96 inputs) holds whole blocks of 32; the rest keeps its
        // stored type (f32 in this fixture).
        let quantized = try DecoderStage.load(overridden)
        XCTAssertEqual(quantized.languageModel.matrixFormats, [.int8, .f32])

        try writeManifest(weights: "int4")
        XCTAssertEqual(try ModelDirectory(directory.path).matrixFormat(.captionMapper), .int4)
    }

    func testABadManifestValueNamesTheKey() throws {
        for (weights, expected) in [(["llava": "int2"], "'weights.llava'"), (["decoder": "int8"], "unknown component"),
                                    ("fp8" as Any, "'fp8' is not one of")] as [(Any, String)] {
            try writeManifest(weights: weights)
            XCTAssertThrowsError(try ModelDirectory(directory.path)) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(weights): \(error)")
                XCTAssertTrue("\(error)".contains("accm.json"), "\(error)")
            }
        }
    }

    func testTheKVCacheFormatComesFromTheManifestOrTheSettingAndReachesBothLanguageModels() throws {
        XCTAssertEqual(try ModelDirectory(directory.path).kvCache, .f32, "exact unless asked")
        let url = directory.appendingPathComponent("accm.json")
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        json["kv_cache"] = "f16"
        try JSONSerialization.data(withJSONObject: json).write(to: url)
        let model = try ModelDirectory(directory.path)
        XCTAssertEqual(model.kvCache, .f16)
        XCTAssertEqual(try DecoderStage.load(model).languageModel.makeCache(capacity: 1).format, .f16)
        XCTAssertEqual(try CaptionStage.load(model).languageModel.makeCache(capacity: 1).format, .f16)
        XCTAssertEqual(try ModelDirectory(directory.path, kvCache: .f32).kvCache, .f32, "the setting overrides")

        json["kv_cache"] = "int8"
        try JSONSerialization.data(withJSONObject: json).write(to: url)
        XCTAssertThrowsError(try ModelDirectory(directory.path)) { error in
            XCTAssertTrue("\(error)".contains("kv_cache") && "\(error)".contains("'int8' is not one of 'f32', 'f16'"), "\(error)")
        }
    }
}
