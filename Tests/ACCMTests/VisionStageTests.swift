import ACCM
import Models
import Tensor
import Weights
import XCTest

/// The vision stage on the engine's CLIP fixture (30 px images, 6 px patches: 25 patches).
final class VisionStageTests: XCTestCase {
    private var reference: SafeTensorsFile!
    private var stage: VisionStage!

    override func setUpWithError() throws {
        let tests = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        let directory = tests.appendingPathComponent("Fixtures/engine/clip").path
        reference = try SafeTensorsFile(path: directory + "/reference.safetensors")
        let questionIDs = Array(try reference.integers(named: "text.input_ids")[0..<20])
        stage = try VisionStage(
            vision: CLIP.Vision(directory: directory), text: CLIP.Text(directory: directory),
            encodeQuestion: { _ in questionIDs },
            preprocess: { image in
                guard case .pixels(let pixels) = image else { throw ModelError.invalidInput("pixels only") }
                return pixels
            })
    }

    private func pixels(_ i: Int) throws -> ImageInput { .pixels(try reference.tensor(named: "pixel_values").slice(i)) }

    func testKeptFeaturesComeFromThePenultimateLayerAndPrunedEmbeddingsFromTheJointSpace() throws {
        let result = try stage([VisionRequest(image: pixels(0), question: "q", budget: 6, pruning: .uniform)])[0]
        XCTAssertEqual(result.keptIndices.count, 6)
        XCTAssertEqual(result.patchCount, 25)
        let penultimate = try reference.tensor(named: "vision.hidden_states.2").slice(0)
        assertClose(result.keptFeatures, penultimate.gatherRows(result.keptIndices.map { $0 + 1 }), "kept features")
        let pruned = (0..<25).filter { !result.keptIndices.contains($0) }
        let embeddings = try reference.tensor(named: "vision.token_embeds").slice(0)
        assertClose(result.prunedEmbeddings, embeddings.gatherRows(pruned.map { $0 + 1 }), "pruned embeddings")
    }

    func testClassAttentionPruningKeepsTheReferenceTopPatches() throws {
        let result = try stage([VisionRequest(image: pixels(1), question: "q", budget: 4, pruning: .classAttention)])[0]
        let row = try reference.tensor(named: "vision.cls_attention").slice(1).scalars
        let expected = row.indices.sorted { row[$0] > row[$1] }.prefix(4).sorted()
        XCTAssertEqual(result.keptIndices, expected)
    }

    func testBatchedRequestsMatchOneAtATime() throws {
        let requests = [
            VisionRequest(image: try pixels(0), question: "a", budget: 3,
                          pruning: .accm(ranking: .mostSimilar, cap: .byScore, textPicks: 2)),
            VisionRequest(image: try pixels(1), question: "b", budget: 7, pruning: .textGuided(.leastSimilar)),
        ]
        let batched = try stage(requests)
        for (i, request) in requests.enumerated() {
            let single = try stage([request])[0]
            XCTAssertEqual(single.keptIndices, batched[i].keptIndices)
            assertClose(single.keptFeatures, batched[i].keptFeatures, "features of request \(i)")
            XCTAssertEqual(single.flops, batched[i].flops)
        }
        XCTAssertGreaterThan(batched[0].flops, 0)
    }

    func testNoPruningKeepsAllPatchesAndPassesNoEmbeddingsOn() throws {
        let result = try stage([VisionRequest(image: pixels(0), question: "q", budget: 1, pruning: .none)])[0]
        XCTAssertEqual(result.keptIndices, Array(0..<25))
        XCTAssertEqual(result.prunedEmbeddings.shape, [0, 16])
    }

    func testABudgetOutsideThePatchCountIsRejected() throws {
        XCTAssertThrowsError(try stage([VisionRequest(image: pixels(0), question: "q", budget: 26, pruning: .uniform)])) {
            XCTAssertEqual($0 as? PruningError, .invalidBudget(budget: 26, patches: 25))
        }
    }
}

/// Asserts equal shapes and a maximum absolute difference within `tolerance`.
func assertClose(_ a: Tensor, _ b: Tensor, tolerance: Float = 1e-5, _ what: String,
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.shape, b.shape, what, file: file, line: line)
    if a.count == b.count { XCTAssertLessThanOrEqual(a.maxAbsoluteDifference(b), tolerance, what, file: file, line: line) }
}
