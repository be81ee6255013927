import ACCM
import Foundation
import Models
import Tensor
import Weights
import XCTest

/// The embedded pipeline on the engine's fixture models (toy character tokenizers, random selector).
final class PipelineTests: XCTestCase {
    private var pipeline: ACCMPipeline!
    private var pixels: Tensor!

    override func setUpWithError() throws {
        pixels = try SafeTensorsFile(path: ToyStages.path("clip") + "/reference.safetensors").tensor(named: "pixel_values")
        pipeline = ACCMPipeline(
            vision: try ToyStages.vision(), caption: try ToyStages.caption(maxNewTokens: 5),
            selector: try ToyStages.selector(layers: 1, seed: 9), decoder: try ToyStages.decoder())
    }

    private func request(_ image: Int, budget: Int, compensate: Bool) -> ACCMRequest {
        ACCMRequest(image: .pixels(pixels.slice(image)), question: "Is it red?\nAnswer in one word.", budget: budget,
                    pruning: .accm(ranking: .mostSimilar, cap: .byScore, textPicks: nil), compensate: compensate,
                    generation: GenerationOptions(maxNewTokens: 3))
    }

    func testTheAnswerIsTheCompositionOfTheFourStages() throws {
        let answer = try pipeline.answer([request(0, budget: 4, compensate: true)])[0]
        let seen = try pipeline.vision([VisionRequest(image: .pixels(pixels.slice(0)), question: "Is it red?", budget: 4,
                                                      pruning: .accm(ranking: .mostSimilar, cap: .byScore, textPicks: nil))])[0]
        let captions = try pipeline.caption([CaptionRequest(question: "Is it red?", prunedEmbeddings: seen.prunedEmbeddings)])[0]
        let selection = try pipeline.selector([SelectionRequest(question: "Is it red?", candidates: captions.candidates)])[0]
        let decoded = try pipeline.decoder([DecodeRequest(
            question: "Is it red?\nAnswer in one word.", caption: captions.candidates[selection.chosen],
            visualFeatures: seen.keptFeatures, generation: GenerationOptions(maxNewTokens: 3))])[0]
        XCTAssertEqual(answer.keptIndices, seen.keptIndices)
        XCTAssertEqual(answer.candidates.map(\.text), captions.candidates)
        XCTAssertEqual(answer.caption, captions.candidates[selection.chosen])
        XCTAssertEqual(answer.tokens, decoded.tokens)
        XCTAssertEqual(Set(answer.flops.keys), Set(Stage.allCases))
        XCTAssertEqual(answer.totalFLOPs, seen.flops + captions.flops + selection.flops + decoded.flops, accuracy: 1)
    }

    func testWithoutCompensationNoCaptionIsMadeOrPaidFor() throws {
        let answer = try pipeline.answer([request(1, budget: 4, compensate: false)])[0]
        XCTAssertNil(answer.caption)
        XCTAssertTrue(answer.candidates.isEmpty)
        XCTAssertEqual(Set(answer.flops.keys), [.vision, .decoder])
        XCTAssertEqual(answer.keptIndices.count, 4)
    }

    /// Batching changes no decision beyond float rounding: padded batches sum in another order, so scores may
    /// differ in the last bits, and the random toy selector can score two candidates within that of each other
    /// (on one CPU's kernels it picks one, on another the other). Such a tie is the only difference allowed.
    func testABatchAnswersLikeOneRequestAtATime() throws {
        let requests = [request(0, budget: 3, compensate: true), request(1, budget: 10, compensate: false),
                        request(1, budget: 6, compensate: true)]
        let batched = try pipeline.answer(requests)
        let tolerance: Float = 1e-4
        for (i, r) in requests.enumerated() {
            let single = try pipeline.answer([r])[0]
            let alone = single.candidates, together = batched[i].candidates
            XCTAssertEqual(single.keptIndices, batched[i].keptIndices, "request \(i)")
            XCTAssertEqual(alone.map(\.text), together.map(\.text), "request \(i)")
            for (a, b) in zip(alone, together) {
                XCTAssertEqual(a.beamScore, b.beamScore, accuracy: tolerance, "request \(i)")
                XCTAssertEqual(a.selectorScore, b.selectorScore, accuracy: tolerance, "request \(i)")
            }
            if single.caption == batched[i].caption {
                XCTAssertEqual(single.tokens, batched[i].tokens, "request \(i)")
            } else {
                let picked = try XCTUnwrap(single.chosenCandidate), other = try XCTUnwrap(batched[i].chosenCandidate)
                XCTAssertEqual(alone[picked].selectorScore, alone[other].selectorScore, accuracy: tolerance,
                               "request \(i): the captions differ without a tie in the selector")
            }
        }
        XCTAssertTrue(zip(requests, batched).contains { $0.compensate && $1.caption != nil }, "a caption was made")
    }

    func testUnprunedCostCountsEveryPatchThroughTheDecoder() throws {
        let answer = try pipeline.answer([request(0, budget: 2, compensate: false)])[0]
        let unpruned = answer.unprunedFLOPs
        XCTAssertGreaterThan(unpruned, answer.totalFLOPs, "keeping 2 of 25 patches is cheaper")
        let full = try pipeline.answer([ACCMRequest(image: .pixels(pixels.slice(0)), question: "Is it red?\nAnswer in one word.",
                                                    budget: 25, pruning: .none, compensate: false,
                                                    generation: GenerationOptions(maxNewTokens: 3))])[0]
        XCTAssertEqual(full.unprunedFLOPs, full.totalFLOPs, accuracy: full.totalFLOPs * 1e-9,
                       "with nothing pruned the estimate is the real cost")
    }

    func testGuidingTextIsTheFirstLine() {
        XCTAssertEqual(ACCMPipeline.guidingText("What is it?\nAnswer the question using a single word."), "What is it?")
        XCTAssertEqual(ACCMPipeline.guidingText(""), "")
        // "\r\n" is one Character in Swift; Python's split('\n') still cuts there and keeps the "\r".
        XCTAssertEqual(ACCMPipeline.guidingText("What is it?\r\nAnswer briefly.").unicodeScalars.map(\.value),
                       "What is it?\r".unicodeScalars.map(\.value))
        XCTAssertEqual(ACCMPipeline.guidingText("\nWhat?"), "")
    }
}
