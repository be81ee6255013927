// What the caption model (GPT-2) and the answer decoder (LLaMA) have in common: embeddings in,
// hidden states and logits out, positions carried by a KV cache.

import Tensor

/// The result of running a decoder over new positions.
public struct DecoderOutput: Sendable {
    /// Final-normed hidden states of the new positions `[T, C]`.
    public var hidden: Tensor
    /// When requested: the input embeddings, then each layer's output, the last one final-normed
    /// (Hugging Face's `output_hidden_states`), each `[T, C]`.
    public var hiddenStates: [Tensor]?
}

/// A decoder-only language model that takes input embeddings (so visual or prefix tokens can be
/// spliced in) and continues from a KV cache.
public protocol CausalLanguageModel: Sendable {
    var hiddenSize: Int { get }
    var vocabularySize: Int { get }
    /// Longest sequence (cache plus new positions) the model accepts.
    var maxPositions: Int { get }

    /// Token embeddings `[ids.count, hiddenSize]`; throws for ids outside the vocabulary.
    func embed(_ ids: [Int]) throws -> Tensor
    /// An empty cache for this model.
    func makeCache(capacity: Int) -> KVCache
    /// Runs several sequences at once: `embeddings[i] [Tᵢ, hiddenSize]` at positions
    /// `caches[i].length ..< caches[i].length + Tᵢ`, appended to `caches[i]`. The rows of all sequences share
    /// every matrix product (one pass over the weights for a whole batch of decode steps).
    func forward(_ embeddings: [Tensor], caches: inout [KVCache], recordHiddenStates: Bool) throws -> [DecoderOutput]
    /// Next-token logits `[T, vocabularySize]` for hidden states `[T, hiddenSize]`.
    func logits(_ hidden: Tensor) -> Tensor
}

extension CausalLanguageModel {
    /// Runs one sequence `embeddings [T, hiddenSize]` at positions `cache.length ..< cache.length + T` and
    /// appends them to the cache.
    public func forward(_ embeddings: Tensor, cache: inout KVCache, recordHiddenStates: Bool = false) throws -> DecoderOutput {
        // Move the cache into the batch (a copy would share its buffers and make every append copy them).
        var caches = [KVCache(layers: 0, width: 0, reservingCapacity: 0)]
        swap(&caches[0], &cache)
        defer { swap(&caches[0], &cache) }
        return try forward([embeddings], caches: &caches, recordHiddenStates: recordHiddenStates)[0]
    }

    /// Runs token ids through the model from an empty cache and returns the logits of every position.
    public func logits(tokens: [Int]) throws -> Tensor {
        var cache = makeCache(capacity: tokens.count)
        return logits(try forward(embed(tokens), cache: &cache, recordHiddenStates: false).hidden)
    }

    /// Checks a batch before anything runs, so that a bad sequence leaves every cache as it was.
    func checkBatch(_ batch: [Tensor], caches: [KVCache]) throws {
        guard !batch.isEmpty, batch.count == caches.count else {
            throw ModelError.invalidInput("decoder needs one cache per sequence (\(batch.count) sequences, \(caches.count) caches)")
        }
        for (embeddings, cache) in zip(batch, caches) {
            guard embeddings.rank == 2, embeddings.shape[1] == hiddenSize, embeddings.shape[0] > 0 else {
                throw ModelError.invalidInput("decoder expects embeddings [T, \(hiddenSize)], got \(embeddings.shape)")
            }
            guard cache.length + embeddings.shape[0] <= maxPositions else {
                throw ModelError.invalidInput(
                    "sequence of \(cache.length + embeddings.shape[0]) positions exceeds the model's \(maxPositions)")
            }
        }
    }
}

/// Where each sequence's rows sit in a batch stacked along the rows.
struct BatchLayout {
    let rows: [Range<Int>]
    let starts: [Int]

    init(_ batch: [Tensor], caches: [KVCache]) {
        var offset = 0
        rows = batch.map { e in
            defer { offset += e.shape[0] }
            return offset..<(offset + e.shape[0])
        }
        starts = caches.map(\.length)
    }

    var count: Int { rows.count }

    /// Splits stacked rows back into one tensor per sequence (no copy for a batch of one).
    func split(_ stacked: Tensor) -> [Tensor] {
        count == 1 ? [stacked] : rows.map { stacked.rows($0) }
    }

    /// Stacks per-sequence results (no copy for a batch of one).
    func stack(_ parts: [Tensor]) -> Tensor {
        parts.count == 1 ? parts[0] : Tensor.concatenateRows(parts)
    }

    /// Per-sequence outputs of a forward pass over the stacked rows.
    func outputs(hidden: Tensor, states: [Tensor]?) -> [DecoderOutput] {
        let hiddens = split(hidden)
        let perSequenceStates = states.map { all in all.map(split) }
        return hiddens.indices.map { s in
            DecoderOutput(hidden: hiddens[s], hiddenStates: perSequenceStates.map { $0.map { $0[s] } })
        }
    }
}

/// Looks up `ids` in an embedding table `[vocabulary, width]`, rejecting ids outside it.
func embedTokens(_ ids: [Int], table: WeightMatrix) throws -> Tensor {
    let vocabulary = table.rows
    if let bad = ids.first(where: { $0 < 0 || $0 >= vocabulary }) {
        throw ModelError.invalidInput("token id \(bad) is outside the vocabulary of \(vocabulary)")
    }
    return table.gatherRows(ids)
}
