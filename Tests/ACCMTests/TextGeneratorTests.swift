import ACCM
import Models
import Tensor
import XCTest

extension GPT2 {
    /// Logits of every position of an embedded sequence, from an empty cache.
    func logits(tokensOrEmbeddings sequence: Tensor) throws -> Tensor {
        var cache = makeCache(capacity: sequence.shape[0])
        return logits(try forward(sequence, cache: &cache).hidden)
    }
}

final class TextGeneratorTests: XCTestCase {
    private func gpt2() throws -> GPT2 {
        let tests = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        return try GPT2(directory: tests.appendingPathComponent("Fixtures/engine/gpt2").path)
    }

    private func prompt(_ seed: Int, rows: Int = 4) -> Tensor {
        Tensor(shape: [rows, 32], values: (0..<(rows * 32)).map { Float(cos(Double($0 * 5 + seed * 11))) * 0.8 })
    }

    /// Token `i` reads as "<i>" so texts are easy to follow.
    private func generator(_ model: GPT2) -> TextGenerator<GPT2> {
        TextGenerator(model: model, decode: { $0.map { "<\($0)>" }.joined() }) {
            model.config.flops(newTokens: $0, cached: $1, logitRows: 1)
        }
    }

    func testGreedyGenerationPicksTheArgmaxOfAFullRecomputeAtEveryStep() throws {
        let model = try gpt2()
        let start = prompt(1)
        let result = try generator(model)([start], options: [GenerationOptions(maxNewTokens: 6)])[0]
        XCTAssertEqual(result.tokens.count, 6)
        XCTAssertEqual(result.finishReason, .length)
        var sequence = start
        for token in result.tokens {
            let logits = try model.logits(tokensOrEmbeddings: sequence)
            let last = logits.rows((logits.rowCount - 1)..<logits.rowCount).scalars
            XCTAssertEqual(token, last.indices.max { last[$0] < last[$1] })
            sequence = Tensor.concatenateRows([sequence, try model.embed([token])])
        }
    }


    func testStopTokenEndsTheAnswerAndIsNotPartOfIt() throws {
        let model = try gpt2()
        let free = try generator(model)([prompt(2)], options: [GenerationOptions(maxNewTokens: 5)])[0]
        let stop = free.tokens[2]
        let stopped = try generator(model)([prompt(2)], options: [GenerationOptions(maxNewTokens: 5, stopTokenIDs: [stop])])[0]
        XCTAssertEqual(stopped.finishReason, .stopToken)
        XCTAssertEqual(stopped.tokens, Array(free.tokens.prefix { $0 != stop }))
        XCTAssertFalse(stopped.text.contains("<\(stop)>"))
    }

    func testStopStringCutsTheTextAndIsNeverStreamed() throws {
        let model = try gpt2()
        let free = try generator(model)([prompt(3)], options: [GenerationOptions(maxNewTokens: 8)])[0]
        let stopString = "<\(free.tokens[3])>"
        var streamed = ""
        let result = try generator(model)(
            [prompt(3)], options: [GenerationOptions(maxNewTokens: 8, stopStrings: [stopString])]
        ) { _, delta in
            streamed += delta
            return true
        }[0]
        XCTAssertEqual(result.finishReason, .stopString)
        XCTAssertFalse(result.text.contains(stopString))
        XCTAssertTrue(free.text.hasPrefix(result.text))
        XCTAssertEqual(streamed, result.text, "the stream adds up to the answer")
    }

    func testStreamedDeltasAddUpToTheText() throws {
        var deltas: [String] = []
        let result = try generator(try gpt2())([prompt(4)], options: [GenerationOptions(maxNewTokens: 7)]) { _, d in
            deltas.append(d)
            return true
        }[0]
        XCTAssertEqual(deltas.joined(), result.text)
        XCTAssertEqual(deltas.count, 7)
    }

    func testReturningFalseFromTheStreamCancelsOnlyThatRequest() throws {
        let result = try generator(try gpt2())(
            [prompt(5), prompt(6)], options: Array(repeating: GenerationOptions(maxNewTokens: 6), count: 2)
        ) { request, _ in request != 0 }
        XCTAssertEqual(result[0].finishReason, .cancelled)
        XCTAssertEqual(result[0].tokens.count, 1)
        XCTAssertEqual(result[1].finishReason, .length)
        XCTAssertEqual(result[1].tokens.count, 6)
    }

    func testBatchedRequestsGiveTheSameAnswersAsOneAtATime() throws {
        let model = try gpt2()
        let prompts = [prompt(7, rows: 2), prompt(8, rows: 6), prompt(9, rows: 3)]
        let options = [
            GenerationOptions(maxNewTokens: 3), GenerationOptions(maxNewTokens: 7),
            GenerationOptions(maxNewTokens: 5, sampling: SamplingOptions(temperature: 0.9, topP: 0.9, seed: 3)),
        ]
        let batched = try generator(model)(prompts, options: options)
        for i in prompts.indices {
            XCTAssertEqual(try generator(model)([prompts[i]], options: [options[i]])[0].tokens, batched[i].tokens)
        }
    }

    func testSamplingIsReproducibleForASeedAndNarrowNucleusIsGreedy() throws {
        let model = try gpt2()
        let sampled = { (seed: UInt64, p: Float) in
            try self.generator(model)([self.prompt(10)], options: [
                GenerationOptions(maxNewTokens: 8, sampling: SamplingOptions(temperature: 1.5, topP: p, seed: seed)),
            ])[0].tokens
        }
        XCTAssertEqual(try sampled(1, 1), try sampled(1, 1))
        XCTAssertNotEqual(try sampled(1, 1), try sampled(2, 1))
        let greedy = try generator(model)([prompt(10)], options: [GenerationOptions(maxNewTokens: 8)])[0].tokens
        XCTAssertEqual(try sampled(5, 1e-6), greedy, "a nucleus of one token is the argmax")
    }

    func testInvalidOptionsAreRejectedWithTheirName() throws {
        let g = generator(try gpt2())
        XCTAssertThrowsError(try g([prompt(1)], options: [GenerationOptions(maxNewTokens: 0)])) { XCTAssertTrue("\($0)".contains("max new tokens")) }
        XCTAssertThrowsError(try g([prompt(1)], options: [GenerationOptions(sampling: SamplingOptions(topP: 0))])) { XCTAssertTrue("\($0)".contains("top_p")) }
        XCTAssertThrowsError(try g([prompt(1)], options: [GenerationOptions(sampling: SamplingOptions(temperature: -1))])) { XCTAssertTrue("\($0)".contains("temperature")) }
    }
}
