import Foundation
import Weights
import XCTest

final class ConfigFileTests: XCTestCase {
    private struct TextConfig: Decodable, Equatable {
        let hidden_size: Int
        let layer_norm_eps: Double
    }

    private struct Config: Decodable, Equatable {
        let model_type: String
        let hidden_act: String
        let vocab_size: Int
        let tie_word_embeddings: Bool?
        let text_config: TextConfig
    }

    private var directory: TemporaryDirectory!

    override func setUpWithError() throws {
        directory = try TemporaryDirectory()
    }

    override func tearDown() {
        directory?.remove()
        directory = nil
    }

    private let valid = """
        {
          "model_type": "llava",
          "hidden_act": "silu",
          "vocab_size": 32064,
          "torch_dtype": "float16",
          "text_config": {"hidden_size": 4096, "layer_norm_eps": 1e-05}
        }
        """

    func testConfigIsDecodedFromTheDirectory() throws {
        try directory.write("config.json", text: valid)
        let config = try ConfigFile.load(Config.self, from: directory.path)
        XCTAssertEqual(config, Config(
            model_type: "llava", hidden_act: "silu", vocab_size: 32064, tie_word_embeddings: nil,
            text_config: TextConfig(hidden_size: 4096, layer_norm_eps: 1e-5)))
    }

    func testAnyJSONFileCanBeDecodedByPath() throws {
        let path = try directory.write("preprocessor_config.json", text: #"{"hidden_size": 8, "layer_norm_eps": 0.5}"#)
        XCTAssertEqual(try ConfigFile.decode(TextConfig.self, path: path), TextConfig(hidden_size: 8, layer_norm_eps: 0.5))
    }

    func testMissingFileCannotBeOpened() {
        XCTAssertThrowsError(try ConfigFile.load(Config.self, from: directory.path)) {
            XCTAssertEqual($0 as? WeightsError, .cannotOpen(path: directory.path + "/config.json", reason: "no such file"))
        }
    }

    private func assertInvalid(
        _ json: String, mentions expected: [String], file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let path = try directory.write("config.json", text: json)
        XCTAssertThrowsError(try ConfigFile.load(Config.self, from: directory.path), file: file, line: line) { error in
            guard case .invalidConfig(let errorPath, _)? = error as? WeightsError else {
                return XCTFail("expected invalidConfig, got \(error)", file: file, line: line)
            }
            XCTAssertEqual(errorPath, path, file: file, line: line)
            for text in expected {
                XCTAssertTrue("\(error)".contains(text), "'\(error)' does not mention \(text)", file: file, line: line)
            }
        }
    }

    func testMissingKeyIsNamedInTheError() throws {
        try assertInvalid(
            #"{"model_type": "llava", "hidden_act": "silu", "text_config": {"hidden_size": 1, "layer_norm_eps": 1}}"#,
            mentions: ["missing key 'vocab_size'"])
    }

    func testMissingNestedKeyIsNamedWithItsPath() throws {
        try assertInvalid(
            #"{"model_type": "llava", "hidden_act": "silu", "vocab_size": 3, "text_config": {"hidden_size": 1}}"#,
            mentions: ["missing key 'text_config.layer_norm_eps'"])
    }

    func testWrongTypeIsNamedInTheError() throws {
        try assertInvalid(
            #"{"model_type": "llava", "hidden_act": "silu", "vocab_size": "many", "text_config": {"hidden_size": 1, "layer_norm_eps": 1}}"#,
            mentions: ["wrong type", "vocab_size"])
        try assertInvalid(
            #"{"model_type": "llava", "hidden_act": "silu", "vocab_size": 3, "text_config": {"hidden_size": [1], "layer_norm_eps": 1}}"#,
            mentions: ["wrong type", "text_config.hidden_size"])
    }

    func testTextThatIsNotJSONIsAnInvalidConfig() throws {
        try assertInvalid("{ model_type: llava", mentions: ["invalid config"])
        try assertInvalid("", mentions: ["invalid config"])
    }
}
