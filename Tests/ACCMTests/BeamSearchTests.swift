import ACCM
import Models
import Tensor
import XCTest

final class BeamSearchTests: XCTestCase {
    private func gpt2() throws -> GPT2 {
        let tests = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        return try GPT2(directory: tests.appendingPathComponent("Fixtures/engine/gpt2").path)
    }

    private func prompt(_ seed: Int, rows: Int) -> Tensor {
        Tensor(shape: [rows, 32], values: (0..<(rows * 32)).map { Float(sin(Double($0 * 7 + seed * 13))) * 0.8 })
    }

    private func search(_ model: GPT2, cache: Bool, stop: Int = 7, maxNewTokens: Int = 12) -> BeamSearch<GPT2> {
        BeamSearch(model: model, options: BeamSearchOptions(beams: 3, maxNewTokens: maxNewTokens, stopTokenID: stop, useCache: cache)) {
            model.config.flops(newTokens: $0, cached: $1, logitRows: 1)
        }
    }

    func testCachedAndRecomputedSearchesGiveTheSameCandidates() throws {
        let model = try gpt2()
        let prompts = [prompt(1, rows: 5), prompt(2, rows: 9)]
        let cached = try search(model, cache: true)(prompts)
        let recomputed = try search(model, cache: false)(prompts)
        XCTAssertEqual(cached.candidates.map { $0.map(\.tokens) }, recomputed.candidates.map { $0.map(\.tokens) })
        for (a, b) in zip(cached.candidates.joined(), recomputed.candidates.joined()) {
            XCTAssertEqual(a.score, b.score, accuracy: 1e-5)
        }
        for p in prompts.indices {
            XCTAssertLessThan(cached.flops[p], recomputed.flops[p], "the cache saves work")
            XCTAssertGreaterThan(cached.flops[p], 0)
        }
    }

    func testEveryPromptGetsAllBeamsBestFirst() throws {
        let result = try search(try gpt2(), cache: true)([prompt(3, rows: 4)])
        let candidates = try XCTUnwrap(result.candidates.first)
        XCTAssertEqual(candidates.count, 3)
        XCTAssertEqual(candidates.map(\.score), candidates.map(\.score).sorted(by: >))
        XCTAssertTrue(candidates.allSatisfy { !$0.tokens.isEmpty && $0.tokens.count <= 12 })
    }

    func testScoreIsTheMeanLogProbabilityOfTheCandidateTokens() throws {
        let model = try gpt2()
        let start = prompt(4, rows: 6)
        let candidates = try search(model, cache: true)([start]).candidates[0]
        for candidate in candidates {
            let sequence = Tensor.concatenateRows([start, try model.embed(candidate.tokens)])
            var cache = model.makeCache(capacity: sequence.shape[0])
            let logits = model.logits(try model.forward(sequence, cache: &cache).hidden)
            var total: Double = 0
            for (i, token) in candidate.tokens.enumerated() {
                let row = logits.rows((start.shape[0] - 1 + i)..<(start.shape[0] + i)).scalars
                let m = row.max()!
                let logSum = Double(m) + log(row.reduce(0.0) { $0 + exp(Double($1 - m)) })
                total += Double(row[token]) - logSum
            }
            XCTAssertEqual(Double(candidate.score), total / Double(candidate.tokens.count), accuracy: 1e-4)
        }
    }

    func testBeamsEndAtTheStopToken() throws {
        let model = try gpt2()
        // Make the stop token the first token the model would pick, so beams do stop.
        let start = prompt(5, rows: 3)
        var cache = model.makeCache(capacity: 3)
        let first = model.logits(try model.forward(start, cache: &cache).hidden).rows(2..<3).scalars
        let stop = first.indices.max { first[$0] < first[$1] }!
        let candidates = try search(model, cache: true, stop: stop)([start]).candidates[0]
        XCTAssertTrue(candidates.contains { $0.tokens == [stop] }, "\(candidates)")
        for candidate in candidates where candidate.tokens.contains(stop) {
            XCTAssertEqual(candidate.tokens.last, stop, "nothing follows the stop token")
        }
    }

    func testBatchedPromptsGiveTheSameCandidatesAsOneAtATime() throws {
        let model = try gpt2()
        let prompts = [prompt(6, rows: 2), prompt(7, rows: 7), prompt(8, rows: 4)]
        let batched = try search(model, cache: true)(prompts).candidates
        for (i, p) in prompts.enumerated() {
            XCTAssertEqual(try search(model, cache: true)([p]).candidates[0].map(\.tokens), batched[i].map(\.tokens))
        }
    }

    func testInvalidSettingsAreRejected() throws {
        let model = try gpt2()
        let bad = BeamSearch(model: model, options: BeamSearchOptions(stopTokenID: 500)) { _, _ in 0 }
        XCTAssertThrowsError(try bad([prompt(1, rows: 2)])) { XCTAssertTrue("\($0)".contains("500")) }
    }
}
