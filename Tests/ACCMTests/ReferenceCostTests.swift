import ACCM
import Foundation
import XCTest

/// Costs restated at the real system's shapes, for answers of the tiny fixture model.
final class ReferenceCostTests: XCTestCase {
    private static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/accm")

    private func answer(budget: Int, pruning: PruningMethod, compensate: Bool) throws -> ACCMAnswer {
        let pipeline = try ACCMPipeline.load(directory: Self.fixtures.appendingPathComponent("model").path)
        let image = try [UInt8](Data(contentsOf: Self.fixtures.appendingPathComponent("images/square_64x64.png")))
        return try pipeline.answer([ACCMRequest(
            image: .encoded(image), question: "What color is the cross?", budget: budget, pruning: pruning,
            compensate: compensate, generation: GenerationOptions(maxNewTokens: 3))])[0]
    }

    func testAnUnprunedAnswerCostsAFullViTLAndA576TokenPrompt() throws {
        let shapes = try ReferenceShapes.llava15()
        let a = try answer(budget: 36, pruning: .none, compensate: false)
        let cost = shapes.flops(for: a, questionTokens: 6, usedQuestionGuidance: false)
        XCTAssertEqual(cost[.vision], 381_918_216_192 + 2 * 577.0 * 1024 * 768)
        XCTAssertNil(cost[.caption])
        let prompt = a.promptTokens - 36 + 576
        XCTAssertGreaterThan(cost[.decoder]!, shapes.decoder.flops(newTokens: prompt, cached: 0, logitRows: 1))
    }

    func testPruningKeepsTheSameShareOfTheReferencePatchesAndCompensationAddsCaptionAndSelector() throws {
        let shapes = try ReferenceShapes.llava15()
        let pruned = try answer(budget: 9, pruning: .uniform, compensate: false)
        let compensated = try answer(budget: 9, pruning: .accm(ranking: .mostSimilar, cap: .byScore, textPicks: nil), compensate: true)
        let plain = shapes.flops(for: pruned, questionTokens: 6, usedQuestionGuidance: false)
        let accm = shapes.flops(for: compensated, questionTokens: 6, usedQuestionGuidance: true)
        let full = shapes.flops(for: try answer(budget: 36, pruning: .none, compensate: false), questionTokens: 6,
                                usedQuestionGuidance: false)
        XCTAssertLessThan(plain[.decoder]!, full[.decoder]! / 2, "a quarter of the patches")
        XCTAssertNotNil(accm[.caption])
        XCTAssertNotNil(accm[.selector])
        XCTAssertGreaterThan(accm[.vision]!, plain[.vision]!, "question guidance runs the CLIP text tower")
        // Beside a 7B decoder the caption model is a small share of the request.
        let total = accm.values.reduce(0, +)
        XCTAssertLessThan((accm[.caption]! + accm[.selector]!) / total, 0.5)
    }
}
