// Analytic cost of a forward pass, from a configuration alone (so a request can state what it cost,
// and what it would cost at other model shapes). Convention: a linear map over R rows costs 2·R·in·out;
// attention costs 4·heads·headDim·P for P (query, key) pairs visited; element-wise work is not counted.

/// Floating-point operation counts of the pieces of a transformer.
public enum FLOPs {
    /// A linear map of `rows` rows from `inputs` to `outputs` features.
    public static func linear(rows: Int, inputs: Int, outputs: Int) -> Double {
        2 * Double(rows) * Double(inputs) * Double(outputs)
    }

    /// Attention scores and the weighted sum of values over `pairs` (query, key) pairs.
    public static func attention(heads: Int, headDim: Int, pairs: Int) -> Double {
        4 * Double(heads) * Double(headDim) * Double(pairs)
    }

    /// (query, key) pairs visited by causal attention of `newTokens` after `cached` positions.
    public static func causalPairs(newTokens: Int, cached: Int) -> Int {
        newTokens * cached + newTokens * (newTokens + 1) / 2
    }
}

extension CLIPTowerConfiguration {
    /// Cost of the vision tower on `images` images (patch embedding, every layer, and the per-token
    /// projection into `projectionDim` when given).
    public func visionFLOPs(images: Int, projectionDim: Int? = nil) -> Double {
        let t = visionTokenCount, c = hiddenSize
        let patches = FLOPs.linear(rows: t - 1, inputs: channelCount * patchSize * patchSize, outputs: c)
        let layer = 4 * FLOPs.linear(rows: t, inputs: c, outputs: c)
            + FLOPs.linear(rows: t, inputs: c, outputs: intermediateSize)
            + FLOPs.linear(rows: t, inputs: intermediateSize, outputs: c)
            + FLOPs.attention(heads: headCount, headDim: headDim, pairs: t * t)
        let projection = projectionDim.map { FLOPs.linear(rows: t, inputs: c, outputs: $0) } ?? 0
        return Double(images) * (patches + Double(layerCount) * layer + projection)
    }

    /// Cost of the text tower on `texts` texts of `length` tokens (causal), with the pooled projection.
    public func textFLOPs(texts: Int, length: Int, projectionDim: Int? = nil) -> Double {
        let c = hiddenSize
        let layer = 4 * FLOPs.linear(rows: length, inputs: c, outputs: c)
            + FLOPs.linear(rows: length, inputs: c, outputs: intermediateSize)
            + FLOPs.linear(rows: length, inputs: intermediateSize, outputs: c)
            + FLOPs.attention(heads: headCount, headDim: headDim, pairs: FLOPs.causalPairs(newTokens: length, cached: 0))
        let projection = projectionDim.map { FLOPs.linear(rows: 1, inputs: c, outputs: $0) } ?? 0
        return Double(texts) * (Double(layerCount) * layer + projection)
    }
}

extension GPT2Configuration {
    /// Cost of running `newTokens` positions after `cached` ones, with logits for `logitRows` of them.
    public func flops(newTokens: Int, cached: Int, logitRows: Int) -> Double {
        let c = hiddenSize, t = newTokens
        let layer = FLOPs.linear(rows: t, inputs: c, outputs: 3 * c) + FLOPs.linear(rows: t, inputs: c, outputs: c)
            + FLOPs.linear(rows: t, inputs: c, outputs: mlpSize) + FLOPs.linear(rows: t, inputs: mlpSize, outputs: c)
            + FLOPs.attention(heads: headCount, headDim: headDim, pairs: FLOPs.causalPairs(newTokens: t, cached: cached))
        return Double(layerCount) * layer + FLOPs.linear(rows: logitRows, inputs: c, outputs: vocabularySize)
    }

    /// Bytes of fp32 weights one decode step multiplies by (every layer's matrices and the LM head).
    public var decodeWeightBytes: Double {
        let c = Double(hiddenSize), m = Double(mlpSize)
        let perLayer = 3 * c * c + c * c + 2 * c * m
        return 4 * (Double(layerCount) * perLayer + Double(vocabularySize) * c)
    }
}

extension LlamaConfiguration {
    /// Cost of running `newTokens` positions after `cached` ones, with logits for `logitRows` of them.
    public func flops(newTokens: Int, cached: Int, logitRows: Int) -> Double {
        let c = hiddenSize, t = newTokens, q = headCount * headDim, kv = kvHeadCount * headDim
        let layer = FLOPs.linear(rows: t, inputs: c, outputs: q) + 2 * FLOPs.linear(rows: t, inputs: c, outputs: kv)
            + FLOPs.linear(rows: t, inputs: q, outputs: c) + 3 * FLOPs.linear(rows: t, inputs: c, outputs: intermediateSize)
            + FLOPs.attention(heads: headCount, headDim: headDim, pairs: FLOPs.causalPairs(newTokens: t, cached: cached))
        return Double(layerCount) * layer + FLOPs.linear(rows: logitRows, inputs: c, outputs: vocabularySize)
    }

    /// Cost of generating `sampledTokens` tokens after a `promptTokens`-token prompt with a KV cache: one
    /// forward per sampled token (the prompt yields the first, each token the next), logits for the last row.
    public func generationFLOPs(promptTokens: Int, sampledTokens: Int) -> Double {
        var cost = flops(newTokens: promptTokens, cached: 0, logitRows: 1)
        for step in 0..<max(sampledTokens - 1, 0) {
            cost += flops(newTokens: 1, cached: promptTokens + step, logitRows: 1)
        }
        return cost
    }

    /// Bytes of fp32 weights one decode step multiplies by; `withHead` adds the LM head.
    public func decodeWeightBytes(withHead: Bool) -> Double {
        let c = Double(hiddenSize), q = Double(headCount * headDim), kv = Double(kvHeadCount * headDim)
        let perLayer = c * q + 2 * c * kv + q * c + 3 * c * Double(intermediateSize)
        return 4 * (Double(layerCount) * perLayer + (withHead ? Double(vocabularySize) * c : 0))
    }
}

extension CaptionMapperConfiguration {
    /// Cost of mapping `tokens` pruned-patch embeddings to the prefix (the prefix constants join the tokens).
    public func flops(tokens: Int) -> Double {
        let h = hiddenSize, t = tokens + prefixLength
        let layer = FLOPs.linear(rows: t, inputs: h, outputs: h) + FLOPs.linear(rows: t, inputs: h, outputs: 2 * h)
            + FLOPs.linear(rows: t, inputs: h, outputs: h)
            + FLOPs.linear(rows: t, inputs: h, outputs: mlpSize) + FLOPs.linear(rows: t, inputs: mlpSize, outputs: h)
            + FLOPs.attention(heads: headCount, headDim: h / headCount, pairs: t * t)
        return FLOPs.linear(rows: tokens, inputs: inputSize, outputs: h) + Double(layerCount) * layer
    }
}

extension CaptionSelectorConfiguration {
    /// Cost of scoring `candidates` candidate embeddings.
    public func flops(candidates: Int) -> Double {
        let d = hiddenSize, c = candidates
        let layer = FLOPs.linear(rows: c, inputs: d, outputs: 3 * d) + FLOPs.linear(rows: c, inputs: d, outputs: d)
            + FLOPs.linear(rows: c, inputs: d, outputs: intermediateSize)
            + FLOPs.linear(rows: c, inputs: intermediateSize, outputs: d)
            + FLOPs.attention(heads: headCount, headDim: d / headCount, pairs: c * c)
        return Double(layerCount) * layer + FLOPs.linear(rows: c, inputs: d, outputs: 1)
    }
}

extension LlavaConfiguration {
    /// Cost of projecting `tokens` vision features into the language model's space.
    public func projectorFLOPs(tokens: Int) -> Double {
        FLOPs.linear(rows: tokens, inputs: visionHiddenSize, outputs: textHiddenSize)
            + FLOPs.linear(rows: tokens, inputs: textHiddenSize, outputs: textHiddenSize)
    }
}
