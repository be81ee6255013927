import Foundation
import Models
import Weights
import XCTest

/// Every config value a model is built from is checked at load: a zero head count, a non-positive epsilon, a
/// fractional or quoted size is an error naming the file and the key, never a division by zero or a
/// runaway allocation.
final class ConfigValidationTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("accm-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    /// The fixture's config.json with `value` at `path` ("text_config.num_attention_heads"), decoded as `T`.
    private func decode<T: Decodable>(
        _ type: T.Type, fixture: String, _ path: String, _ value: Any
    ) throws -> T {
        try decode(type, fixture: fixture, changing: { _ in }, path, value)
    }

    /// The fixture's config.json changed by `edit` (on the whole JSON object), then `value` set at `path`.
    private func decode<T: Decodable>(
        _ type: T.Type, fixture: String, changing edit: (inout [String: Any]) -> Void, _ path: String = "", _ value: Any = 0
    ) throws -> T {
        let source = try Fixture(fixture).directory + "/config.json"
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: source))) as! [String: Any]
        edit(&json)
        guard !path.isEmpty else {
            let file = directory.appendingPathComponent("config.json")
            try JSONSerialization.data(withJSONObject: json).write(to: file)
            return try ConfigFile.decode(T.self, path: file.path)
        }
        func set(_ dict: inout [String: Any], _ keys: ArraySlice<Substring>) {
            let key = String(keys.first!)
            if keys.count == 1 {
                dict[key] = value
            } else {
                var inner = dict[key] as? [String: Any] ?? [:]
                set(&inner, keys.dropFirst())
                dict[key] = inner
            }
        }
        set(&json, path.split(separator: ".")[...])
        let file = directory.appendingPathComponent("config.json")
        try JSONSerialization.data(withJSONObject: json).write(to: file)
        return try ConfigFile.decode(T.self, path: file.path)
    }

    private struct LlavaText: Decodable { let text_config: LlamaConfiguration }

    private func assertRefused<T: Decodable>(
        _ type: T.Type, fixture: String, _ path: String, _ value: Any, mentions expected: String,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertThrowsError(try decode(type, fixture: fixture, path, value), file: file, line: line) { error in
            guard case .invalidConfig(let at, let reason)? = error as? WeightsError else {
                return XCTFail("\(path) = \(value): \(error)", file: file, line: line)
            }
            XCTAssertTrue(at.hasSuffix("config.json"), at, file: file, line: line)
            let key = String(path.split(separator: ".").last!)
            XCTAssertTrue(reason.contains(key), "\(path) = \(value): '\(reason)' does not name the key", file: file, line: line)
            XCTAssertTrue(reason.contains(expected), "\(path) = \(value): '\(reason)'", file: file, line: line)
        }
    }

    func testZeroHeadsAreRefusedInEveryModel() {
        assertRefused(LlamaConfiguration.self, fixture: "llama", "num_attention_heads", 0, mentions: "at least 1")
        assertRefused(LlamaConfiguration.self, fixture: "llama", "num_key_value_heads", 0, mentions: "at least 1")
        assertRefused(LlavaText.self, fixture: "llava", "text_config.num_attention_heads", 0, mentions: "at least 1")
        assertRefused(CLIPConfiguration.self, fixture: "clip", "vision_config.num_attention_heads", 0, mentions: "at least 1")
        assertRefused(CLIPConfiguration.self, fixture: "clip", "text_config.num_attention_heads", 0, mentions: "at least 1")
        assertRefused(GPT2Configuration.self, fixture: "gpt2", "n_head", 0, mentions: "at least 1")
        assertRefused(CaptionSelectorConfiguration.self, fixture: "selector", "num_heads", 0, mentions: "at least 1")
        assertRefused(CaptionMapperConfiguration.self, fixture: "mapper", "num_heads", 0, mentions: "at least 1")
    }

    func testEpsilonsMustBeFiniteAndPositive() {
        for value in [0.0, -1e-5] {
            assertRefused(LlamaConfiguration.self, fixture: "llama", "rms_norm_eps", value, mentions: "greater than 0")
            assertRefused(GPT2Configuration.self, fixture: "gpt2", "layer_norm_epsilon", value, mentions: "greater than 0")
            assertRefused(CLIPConfiguration.self, fixture: "clip", "vision_config.layer_norm_eps", value, mentions: "greater than 0")
            assertRefused(CaptionMapperConfiguration.self, fixture: "mapper", "layer_norm_eps", value, mentions: "greater than 0")
            assertRefused(CaptionSelectorConfiguration.self, fixture: "selector", "layer_norm_eps", value, mentions: "greater than 0")
        }
        assertRefused(LlamaConfiguration.self, fixture: "llama", "rope_parameters.rope_theta", -1.0, mentions: "greater than 0")
    }

    func testSizesMustBeWholePositiveNumbersWithinBounds() {
        assertRefused(LlamaConfiguration.self, fixture: "llama", "hidden_size", 4.5, mentions: "whole number, got 4.5")
        assertRefused(LlamaConfiguration.self, fixture: "llama", "intermediate_size", "64", mentions: "the string \"64\"")
        assertRefused(LlamaConfiguration.self, fixture: "llama", "max_position_embeddings", -3, mentions: "got -3")
        assertRefused(LlamaConfiguration.self, fixture: "llama", "vocab_size", 1 << 40, mentions: "at least 1")
        assertRefused(GPT2Configuration.self, fixture: "gpt2", "n_positions", 0, mentions: "at least 1")
        assertRefused(CLIPConfiguration.self, fixture: "clip", "vision_config.patch_size", 0, mentions: "at least 1")
        assertRefused(CLIPConfiguration.self, fixture: "clip", "vision_config.patch_size", 4096, mentions: "larger than image_size")
        assertRefused(CaptionMapperConfiguration.self, fixture: "mapper", "prefix_length", true, mentions: "whole number")
    }

    func testAWholeNumberWrittenWithAZeroFractionIsAccepted() throws {
        let config = try decode(LlamaConfiguration.self, fixture: "llama", "num_hidden_layers", 2.0)
        XCTAssertEqual(config.layerCount, 2)
    }

    /// The rotary base of a config that states it in several places, with transformers 5.24's precedence
    /// (each expected value is what `LlamaConfig.from_dict(...).rope_parameters["rope_theta"]` gives there).
    func testRopeThetaFollowsTransformersPrecedenceInBothLayouts() throws {
        func theta(_ keys: [String: Any]) throws -> Float {
            try decode(LlamaConfiguration.self, fixture: "llama", changing: { json in
                for key in ["rope_theta", "rope_scaling", "rope_parameters"] { json[key] = nil }
                for (key, value) in keys { json[key] = value }
            }).ropeTheta
        }
        let parameters: [String: Any] = ["rope_type": "default", "rope_theta": 20_000.0]
        // transformers 4 layout: a top-level rope_theta (and a rope_scaling without a theta).
        XCTAssertEqual(try theta(["rope_theta": 5_000.0]), 5_000)
        XCTAssertEqual(try theta(["rope_theta": 7_000.0, "rope_scaling": NSNull()]), 7_000)
        XCTAssertEqual(try theta(["rope_theta": 7_000.0, "rope_scaling": ["type": "default"]]), 7_000)
        // transformers 5 layout: rope_parameters.rope_theta, which wins over a top-level rope_theta.
        XCTAssertEqual(try theta(["rope_parameters": parameters]), 20_000)
        XCTAssertEqual(try theta(["rope_theta": 5_000.0, "rope_parameters": parameters]), 20_000)
        XCTAssertEqual(try theta(["rope_theta": 5_000.0, "rope_parameters": ["rope_type": "default"]]), 5_000)
        // Both objects: a non-empty rope_scaling replaces rope_parameters entirely (its theta, or else the top-level one).
        XCTAssertEqual(try theta(["rope_scaling": ["type": "default", "rope_theta": 30_000.0], "rope_parameters": parameters]), 30_000)
        XCTAssertEqual(
            try theta(["rope_theta": 7_000.0, "rope_scaling": ["type": "default"], "rope_parameters": parameters]), 7_000)
        XCTAssertEqual(try theta(["rope_scaling": ["type": "default"], "rope_parameters": parameters]), 10_000)
        // An empty rope_scaling does not count.
        XCTAssertEqual(try theta(["rope_scaling": [String: Any](), "rope_parameters": parameters]), 20_000)
        XCTAssertEqual(try theta([:]), 10_000)
    }

    func testAnUnsupportedRopeTypeNamesTheObjectItCameFrom() {
        assertRefused(LlamaConfiguration.self, fixture: "llama", "rope_scaling.type", "linear", mentions: "rope_scaling.type")
        assertRefused(LlamaConfiguration.self, fixture: "llama", "rope_parameters.rope_type", "yarn", mentions: "'yarn'")
        // rope_scaling wins, so its type is the one refused even beside a default rope_parameters.
        assertRefused(LlamaConfiguration.self, fixture: "llama", "rope_scaling.rope_type", "dynamic", mentions: "rope_scaling.rope_type")
        assertRefused(LlamaConfiguration.self, fixture: "llama", "rope_scaling", "linear", mentions: "must be an object")
        assertRefused(LlamaConfiguration.self, fixture: "llama", "rope_parameters.rope_theta", 0.0, mentions: "rope_parameters.rope_theta")
    }

    func testHeadsThatDoNotDivideTheWidthAreRefused() {
        assertRefused(GPT2Configuration.self, fixture: "gpt2", "n_head", 5, mentions: "not divisible")
        assertRefused(LlamaConfiguration.self, fixture: "llama", "num_key_value_heads", 3, mentions: "cannot share")
    }
}
