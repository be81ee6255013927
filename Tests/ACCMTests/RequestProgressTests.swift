import ACCM
import Foundation
import Tensor
import Weights
import XCTest

/// The per-request state machine that both the embedded pipeline and the coordinator drive.
final class RequestProgressTests: XCTestCase {
    private func request(compensate: Bool, pruning: PruningMethod = .uniform) -> ACCMRequest {
        ACCMRequest(image: .pixels(Tensor(shape: [3, 4, 4])), question: "Is it red?\nOne word.", budget: 2,
                    pruning: pruning, compensate: compensate, generation: GenerationOptions(maxNewTokens: 2))
    }

    private func vision(pruned: Int) -> VisionResult {
        VisionResult(keptFeatures: Tensor(shape: [2, 3]), keptIndices: [0, 1], prunedEmbeddings: Tensor(shape: [pruned, 4]),
                     patchCount: 2 + pruned, flops: 10, unprunedFLOPs: 8)
    }

    private let decoded = DecodeResult(text: "yes", tokens: [5], finishReason: .stopToken, promptTokens: 9, flops: 20,
                                       unprunedFLOPs: 30)

    func testACaptionedRequestGoesThroughEveryStageInOrder() throws {
        var p = RequestProgress(request(compensate: true))
        XCTAssertEqual(p.next, .vision)
        XCTAssertEqual(p.visionRequest().question, "Is it red?", "stages are guided by the first line")
        try p.record(vision(pruned: 3), seconds: 0.5)
        XCTAssertEqual(p.next, .caption)
        XCTAssertEqual(p.captionRequest().prunedEmbeddings.shape, [3, 4])
        try p.record(CaptionResult(candidates: ["a.", "b."], tokens: [[1], [2]], scores: [-1, -2], flops: 3))
        XCTAssertEqual(p.next, .selector)
        XCTAssertEqual(p.selectionRequest().candidates, ["a.", "b."])
        try p.record(SelectionResult(scores: [0.1, 0.9], chosen: 1, flops: 4))
        XCTAssertEqual(p.next, .decoder)
        XCTAssertEqual(p.decodeRequest().caption, "b.")
        XCTAssertEqual(p.decodeRequest().question, "Is it red?\nOne word.", "the decoder reads the whole question")
        try p.record(decoded)
        XCTAssertNil(p.next)
        let answer = try XCTUnwrap(p.outcome).get()
        XCTAssertEqual(answer.caption, "b.")
        XCTAssertEqual(answer.chosenCandidate, 1)
        XCTAssertEqual(answer.candidates.map(\.selectorScore), [0.1, 0.9])
        XCTAssertEqual(answer.totalFLOPs, 10 + 3 + 4 + 20)
        XCTAssertEqual(answer.unprunedFLOPs, 8 + 30)
        XCTAssertEqual(answer.seconds[.vision], 0.5)
    }

    func testCaptionAndSelectorAreSkippedWithoutCompensationOrWithNothingPruned() throws {
        var plain = RequestProgress(request(compensate: false))
        try plain.record(vision(pruned: 3))
        XCTAssertEqual(plain.next, .decoder)
        var nothingPruned = RequestProgress(request(compensate: true))
        try nothingPruned.record(vision(pruned: 0))
        XCTAssertEqual(nothingPruned.next, .decoder)
        XCTAssertNil(nothingPruned.decodeRequest().caption)
    }

    func testAResultForAnotherStageIsRefusedAndAFailureIsFinal() throws {
        var p = RequestProgress(request(compensate: true))
        XCTAssertThrowsError(try p.record(decoded)) { XCTAssertEqual(($0 as? StageError)?.code, .internal) }
        p.fail(StageError(.overloaded, "full", retryAfterMilliseconds: 100))
        XCTAssertNil(p.next)
        guard case .failure(let error)? = p.outcome else { return XCTFail("no failure") }
        XCTAssertEqual(error.code, .overloaded)
        XCTAssertThrowsError(try p.record(vision(pruned: 1)), "nothing is recorded after the final answer")
    }

    func testABatchAnswersEveryRequestItCanAndRefusesOnlyTheBadOne() throws {
        let pixels = try SafeTensorsFile(path: ToyStages.path("clip") + "/reference.safetensors").tensor(named: "pixel_values")
        let pipeline = ACCMPipeline(
            vision: try ToyStages.vision(), caption: try ToyStages.caption(maxNewTokens: 3),
            selector: try ToyStages.selector(layers: 1, seed: 9), decoder: try ToyStages.decoder())
        let good = ACCMRequest(image: .pixels(pixels.slice(0)), question: "Is it red?", budget: 4, pruning: .uniform,
                               generation: GenerationOptions(maxNewTokens: 2))
        var blank = good
        blank.question = "  "
        var badBudget = good
        badBudget.budget = 0
        let results = pipeline.respond([good, blank, badBudget, good])
        XCTAssertEqual(results.count, 4)
        let first = try results[0].get(), last = try results[3].get()
        XCTAssertEqual(first.tokens, last.tokens)
        for (i, field) in [(1, "question"), (2, "budget")] {
            guard case .failure(let error) = results[i] else { return XCTFail("request \(i) was answered") }
            XCTAssertEqual(error.code, .invalidRequest)
            XCTAssertEqual(error.field, field)
        }
    }
}
