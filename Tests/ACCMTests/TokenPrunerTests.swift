import ACCM
import XCTest

final class TokenPrunerTests: XCTestCase {
    private let n = 64

    private func evidence(attention: [Float]? = nil, similarity: [Float]? = nil) -> PruningEvidence {
        PruningEvidence(patchCount: n, classAttention: attention, questionSimilarity: similarity)
    }

    /// A flat attention row with a few sharp peaks (the outliers).
    private func peakedAttention(peaks: [Int: Float]) -> [Float] {
        (0..<n).map { peaks[$0] ?? 0.01 + Float($0 % 7) * 0.0001 }
    }

    func testEveryMethodKeepsExactlyTheBudgetAsAscendingUniqueIndices() throws {
        let attention = peakedAttention(peaks: [3: 0.3, 40: 0.2])
        let similarity = (0..<n).map { Float(($0 * 37) % 64) / 64 }
        let methods: [PruningMethod] = [
            .random(seed: 1), .uniform, .classAttention, .textGuided(.mostSimilar), .textGuided(.leastSimilar),
            .accm(ranking: .mostSimilar, cap: .byScore, textPicks: nil),
            .accm(ranking: .leastSimilar, cap: .highestIndex, textPicks: nil),
        ]
        for method in methods {
            for budget in [1, 4, 16, 63, 64] {
                let kept = try method.keptIndices(budget: budget, evidence: evidence(attention: attention, similarity: similarity))
                XCTAssertEqual(kept.count, budget, "\(method) at \(budget)")
                XCTAssertEqual(kept, Array(Set(kept)).sorted(), "\(method) at \(budget): ascending and unique")
                XCTAssertTrue(kept.allSatisfy { (0..<n).contains($0) })
            }
        }
    }

    func testNoPruningKeepsEveryPatch() throws {
        XCTAssertEqual(try PruningMethod.none.keptIndices(budget: 4, evidence: evidence()), Array(0..<n))
    }

    func testRandomPruningIsReproducibleForASeedAndDiffersAcrossSeeds() throws {
        let a = try PruningMethod.random(seed: 7).keptIndices(budget: 8, evidence: evidence())
        let b = try PruningMethod.random(seed: 7).keptIndices(budget: 8, evidence: evidence())
        let c = try PruningMethod.random(seed: 8).keptIndices(budget: 8, evidence: evidence())
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a, c)
    }

    func testUniformPruningSpreadsTheBudgetEvenly() throws {
        XCTAssertEqual(try PruningMethod.uniform.keptIndices(budget: 4, evidence: evidence()), [8, 24, 40, 56])
        XCTAssertEqual(try PruningMethod.uniform.keptIndices(budget: 64, evidence: evidence()), Array(0..<64))
    }

    func testClassAttentionKeepsTheMostAttendedPatches() throws {
        let attention = peakedAttention(peaks: [5: 0.5, 17: 0.4, 60: 0.3])
        XCTAssertEqual(try PruningMethod.classAttention.keptIndices(budget: 2, evidence: evidence(attention: attention)), [5, 17])
    }

    func testTextGuidedRanksByMostOrLeastSimilar() throws {
        var similarity = [Float](repeating: 0.5, count: n)
        similarity[9] = 0.9; similarity[30] = 0.8; similarity[2] = 0.1; similarity[50] = 0.2
        XCTAssertEqual(try PruningMethod.textGuided(.mostSimilar).keptIndices(budget: 2, evidence: evidence(similarity: similarity)), [9, 30])
        XCTAssertEqual(try PruningMethod.textGuided(.leastSimilar).keptIndices(budget: 2, evidence: evidence(similarity: similarity)), [2, 50])
    }

    func testOutlierCountFollowsTheInterquartileRule() {
        // Q1 = 3.5, Q3 = 8.5 (linear interpolation), bound = 8.5 + 1.5·5 = 16: only 100 lies above.
        XCTAssertEqual(PruningMethod.outlierCount((1...10).map(Float.init) + [100]), 1)
        XCTAssertEqual(PruningMethod.outlierCount(Array(repeating: 1, count: 10)), 0)
        XCTAssertEqual(PruningMethod.outlierCount([]), 0)
    }

    func testACCMKeepsOutliersAndQuestionPicksThenFillsEvenly() throws {
        let attention = peakedAttention(peaks: [3: 0.5, 40: 0.4])
        var similarity = [Float](repeating: 0, count: n)
        similarity[20] = 0.9; similarity[21] = 0.8
        let method = PruningMethod.accm(ranking: .mostSimilar, cap: .byScore, textPicks: 2)
        let kept = try method.keptIndices(budget: 8, evidence: evidence(attention: attention, similarity: similarity))
        XCTAssertTrue(Set([3, 40, 20, 21]).isSubset(of: kept), "\(kept)")
        XCTAssertEqual(kept.count, 8)
    }

    func testACCMCapsTheUnionByScoreOrByHighestIndex() throws {
        let attention = peakedAttention(peaks: [1: 0.5, 2: 0.45, 3: 0.4])
        var similarity = [Float](repeating: 0, count: n)
        similarity[60] = 0.9; similarity[61] = 0.8; similarity[62] = 0.7
        let byScore = try PruningMethod.accm(ranking: .mostSimilar, cap: .byScore, textPicks: 3)
            .keptIndices(budget: 2, evidence: evidence(attention: attention, similarity: similarity))
        XCTAssertEqual(byScore, [1, 60], "best of each source")
        let byIndex = try PruningMethod.accm(ranking: .mostSimilar, cap: .highestIndex, textPicks: 3)
            .keptIndices(budget: 2, evidence: evidence(attention: attention, similarity: similarity))
        XCTAssertEqual(byIndex, [61, 62], "the authors' code keeps the largest raster indices")
    }

    func testBadBudgetsAndMissingEvidenceAreClearErrors() {
        XCTAssertThrowsError(try PruningMethod.uniform.keptIndices(budget: 0, evidence: evidence())) {
            XCTAssertEqual($0 as? PruningError, .invalidBudget(budget: 0, patches: 64))
        }
        XCTAssertThrowsError(try PruningMethod.uniform.keptIndices(budget: 65, evidence: evidence()))
        XCTAssertThrowsError(try PruningMethod.classAttention.keptIndices(budget: 4, evidence: evidence())) {
            XCTAssertTrue("\($0)".contains("attention"))
        }
        XCTAssertThrowsError(try PruningMethod.textGuided(.mostSimilar).keptIndices(
            budget: 4, evidence: PruningEvidence(patchCount: 64, questionSimilarity: [0.5]))) {
            XCTAssertTrue("\($0)".contains("all 64 patches"))
        }
    }

    func testDefaultQuestionPicksFollowTheAuthorsTable() {
        XCTAssertEqual(PruningMethod.defaultTextPicks(budget: 36), 20)
        XCTAssertEqual(PruningMethod.defaultTextPicks(budget: 144), 70)
        XCTAssertEqual(PruningMethod.defaultTextPicks(budget: 4), 2)
    }
}
