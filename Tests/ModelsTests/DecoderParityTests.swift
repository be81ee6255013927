import Models
import Tensor
import XCTest

/// GPT-2 and LLaMA against transformers: logits, hidden states, input embeddings, and KV-cached decoding.
final class DecoderParityTests: XCTestCase {
    private func sequences(_ fixture: Fixture, _ name: String) throws -> [[Int]] {
        let ids = try fixture.integers(name)
        let length = fixture.shape(name)[1]
        return stride(from: 0, to: ids.count, by: length).map { Array(ids[$0..<($0 + length)]) }
    }

    private func checkLogitsAndHiddenStates(_ model: some CausalLanguageModel, _ fixture: Fixture, layers: Int?) throws {
        let expectedLogits = try fixture.tensor("logits")
        for (b, ids) in try sequences(fixture, "input_ids").enumerated() {
            var cache = model.makeCache(capacity: ids.count)
            let output = try model.forward(model.embed(ids), cache: &cache, recordHiddenStates: true)
            assertClose(model.logits(output.hidden), expectedLogits.slice(b), "logits of sequence \(b)")
            guard let layers else { continue }
            let states = try XCTUnwrap(output.hiddenStates)
            XCTAssertEqual(states.count, layers + 1)
            for (i, state) in states.enumerated() {
                assertClose(state, try fixture.tensor("hidden_states.\(i)").slice(b), "hidden state \(i) of sequence \(b)")
            }
        }
    }

    private func checkInputEmbeddings(_ model: some CausalLanguageModel, _ fixture: Fixture) throws {
        let embeddings = try fixture.tensor("embeds.input").slice(0)
        var cache = model.makeCache(capacity: embeddings.shape[0])
        let hidden = try model.forward(embeddings, cache: &cache, recordHiddenStates: false).hidden
        assertClose(model.logits(hidden), try fixture.tensor("embeds.logits").slice(0), "logits from input embeddings")
    }

    /// Prefills part of a sequence, then decodes the rest one token at a time: every step's logits must
    /// equal the full forward's logits at that position.
    private func checkCachedDecodeMatchesFullRecompute(_ model: some CausalLanguageModel, _ fixture: Fixture) throws {
        let ids = try sequences(fixture, "input_ids")[0]
        let full = try model.logits(tokens: ids)
        let prefill = ids.count / 2
        var cache = model.makeCache(capacity: 2)  // small on purpose: the cache must grow
        var steps = [model.logits(try model.forward(model.embed(Array(ids[..<prefill])), cache: &cache, recordHiddenStates: false).hidden)]
        for id in ids[prefill...] {
            steps.append(model.logits(try model.forward(model.embed([id]), cache: &cache, recordHiddenStates: false).hidden))
        }
        XCTAssertEqual(cache.length, ids.count)
        assertClose(Tensor.concatenateRows(steps), full, "cached decode vs full recompute")
    }

    /// Sequences of different lengths, at different cache positions, run as one batch give the same logits
    /// and leave the same caches as running them one at a time.
    private func checkBatchMatchesOneAtATime(_ model: some CausalLanguageModel, _ fixture: Fixture) throws {
        let ids = try sequences(fixture, "input_ids")[0]
        let prompts = [Array(ids[0..<3]), Array(ids[0..<5]), [ids[1]]]
        let continuations = [Array(ids[3..<5]), [ids[5]], Array(ids[2..<6])]
        var batchCaches = try prompts.map { prompt in
            var cache = model.makeCache(capacity: 4)
            _ = try model.forward(model.embed(prompt), cache: &cache, recordHiddenStates: false)
            return cache
        }
        var singleCaches = batchCaches
        let batched = try model.forward(continuations.map(model.embed), caches: &batchCaches, recordHiddenStates: false)
        for s in prompts.indices {
            let single = try model.forward(model.embed(continuations[s]), cache: &singleCaches[s], recordHiddenStates: false)
            assertClose(model.logits(batched[s].hidden), model.logits(single.hidden), tolerance: 1e-5, "sequence \(s) in a batch")
            XCTAssertEqual(batchCaches[s].length, singleCaches[s].length)
        }
    }

    func testGPT2MatchesTransformers() throws {
        let fixture = try Fixture("gpt2")
        let model = try GPT2(directory: fixture.directory)
        try checkLogitsAndHiddenStates(model, fixture, layers: model.config.layerCount)
        try checkInputEmbeddings(model, fixture)
        try checkCachedDecodeMatchesFullRecompute(model, fixture)
        try checkBatchMatchesOneAtATime(model, fixture)
    }

    func testLlamaWithGroupedQueryAttentionAndBF16WeightsMatchesTransformers() throws {
        let fixture = try Fixture("llama")
        let model = try Llama(directory: fixture.directory)
        XCTAssertEqual(model.config.kvHeadCount, 2)
        XCTAssertEqual(model.config.ropeTheta, 500_000)
        try checkLogitsAndHiddenStates(model, fixture, layers: model.config.layerCount)
        try checkInputEmbeddings(model, fixture)
        try checkCachedDecodeMatchesFullRecompute(model, fixture)
        try checkBatchMatchesOneAtATime(model, fixture)
    }

    func testShardedTiedF16LlamaMatchesTransformers() throws {
        let fixture = try Fixture("llama_tied")
        let model = try Llama(directory: fixture.directory)
        XCTAssertTrue(model.config.tieWordEmbeddings)
        try checkLogitsAndHiddenStates(model, fixture, layers: nil)
        try checkCachedDecodeMatchesFullRecompute(model, fixture)
    }

    func testDecodersRejectBadInput() throws {
        let model = try GPT2(directory: try Fixture("gpt2").directory)
        XCTAssertThrowsError(try model.embed([3, 120])) { XCTAssertTrue("\($0)".contains("120")) }
        var cache = model.makeCache(capacity: 4)
        XCTAssertThrowsError(try model.forward(Tensor(shape: [2, 31]), cache: &cache, recordHiddenStates: false))
        XCTAssertThrowsError(try model.forward(Tensor(shape: [65, 32]), cache: &cache, recordHiddenStates: false)) {
            XCTAssertTrue("\($0)".contains("exceeds"), "\($0)")
        }
        XCTAssertEqual(cache.length, 0, "a rejected input leaves the cache as it was")
        var caches = [model.makeCache(capacity: 4), model.makeCache(capacity: 4)]
        XCTAssertThrowsError(try model.forward([Tensor(shape: [1, 32]), Tensor(shape: [1, 31])], caches: &caches, recordHiddenStates: false))
        XCTAssertEqual(caches.map(\.length), [0, 0], "one bad sequence leaves every cache of the batch as it was")
        XCTAssertThrowsError(try model.forward([Tensor(shape: [1, 32])], caches: &caches, recordHiddenStates: false)) {
            XCTAssertTrue("\($0)".contains("one cache per sequence"), "\($0)")
        }
    }
}
