// GPT-2 (the caption model's language model).
// Follows Hugging Face transformers `models/gpt2/modeling_gpt2.py` (GPT2LMHeadModel); the LM head is
// tied to `wte` unless the checkpoint carries its own `lm_head.weight`.

import Tensor
import Weights

// MARK: - Configuration

/// `config.json` of a `gpt2` model.
public struct GPT2Configuration: Decodable, Sendable {
    public var vocabularySize: Int
    public var maxPositions: Int
    public var hiddenSize: Int
    public var layerCount: Int
    public var headCount: Int
    public var innerSize: Int?
    public var activation: String
    public var layerNormEpsilon: Float
    public var scaleAttentionWeights: Bool
    public var scaleByInverseLayerIndex: Bool
    public var reorderAndUpcastAttention: Bool

    enum CodingKeys: String, CodingKey {
        case vocabularySize = "vocab_size", maxPositions = "n_positions", hiddenSize = "n_embd"
        case layerCount = "n_layer", headCount = "n_head", innerSize = "n_inner"
        case activation = "activation_function", layerNormEpsilon = "layer_norm_epsilon"
        case scaleAttentionWeights = "scale_attn_weights", scaleByInverseLayerIndex = "scale_attn_by_inverse_layer_idx"
        case reorderAndUpcastAttention = "reorder_and_upcast_attn"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        vocabularySize = try c.decodeSize(.vocabularySize, default: 50257)
        maxPositions = try c.decodeSize(.maxPositions, default: 1024)
        hiddenSize = try c.decodeSize(.hiddenSize, default: 768)
        layerCount = try c.decodeSize(.layerCount, default: 12)
        headCount = try c.decodeSize(.headCount, default: 12)
        innerSize = try c.decodeSizeIfPresent(.innerSize)
        activation = try c.decodeIfPresent(String.self, forKey: .activation) ?? "gelu_new"
        layerNormEpsilon = try c.decodePositive(.layerNormEpsilon, default: 1e-5)
        scaleAttentionWeights = try c.decodeIfPresent(Bool.self, forKey: .scaleAttentionWeights) ?? true
        scaleByInverseLayerIndex = try c.decodeIfPresent(Bool.self, forKey: .scaleByInverseLayerIndex) ?? false
        reorderAndUpcastAttention = try c.decodeIfPresent(Bool.self, forKey: .reorderAndUpcastAttention) ?? false
        guard hiddenSize % headCount == 0 else {
            throw DecodingError.dataCorruptedError(
                forKey: .headCount, in: c, debugDescription: "n_embd \(hiddenSize) is not divisible by \(headCount) heads")
        }
    }

    public var headDim: Int { hiddenSize / headCount }
    public var mlpSize: Int { innerSize ?? 4 * hiddenSize }
}

// MARK: - Model

/// GPT-2 with its language-model head.
public struct GPT2: CausalLanguageModel {
    struct Block: Sendable {
        let norm1: LayerNorm, norm2: LayerNorm
        let qkv: Conv1D, projection: Conv1D
        let fc: Conv1D, fcProjection: Conv1D
    }

    public let config: GPT2Configuration
    let tokenEmbedding: WeightMatrix
    let positionEmbedding: Tensor
    let blocks: [Block]
    let finalNorm: LayerNorm
    let head: WeightMatrix
    let activation: Activation
    let attention: AttentionShape
    /// The type the caches this model makes store keys and values in (f32 by default: exact).
    public var cacheFormat: KVCacheFormat = .f32

    /// Loads a `GPT2LMHeadModel` (or bare `GPT2Model`) directory.
    public init(directory: String, matrixFormat: WeightFormat? = nil) throws {
        let config = try ConfigFile.load(GPT2Configuration.self, from: directory)
        let store = try WeightStore(directory: directory, matrixFormat: matrixFormat)
        let prefix = store.contains("transformer.wte.weight") ? "transformer." : ""
        try self.init(store: store, config: config, prefix: prefix)
        try store.verifyAllUsed(ignoring: { $0.hasSuffix(".attn.bias") || $0.hasSuffix(".attn.masked_bias") })
    }

    /// Loads from `store`, with the base model's tensors under `prefix` (`transformer.` in `GPT2LMHeadModel`).
    public init(store: WeightStore, config: GPT2Configuration, prefix: String = "transformer.") throws {
        let variants = [
            config.scaleAttentionWeights ? nil : "scale_attn_weights: false",
            config.scaleByInverseLayerIndex ? "scale_attn_by_inverse_layer_idx: true" : nil,
            config.reorderAndUpcastAttention ? "reorder_and_upcast_attn: true" : nil,
        ].compactMap { $0 }
        guard variants.isEmpty else {
            throw ModelError.unsupported(
                "GPT-2 attention variant \(variants.joined(separator: ", ")) in config.json (the engine runs only "
                    + "scale_attn_weights: true, scale_attn_by_inverse_layer_idx: false, reorder_and_upcast_attn: false)")
        }
        self.config = config
        let c = config.hiddenSize, eps = config.layerNormEpsilon
        let s = store.scope(prefix)
        tokenEmbedding = try s.matrix("wte.weight", rows: config.vocabularySize, columns: c)
        positionEmbedding = try s.tensor("wpe.weight", shape: [config.maxPositions, c])
        blocks = try (0..<config.layerCount).map { i in
            let b = s.scope("h.\(i).")
            return Block(
                norm1: try LayerNorm(b, "ln_1", width: c, epsilon: eps),
                norm2: try LayerNorm(b, "ln_2", width: c, epsilon: eps),
                qkv: try Conv1D(b, "attn.c_attn", inputs: c, outputs: 3 * c),
                projection: try Conv1D(b, "attn.c_proj", inputs: c, outputs: c),
                fc: try Conv1D(b, "mlp.c_fc", inputs: c, outputs: config.mlpSize),
                fcProjection: try Conv1D(b, "mlp.c_proj", inputs: config.mlpSize, outputs: c))
        }
        finalNorm = try LayerNorm(s, "ln_f", width: c, epsilon: eps)
        head = store.contains("lm_head.weight")
            ? try store.matrix("lm_head.weight", rows: config.vocabularySize, columns: c) : tokenEmbedding
        activation = try Models.activation(named: config.activation, in: "GPT-2")
        attention = AttentionShape(heads: config.headCount, headDim: config.headDim)
    }

    public var hiddenSize: Int { config.hiddenSize }
    public var vocabularySize: Int { config.vocabularySize }
    public var maxPositions: Int { config.maxPositions }

    public func embed(_ ids: [Int]) throws -> Tensor { try embedTokens(ids, table: tokenEmbedding) }

    public func makeCache(capacity: Int) -> KVCache {
        KVCache(layers: config.layerCount, width: config.hiddenSize, headDim: attention.headDim, reservingCapacity: capacity,
                format: cacheFormat)
    }

    public func forward(_ batch: [Tensor], caches: inout [KVCache], recordHiddenStates: Bool = false) throws -> [DecoderOutput] {
        try checkBatch(batch, caches: caches)
        let c = config.hiddenSize
        let layout = BatchLayout(batch, caches: caches)
        var h = layout.stack(zip(batch, layout.starts).map { e, start in
            e + positionEmbedding.rows(start..<(start + e.shape[0]))
        })
        var states: [Tensor]? = recordHiddenStates ? [h] : nil
        for (i, block) in blocks.enumerated() {
            let qkv = block.qkv(block.norm1(h))
            let mixed = layout.rows.indices.map { s in
                let rows = layout.rows[s]
                let cached = caches[s].append(
                    layer: i, keys: qkv.block(rows: rows, columns: c..<(2 * c)),
                    values: qkv.block(rows: rows, columns: (2 * c)..<(3 * c)))
                return Tensor.attention(
                    query: qkv.block(rows: rows, columns: 0..<c), cached: cached, shape: attention,
                    mask: .causal(offset: layout.starts[s]))
            }
            h.add(block.projection(layout.stack(mixed)))
            h.add(block.fcProjection(block.fc(block.norm2(h)).applying(activation)))
            if i < blocks.count - 1 { states?.append(h) }
        }
        for s in caches.indices { caches[s].advance(by: layout.rows[s].count) }
        h = finalNorm(h)
        states?.append(h)
        return layout.outputs(hidden: h, states: states)
    }

    public func logits(_ hidden: Tensor) -> Tensor { hidden.linear(head) }
}
