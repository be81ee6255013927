import ACCM
import Foundation
import Models
import Tensor
import Weights
import XCTest

/// The caption, selector and decoder stages on the engine's fixture models, with a toy tokenizer whose
/// ids are character codes (so prompts and outputs are easy to follow).
final class StageTests: XCTestCase {
    // MARK: Caption

    private func captionStage() throws -> CaptionStage { try ToyStages.caption(maxNewTokens: 6) }

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

    private func selectorStage() throws -> SelectorStage { try ToyStages.selector(layers: 2, seed: 4) }

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
            text: CLIP.Text(directory: ToyStages.path("clip")),
            selector: CaptionSelector(directory: ToyStages.path("selector"))) { _ in [] }
        ) { XCTAssertTrue("\($0)".contains("width"), "\($0)") }
    }

    // MARK: Decoder

    private func decoderStage() throws -> DecoderStage { try ToyStages.decoder() }

    func testPromptPutsTheCaptionRightAfterTheImageLine() throws {
        let segments = try decoderStage().promptSegments(question: "Is it red?", caption: "a red cube.")
        XCTAssertEqual(segments.count, 4)
        XCTAssertEqual(segments[0].first, 1, "the prompt starts with BOS")
        XCTAssertEqual(ToyStages.text(Array(segments[0].dropFirst())), ConversationTemplate.vicunaV1.system + " USER: ")
        XCTAssertEqual(ToyStages.text(segments[1]), "\n")
        XCTAssertEqual(ToyStages.text(segments[2]), "additional information: a red cube.")
        XCTAssertEqual(ToyStages.text(segments[3]), "Is it red? ASSISTANT:")
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

/// The decoder batches continuously: a request that joins a running batch between steps is answered as it
/// would be alone, and so is the one it joined.
final class DecodeSessionTests: XCTestCase {
    func testARequestJoiningBetweenStepsIsAnsweredAsAlone() throws {
        let stage = try ToyStages.decoder()
        let features = Tensor(shape: [3, 32], values: (0..<96).map { Float(cos(Double($0))) })
        let first = DecodeRequest(question: "Is it red?", caption: "a red cube.", visualFeatures: features,
                                  generation: GenerationOptions(maxNewTokens: 6))
        let second = DecodeRequest(question: "How many?", caption: nil, visualFeatures: features.rows(0..<2),
                                   generation: GenerationOptions(maxNewTokens: 4))
        let alone = try [stage([first])[0], stage([second])[0]]

        var session = stage.session()
        try session.join(0, first)
        var results: [Int: DecodeResult] = [:]
        var texts: [Int: String] = [:]
        for (id, r) in try session.step(onText: { texts[$0, default: ""] += $1; return true }) { results[id] = r }
        for (id, r) in try session.step(onText: { texts[$0, default: ""] += $1; return true }) { results[id] = r }
        XCTAssertEqual(session.count, 1)
        try session.join(1, second)
        XCTAssertEqual(session.count, 2)
        while !session.isEmpty {
            for (id, r) in try session.step(onText: { texts[$0, default: ""] += $1; return true }) { results[id] = r }
        }
        for id in 0..<2 {
            XCTAssertEqual(results[id]?.tokens, alone[id].tokens, "request \(id)")
            XCTAssertEqual(results[id]?.promptTokens, alone[id].promptTokens)
            XCTAssertEqual(results[id].map { $0.flops }, alone[id].flops)
            XCTAssertEqual(texts[id, default: ""], alone[id].text, "the streamed text is the answer")
        }
        XCTAssertThrowsError(try session.join(2, DecodeRequest(question: "q", caption: nil, visualFeatures: Tensor(shape: [1, 31]),
                                                               generation: GenerationOptions())))
        XCTAssertTrue(session.isEmpty, "a refused request joins nothing")
    }
}
