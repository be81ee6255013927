import ACCM
import Foundation
import Models
import Tensor
import Weights
import XCTest

/// The caption, selector and decoder stages on the engine's fixture models, with a toy tokenizer whose
/// ids are character codes (so prompts and outputs are easy to follow).
final class StageTests: XCTestCase {
    private let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/engine")

    private func path(_ name: String) -> String { fixtures.appendingPathComponent(name).path }

    /// Character codes folded into a vocabulary; "\n" keeps id 10.
    private static func characters(_ text: String, vocabulary: Int) -> [Int] {
        text.unicodeScalars.map { Int($0.value) % vocabulary }
    }

    private static func text(_ ids: [Int]) -> String {
        String(String.UnicodeScalarView(ids.compactMap { Unicode.Scalar($0) }))
    }

    // MARK: Caption

    private func captionStage() throws -> CaptionStage {
        try CaptionStage(
            mapper: CaptionMapper(directory: path("mapper")), languageModel: GPT2(directory: path("gpt2")),
            options: BeamSearchOptions(beams: 3, maxNewTokens: 6, stopTokenID: 46),
            encode: { Self.characters($0, vocabulary: 120) }, decode: Self.text)
    }

    private func pruned(_ rows: Int, seed: Int) -> Tensor {
        Tensor(shape: [rows, 16], values: (0..<(rows * 16)).map { Float(sin(Double($0 + seed * 31))) })
    }

    func testCaptionStageReturnsEveryBeamBestFirstWithItsCost() throws {
        let result = try captionStage()([CaptionRequest(question: "what color?", prunedEmbeddings: pruned(9, seed: 1))])[0]
        XCTAssertEqual(result.candidates.count, 3)
        XCTAssertEqual(result.scores, result.scores.sorted(by: >))
        XCTAssertGreaterThan(result.flops, 0)
    }

    func testCaptionStageBatchesRequestsWithDifferentBudgets() throws {
        let stage = try captionStage()
        let requests = [
            CaptionRequest(question: "left?", prunedEmbeddings: pruned(20, seed: 2)),
            CaptionRequest(question: "", prunedEmbeddings: pruned(3, seed: 3)),
        ]
        let batched = try stage(requests)
        for (i, request) in requests.enumerated() {
            let single = try stage([request])[0]
            XCTAssertEqual(single.candidates, batched[i].candidates)
            XCTAssertEqual(single.flops, batched[i].flops)
        }
    }

    func testCaptionStageRejectsEmbeddingsOfTheWrongWidth() throws {
        XCTAssertThrowsError(try captionStage()([CaptionRequest(question: "q", prunedEmbeddings: Tensor(shape: [4, 15]))])) {
            XCTAssertTrue("\($0)".contains("[M, 16]"), "\($0)")
        }
    }

    // MARK: Selector

    private func selectorStage() throws -> SelectorStage {
        let config = try JSONDecoder().decode(CaptionSelectorConfiguration.self, from: Data("""
            {"model_type": "accm_caption_selector", "hidden_size": 16, "num_heads": 2, "intermediate_size": 32,
             "num_layers": 2}
            """.utf8))
        let selector = try CaptionSelector(WeightStore.random(seed: 4, scale: 0.3).scope(""), config: config)
        return try SelectorStage(text: CLIP.Text(directory: path("clip")), selector: selector) { text in
            // Start token 98, characters, end token 99, padding 0, to the context length of 20.
            let ids = [98] + Self.characters(text, vocabulary: 97).prefix(18).map { max($0, 1) } + [99]
            return ids + Array(repeating: 0, count: 20 - ids.count)
        }
    }

    func testSelectorTextUsesTheAuthorsWording() {
        XCTAssertEqual(SelectorStage.selectorText(question: "  Is it red? \n", candidate: "a red cube."),
                       "Question: Is it red?  Supplemental information for questions: a red cube.")
        // Python's str.strip() also removes U+001C–U+001F (str.isspace), and every Unicode White_Space scalar.
        XCTAssertEqual(SelectorStage.selectorText(question: "\u{1C}\u{3000}Is it red?\u{1F}\r\u{85}", candidate: "x"),
                       "Question: Is it red?  Supplemental information for questions: x")
        XCTAssertEqual(SelectorStage.selectorText(question: "\u{1D}\u{1E}", candidate: "x"),
                       "Question:   Supplemental information for questions: x")
    }

    func testSelectorPicksTheHighestScoreAndBatchesRequests() throws {
        let stage = try selectorStage()
        let requests = [
            SelectionRequest(question: "is it red?", candidates: ["a red cube.", "a blue ball.", "nothing."]),
            SelectionRequest(question: "how many?", candidates: ["two.", "three."]),
        ]
        let batched = try stage(requests)
        for (i, request) in requests.enumerated() {
            let result = batched[i]
            XCTAssertEqual(result.scores.count, request.candidates.count)
            XCTAssertEqual(result.chosen, result.scores.indices.max { result.scores[$0] < result.scores[$1] })
            let single = try stage([request])[0]
            for (a, b) in zip(single.scores, result.scores) { XCTAssertEqual(a, b, accuracy: 1e-5) }
        }
    }

    func testSelectorRefusesARequestWithoutCandidatesAndAMismatchedTower() throws {
        XCTAssertThrowsError(try selectorStage()([SelectionRequest(question: "q", candidates: [])]))
        XCTAssertThrowsError(try SelectorStage(
            text: CLIP.Text(directory: path("clip")), selector: CaptionSelector(directory: path("selector"))) { _ in [] }
        ) { XCTAssertTrue("\($0)".contains("width"), "\($0)") }
    }

    // MARK: Decoder

    /// The LLaMA inside the LLaVA fixture (tensors under `language_model.`, config under `text_config`).
    private func llavaLanguageModel() throws -> Llama {
        struct Wrapper: Decodable { let text_config: LlamaConfiguration }
        let config = try ConfigFile.decode(Wrapper.self, path: path("llava") + "/config.json").text_config
        return try Llama(store: WeightStore(directory: path("llava")), config: config, prefix: "language_model.")
    }

    private func decoderStage() throws -> DecoderStage {
        try DecoderStage(
            projector: LlavaProjector(directory: path("llava")), languageModel: llavaLanguageModel(),
            endOfSequenceID: 2,
            encode: { text, bos in (bos ? [1] : []) + Self.characters(text, vocabulary: 128) },
            decode: Self.text)
    }

    func testPromptPutsTheCaptionRightAfterTheImageLine() throws {
        let segments = try decoderStage().promptSegments(question: "Is it red?", caption: "a red cube.")
        XCTAssertEqual(segments.count, 4)
        XCTAssertEqual(segments[0].first, 1, "the prompt starts with BOS")
        XCTAssertEqual(Self.text(Array(segments[0].dropFirst())), ConversationTemplate.vicunaV1.system + " USER: ")
        XCTAssertEqual(Self.text(segments[1]), "\n")
        XCTAssertEqual(Self.text(segments[2]), "additional information: a red cube.")
        XCTAssertEqual(Self.text(segments[3]), "Is it red? ASSISTANT:")
        XCTAssertEqual(try decoderStage().promptSegments(question: "q", caption: nil)[2], [])
    }

    func testDecoderAnswersABatchLikeOneAtATimeAndCountsThePrompt() throws {
        let stage = try decoderStage()
        let features = Tensor(shape: [3, 32], values: (0..<96).map { Float(cos(Double($0))) })
        let requests = [
            DecodeRequest(question: "Is it red?", caption: "a red cube.", visualFeatures: features,
                          generation: GenerationOptions(maxNewTokens: 4)),
            DecodeRequest(question: "How many?", caption: nil, visualFeatures: features.rows(0..<1),
                          generation: GenerationOptions(maxNewTokens: 6)),
        ]
        let batched = try stage(requests)
        for (i, request) in requests.enumerated() {
            let single = try stage([request])[0]
            XCTAssertEqual(single.tokens, batched[i].tokens)
            XCTAssertEqual(single.promptTokens, batched[i].promptTokens)
        }
        let expectedPrompt = stage.promptSegments(question: "Is it red?", caption: "a red cube.").joined().count + 3
        XCTAssertEqual(batched[0].promptTokens, expectedPrompt)
        XCTAssertGreaterThan(batched[0].flops, batched[1].flops / 2)
    }

    func testDecoderRejectsFeaturesOfTheWrongWidth() throws {
        let request = DecodeRequest(question: "q", caption: nil, visualFeatures: Tensor(shape: [2, 31]),
                                    generation: GenerationOptions())
        XCTAssertThrowsError(try decoderStage()([request])) { XCTAssertTrue("\($0)".contains("[K, 32]"), "\($0)") }
    }
}
