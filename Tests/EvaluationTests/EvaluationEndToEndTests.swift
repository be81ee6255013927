import ACCM
import Evaluation
import Foundation
import Images
import XCTest

/// The evaluation's mechanics on the tiny random fixture model (its accuracy is noise).
final class EvaluationEndToEndTests: XCTestCase {
    private static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/accm")

    func testEvaluatesEveryCellOnTheFixtureModel() throws {
        let data = FileManager.default.temporaryDirectory.appendingPathComponent("accm-eval-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: data.appendingPathComponent("images"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: data) }
        for name in ["square_64x64.png", "landscape_64x40.png"] {
            try FileManager.default.copyItem(at: Self.fixtures.appendingPathComponent("images/" + name),
                                             to: data.appendingPathComponent("images/" + name))
        }
        try Data("""
            {"id":"q0","image":"images/square_64x64.png","kind":"color","question":"What color is the cross?","answer":"green"}
            {"id":"q1","image":"images/square_64x64.png","kind":"count","question":"How many rings are there?","answer":"zero"}
            {"id":"q2","image":"images/landscape_64x40.png","kind":"exists","question":"Is there a red square?","answer":"yes"}
            """.utf8).write(to: data.appendingPathComponent("test.jsonl"))

        let dataset = try EvalDataset.load(directory: data.path)
        XCTAssertEqual(dataset.items.count, 3)
        XCTAssertEqual(dataset.problems, [])
        let pipeline = try ACCMPipeline.load(directory: Self.fixtures.appendingPathComponent("model").path)
        let evaluator = try Evaluator(pipeline: pipeline)
        XCTAssertEqual(evaluator.patchCount, 36)
        let plan = EvalPlan(budgets: [4, 9], methods: [.none, .random, .uniform, .accmNoCaption, .accm], batchSize: 2)
        var reports: [Int] = []
        let images = ImageCache(directory: data.path)
        let results = try evaluator.run(plan, items: dataset.items, images: images) { done, total in
            XCTAssertEqual(total, 27)
            reports.append(done)
        }
        XCTAssertEqual(images.count, 2, "each image file is read once")
        XCTAssertEqual(reports.last, 27)
        XCTAssertEqual(results.map(\.cell), try plan.cells(patchCount: 36))
        XCTAssertEqual(results.count, 9)
        for r in results {
            XCTAssertEqual(r.n, 3)
            XCTAssertGreaterThan(r.meanTotalFLOPs, 0)
            XCTAssertGreaterThan(r.meanDecoderFLOPs, 0)
            XCTAssertLessThanOrEqual(r.meanDecoderFLOPs, r.meanTotalFLOPs)
            XCTAssertEqual(Set(r.byKind.keys), ["color", "count", "exists"])
        }
        func flops(_ budget: Int, _ method: EvalMethod) -> Double {
            results.first { $0.cell == EvalCell(budget: budget, method: method) }!.meanTotalFLOPs
        }
        let all = flops(36, .none)
        for method in [EvalMethod.random, .uniform, .accmNoCaption] {
            XCTAssertLessThan(flops(4, method), flops(9, method), "\(method)")
            XCTAssertLessThan(flops(9, method), all, "\(method)")
        }
        XCTAssertGreaterThan(flops(4, .accm), flops(4, .accmNoCaption), "the caption costs FLOPs")

        let csv = ResultsFormat.csv(results).split(separator: "\n")
        XCTAssertEqual(csv.first,
                       "budget,method,n,accuracy,mean_total_flops,mean_decoder_flops,mean_reference_flops,skipped,acc_color,acc_count,acc_exists")
        XCTAssertEqual(csv.count, 10)
        XCTAssertTrue(csv.dropFirst().allSatisfy { $0.split(separator: ",", omittingEmptySubsequences: false).count == 11 })
        XCTAssertTrue(results.allSatisfy { $0.meanReferenceFLOPs > 3.8e11 }, "every answer pays at least a ViT-L/336 forward")

        let canvas = AccuracyPlot.render(results)
        let decoded = try ImageDecoder.decode(try canvas.png())
        XCTAssertEqual([decoded.width, decoded.height], [canvas.width, canvas.height])
        XCTAssertEqual(decoded.pixels, canvas.pixels)
    }

    func testBudgetAboveThePatchCountIsAnErrorNamingIt() throws {
        let evaluator = Evaluator(patchCount: 36) { _ in XCTFail("nothing should run"); return [] }
        XCTAssertThrowsError(try evaluator.run(EvalPlan(budgets: [64], methods: [.accm]), items: [], images: ImageCache(directory: "/nonexistent"))) {
            XCTAssertEqual(String(describing: $0), "budget 64 exceeds the model's 36 patches")
        }
    }
}
