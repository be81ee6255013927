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
    /// Runs `embeddings [T, hiddenSize]` at positions `cache.length ..< cache.length + T` and appends them
    /// to the cache.
    func forward(_ embeddings: Tensor, cache: inout KVCache, recordHiddenStates: Bool) throws -> DecoderOutput
    /// Next-token logits `[T, vocabularySize]` for hidden states `[T, hiddenSize]`.
    func logits(_ hidden: Tensor) -> Tensor
}

extension CausalLanguageModel {
    /// Runs token ids through the model from an empty cache and returns the logits of every position.
    public func logits(tokens: [Int]) throws -> Tensor {
        var cache = makeCache(capacity: tokens.count)
        return logits(try forward(embed(tokens), cache: &cache, recordHiddenStates: false).hidden)
    }

    func checkInput(_ embeddings: Tensor, cache: KVCache) throws {
        guard embeddings.rank == 2, embeddings.shape[1] == hiddenSize, embeddings.shape[0] > 0 else {
            throw ModelError.invalidInput("decoder expects embeddings [T, \(hiddenSize)], got \(embeddings.shape)")
        }
        guard cache.length + embeddings.shape[0] <= maxPositions else {
            throw ModelError.invalidInput(
                "sequence of \(cache.length + embeddings.shape[0]) positions exceeds the model's \(maxPositions)")
        }
    }
}

/// Looks up `ids` in an embedding table `[vocabulary, width]`, rejecting ids outside it.
func embedTokens(_ ids: [Int], table: Tensor) throws -> Tensor {
    let vocabulary = table.shape[0]
    if let bad = ids.first(where: { $0 < 0 || $0 >= vocabulary }) {
        throw ModelError.invalidInput("token id \(bad) is outside the vocabulary of \(vocabulary)")
    }
    return table.gatherRows(ids)
}
