import ACCM
import Foundation
import Models
import Tensor
import Weights
import XCTest

/// `ModelDirectory.writeCopy` (`accm quantize`): a model directory written with its matrices in the chosen
/// formats answers exactly as the original does with those formats made at load.
final class QuantizedCopyTests: XCTestCase {
    private static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/accm")
    private var output: String!

    override func setUp() {
        output = FileManager.default.temporaryDirectory.appendingPathComponent("accm-copy-\(UUID().uuidString)").path
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: output) }

    private var model: String { Self.fixtures.appendingPathComponent("model").path }

    private func request() throws -> ACCMRequest {
        let image = [UInt8](try Data(contentsOf: Self.fixtures.appendingPathComponent("images/landscape_64x40.png")))
        return ACCMRequest(image: .encoded(image), question: "What color is the cross?", budget: 4, pruning: .uniform,
                           compensate: true, generation: GenerationOptions(maxNewTokens: 4))
    }

    func testACopyAnswersAsTheOriginalQuantizedAtLoad() throws {
        let settings = ["llava=int4", "caption_language_model=int8", "vision=bf16"]
        let written = try ModelDirectory(model, weightSettings: settings).writeCopy(to: output)
        XCTAssertEqual(Set(written.map(\.directory)), ["llava", "caption/gpt2", "vision"])
        for part in written where part.format.isBlockQuantized {
            XCTAssertLessThan(part.bytesAfter, part.bytesBefore, part.directory)
        }

        let copy = try ModelDirectory(output)
        XCTAssertEqual(copy.weights, WeightFormatChoice(), "the copy's manifest keeps no weight formats")
        let llava = try SafeTensorsFile(path: output + "/llava/model.safetensors")
        XCTAssertTrue(llava.entries.values.contains { $0.dtype == .u8 }, "some LLaMA matrix is stored as int4")
        XCTAssertEqual(try DecoderStage.load(copy).languageModel.matrixFormats, [.int4, .f32])

        let quantizedAtLoad = try ACCMPipeline.load(directory: model, weightSettings: settings)
        let preQuantized = try ACCMPipeline.load(directory: output)
        let expected = try quantizedAtLoad.answer([request()])[0], answer = try preQuantized.answer([request()])[0]
        XCTAssertEqual(answer.tokens, expected.tokens)
        XCTAssertEqual(answer.candidates, expected.candidates, "captions and both scores, bit for bit")
        XCTAssertEqual(answer.keptIndices, expected.keptIndices)
        XCTAssertEqual(answer.caption, expected.caption)
    }

    func testTheOtherFilesAreCopiedAsTheyAre() throws {
        _ = try ModelDirectory(model, weightSettings: ["llava=int8"]).writeCopy(to: output)
        for file in ["selector/scorer/model.safetensors", "llava/tokenizer.json", "llava/config.json", "vision/config.json"] {
            XCTAssertEqual(FileManager.default.contents(atPath: output + "/" + file),
                           FileManager.default.contents(atPath: model + "/" + file), file)
        }
    }

    func testACopyIsRefusedWhenItCannotBeMade() throws {
        XCTAssertThrowsError(try ModelDirectory(model).writeCopy(to: output)) {
            XCTAssertTrue("\($0)".contains("no component"), "\($0)")
        }
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        XCTAssertThrowsError(try ModelDirectory(model, weightSettings: ["int8"]).writeCopy(to: output)) {
            XCTAssertTrue("\($0)".contains("already exists"), "\($0)")
        }
        XCTAssertThrowsError(try ModelDirectory(model, weightSettings: ["int8"]).writeCopy(to: model + "/inside")) {
            XCTAssertTrue("\($0)".contains("inside the model directory"), "\($0)")
        }
    }
}
