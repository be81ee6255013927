import Foundation
import Models
import Weights
import XCTest

/// A broken checkpoint directory is an error that names the problem, never a crash.
final class ModelLoadingErrorTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("accm-\(UUID().uuidString)")
        let source = try Fixture("gpt2").directory
        try FileManager.default.copyItem(atPath: source, toPath: directory.path)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    private var weights: URL { directory.appendingPathComponent("model.safetensors") }
    private var config: URL { directory.appendingPathComponent("config.json") }

    func testATruncatedWeightFileIsReportedAsCorrupt() throws {
        let bytes = try Data(contentsOf: weights)
        try bytes.prefix(bytes.count / 2).write(to: weights)
        XCTAssertThrowsError(try GPT2(directory: directory.path)) { error in
            guard case .corruptFile(let path, _)? = error as? WeightsError else { return XCTFail("\(error)") }
            XCTAssertTrue(path.hasSuffix("model.safetensors"))
        }
    }

    func testAConfigWithTheWrongWidthNamesTheMisshapenTensor() throws {
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: config)) as! [String: Any]
        json["n_embd"] = 64
        try JSONSerialization.data(withJSONObject: json).write(to: config)
        XCTAssertThrowsError(try GPT2(directory: directory.path)) { error in
            guard case .wrongShape(let name, _, let found, _)? = error as? WeightsError else { return XCTFail("\(error)") }
            XCTAssertEqual(name, "transformer.wte.weight")
            XCTAssertEqual(found, [120, 32])
        }
    }

    func testAConfigMissingARequiredKeyNamesIt() throws {
        try Data(#"{"model_type": "llama", "hidden_size": 8}"#.utf8).write(to: config)
        XCTAssertThrowsError(try Llama(directory: directory.path)) { error in
            XCTAssertTrue("\(error)".contains("intermediate_size"), "\(error)")
        }
    }

    func testAnUnsupportedGPT2AttentionVariantNamesTheKeyTheFileSets() throws {
        let original = try JSONSerialization.jsonObject(with: Data(contentsOf: config)) as! [String: Any]
        for (key, value) in [("scale_attn_weights", false), ("scale_attn_by_inverse_layer_idx", true), ("reorder_and_upcast_attn", true)] {
            var json = original
            json[key] = value
            try JSONSerialization.data(withJSONObject: json).write(to: config)
            XCTAssertThrowsError(try GPT2(directory: directory.path), key) { error in
                guard case .unsupported(let what)? = error as? ModelError else { return XCTFail("\(key): \(error)") }
                XCTAssertTrue(what.contains("variant \(key): \(value)"), "\(key): \(what)")
            }
        }
    }

    func testAnUnsupportedRopeScalingIsRefusedByName() throws {
        let llama = try Fixture("llama").directory
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: llama + "/config.json"))) as! [String: Any]
        json["rope_parameters"] = ["rope_type": "yarn", "rope_theta": 10000.0]
        try JSONSerialization.data(withJSONObject: json).write(to: config)
        XCTAssertThrowsError(try LlamaConfigurationLoader.load(directory.path)) { error in
            XCTAssertTrue("\(error)".contains("yarn"), "\(error)")
        }
    }

    func testAMissingDirectoryIsReportedWithItsPath() {
        XCTAssertThrowsError(try CLIP.Vision(directory: "/nonexistent/clip")) { error in
            XCTAssertTrue("\(error)".contains("/nonexistent/clip"), "\(error)")
        }
    }
}

/// Decodes a LLaMA config the way the model loader does.
enum LlamaConfigurationLoader {
    static func load(_ directory: String) throws -> LlamaConfiguration {
        try ConfigFile.load(LlamaConfiguration.self, from: directory)
    }
}
