// Beam search over a causal language model fed with input embeddings, as ACCM's caption model runs it
// (ClipCap's `generate_beam`: length-normalised log-probabilities, finished beams frozen, every beam
// returned). Unlike the reference, which re-runs the whole sequence at every step, each beam keeps a KV
// cache; `useCache: false` recomputes, to show both give the same candidates.

import Models
import Tensor

/// Settings of one beam search.
public struct BeamSearchOptions: Sendable, Equatable {
    public var beams: Int
    public var maxNewTokens: Int
    /// A beam stops once it has produced this token (ACCM: the id of ".").
    public var stopTokenID: Int
    /// Keep a KV cache per beam (true) or recompute the whole sequence at every step (the reference).
    public var useCache: Bool

    public init(beams: Int = 3, maxNewTokens: Int = 67, stopTokenID: Int, useCache: Bool = true) {
        self.beams = beams
        self.maxNewTokens = maxNewTokens
        self.stopTokenID = stopTokenID
        self.useCache = useCache
    }
}

/// One finished beam.
public struct BeamCandidate: Sendable, Equatable {
    /// Generated token ids, up to and including the stop token when the beam stopped.
    public var tokens: [Int]
    /// Sum of the tokens' log-probabilities divided by their count.
    public var score: Float
}

/// What a beam search produced and what it cost.
public struct BeamSearchResult: Sendable {
    /// Per prompt, every beam, best first.
    public var candidates: [[BeamCandidate]]
    /// Per prompt, the floating-point operations its beams cost (see `FLOPs`).
    public var flops: [Double]
}

/// Beam search for a batch of prompts; all live beams of all prompts share each forward pass.
public struct BeamSearch<Model: CausalLanguageModel>: Sendable {
    public let model: Model
    public let options: BeamSearchOptions
    /// The FLOPs of running `newTokens` positions after `cached` ones with logits for the last row.
    let stepFLOPs: @Sendable (_ newTokens: Int, _ cached: Int) -> Double

    public init(model: Model, options: BeamSearchOptions, stepFLOPs: @escaping @Sendable (Int, Int) -> Double) {
        self.model = model
        self.options = options
        self.stepFLOPs = stepFLOPs
    }

    private struct Beam {
        var tokens: [Int]
        var score: Float  // running sum of log-probabilities (length-normalised score × length)
        var length: Int
        var stopped: Bool
        var cache: KVCache
    }

    /// Runs the search from each prompt `[T, hiddenSize]` (input embeddings).
    public func callAsFunction(_ prompts: [Tensor]) throws -> BeamSearchResult {
        guard options.beams >= 1, options.maxNewTokens >= 1 else {
            throw ModelError.invalidInput("beam search needs at least one beam and one new token")
        }
        guard options.beams <= model.vocabularySize, (0..<model.vocabularySize).contains(options.stopTokenID) else {
            throw ModelError.invalidInput("stop token \(options.stopTokenID) or \(options.beams) beams do not fit a vocabulary of \(model.vocabularySize)")
        }
        var flops = [Double](repeating: 0, count: prompts.count)
        // Step 0: the prompt; the best `beams` first tokens start the beams.
        var caches = prompts.map { model.makeCache(capacity: $0.shape[0] + options.maxNewTokens + 1) }
        let outputs = try model.forward(prompts, caches: &caches, recordHiddenStates: false)
        var beams: [[Beam]] = []
        for (p, output) in outputs.enumerated() {
            flops[p] += stepFLOPs(prompts[p].shape[0], 0)
            let last = output.hidden.rows((output.hidden.rowCount - 1)..<output.hidden.rowCount)
            let logits = model.logits(last)
            guard logits.isFinite else { throw Self.nonFinite(step: 0) }
            let logProbabilities = logSoftmax(logits)
            let best = topK(logProbabilities, options.beams)
            beams.append(best.map { token, logProbability in
                Beam(tokens: [token], score: logProbability, length: 1, stopped: token == options.stopTokenID,
                     cache: caches[p])
            })
        }
        caches = []
        for _ in 1..<options.maxNewTokens {
            let live = beams.indices.flatMap { p in beams[p].indices.filter { !beams[p][$0].stopped }.map { (p, $0) } }
            if live.isEmpty { break }
            let logProbabilities = try nextLogProbabilities(prompts: prompts, beams: &beams, live: live, flops: &flops)
            for p in beams.indices {
                beams[p] = advance(beams[p], logProbabilities: logProbabilities, prompt: p, live: live)
            }
        }
        let candidates = beams.map { group in
            group.map { BeamCandidate(tokens: Array($0.tokens.prefix($0.length)), score: $0.score / Float($0.length)) }
                .enumerated().sorted { $0.element.score != $1.element.score ? $0.element.score > $1.element.score : $0.offset < $1.offset }
                .map(\.element)
        }
        return BeamSearchResult(candidates: candidates, flops: flops)
    }

    private static func nonFinite(step: Int) -> ModelError {
        .nonFinite("the caption model's logits hold NaN or infinity at step \(step); its weights (or the mapper's) "
            + "may be corrupt, or a norm epsilon is 0")
    }

    /// Log-probabilities of the next token for every live beam, keyed by (prompt, beam).
    private func nextLogProbabilities(
        prompts: [Tensor], beams: inout [[Beam]], live: [(Int, Int)], flops: inout [Double]
    ) throws -> [[Int: Tensor]] {
        var inputs: [Tensor] = []
        var caches: [KVCache] = []
        for (p, b) in live {
            if options.useCache {
                inputs.append(try model.embed([beams[p][b].tokens.last!]))
                var moved = KVCache(layers: 0, width: 0, reservingCapacity: 0)
                swap(&moved, &beams[p][b].cache)
                caches.append(moved)
            } else {
                inputs.append(Tensor.concatenateRows([prompts[p], try model.embed(beams[p][b].tokens)]))
                caches.append(model.makeCache(capacity: inputs.last!.shape[0]))
            }
        }
        for (slot, (p, _)) in live.enumerated() { flops[p] += stepFLOPs(inputs[slot].shape[0], caches[slot].length) }
        let outputs = try model.forward(inputs, caches: &caches, recordHiddenStates: false)
        let lastRows = Tensor.concatenateRows(outputs.map { $0.hidden.rows(($0.hidden.rowCount - 1)..<$0.hidden.rowCount) })
        let logits = model.logits(lastRows)
        guard logits.isFinite else { throw Self.nonFinite(step: beams.map { $0.map(\.length).max() ?? 0 }.max() ?? 0) }
        var result = [[Int: Tensor]](repeating: [:], count: beams.count)
        for (i, (p, b)) in live.enumerated() {
            result[p][b] = logSoftmax(logits.rows(i..<(i + 1)))
            if options.useCache { beams[p][b].cache = caches[i] }
        }
        return result
    }

    /// One step of ClipCap's beam update for one prompt's beams.
    private func advance(_ group: [Beam], logProbabilities: [[Int: Tensor]], prompt p: Int, live: [(Int, Int)]) -> [Beam] {
        let vocabulary = model.vocabularySize
        // Candidate (beam, token) pairs scored by (running sum + log p) / new length; a stopped beam can
        // only continue with token 0 at no cost and without growing (the reference's convention).
        var scored: [(average: Float, beam: Int, token: Int)] = []
        scored.reserveCapacity(group.count * vocabulary)
        for (b, beam) in group.enumerated() {
            if beam.stopped {
                scored.append((beam.score / Float(beam.length), b, 0))
                continue
            }
            let length = Float(beam.length + 1)
            logProbabilities[p][b]!.withUnsafeBufferPointer { lp in
                for token in 0..<vocabulary { scored.append(((beam.score + lp[token]) / length, b, token)) }
            }
        }
        let chosen = partialTop(scored, options.beams) { a, b in
            a.average != b.average ? a.average > b.average : (a.beam, a.token) < (b.beam, b.token)
        }
        return chosen.map { pick in
            var beam = group[pick.beam]
            if !beam.stopped {
                beam.length += 1
                beam.stopped = pick.token == options.stopTokenID
            }
            beam.tokens.append(pick.token)
            beam.score = pick.average * Float(beam.length)
            return beam
        }
    }
}

/// `log(softmax(x))` of a `[1, V]` row.
func logSoftmax(_ row: Tensor) -> Tensor {
    var out = row
    out.withUnsafeMutableBufferPointer { p in
        let m = VectorMath.maximum(p.baseAddress!, count: p.count)
        var sum: Double = 0
        for i in 0..<p.count { sum += Double(expf(p[i] - m)) }
        let logSum = m + Float(log(sum))
        for i in 0..<p.count { p[i] -= logSum }
    }
    return out
}

/// The `k` largest entries of a `[1, V]` row as (index, value), largest first, ties to the lower index.
func topK(_ row: Tensor, _ k: Int) -> [(Int, Float)] {
    let values = row.scalars
    return partialTop(Array(values.enumerated()), k) { a, b in a.element != b.element ? a.element > b.element : a.offset < b.offset }
        .map { ($0.offset, $0.element) }
}

/// The first `k` elements of `items` in the order `before` (without sorting the rest).
func partialTop<T>(_ items: [T], _ k: Int, by before: (T, T) -> Bool) -> [T] {
    var best: [T] = []
    best.reserveCapacity(k + 1)
    for item in items {
        if best.count == k, let last = best.last, !before(item, last) { continue }
        let position = best.firstIndex { before(item, $0) } ?? best.count
        best.insert(item, at: position)
        if best.count > k { best.removeLast() }
    }
    return best
}

#if canImport(Glibc)
import Glibc
#endif
