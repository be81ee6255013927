// LLaMA-architecture decoder (LLaVA-1.5's Vicuna language model).
// Follows Hugging Face transformers `models/llama/modeling_llama.py` (LlamaForCausalLM): RMSNorm,
// rotate-half rotary embeddings, grouped-query attention, SiLU-gated MLP, tied or untied LM head.

import Tensor
import Weights

// MARK: - Configuration

/// `config.json` of a `llama` model (also the `text_config` of a LLaVA model).
public struct LlamaConfiguration: Decodable, Sendable {
    public var vocabularySize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layerCount: Int
    public var headCount: Int
    public var kvHeadCount: Int
    public var headDim: Int
    public var maxPositions: Int
    public var ropeTheta: Float
    public var rmsNormEpsilon: Float
    public var tieWordEmbeddings: Bool
    public var hiddenAct: String
    public var attentionBias: Bool
    public var mlpBias: Bool

    enum CodingKeys: String, CodingKey {
        case vocabularySize = "vocab_size", hiddenSize = "hidden_size", intermediateSize = "intermediate_size"
        case layerCount = "num_hidden_layers", headCount = "num_attention_heads", kvHeadCount = "num_key_value_heads"
        case headDim = "head_dim", maxPositions = "max_position_embeddings"
        case ropeTheta = "rope_theta", ropeScaling = "rope_scaling", ropeParameters = "rope_parameters"
        case rmsNormEpsilon = "rms_norm_eps", tieWordEmbeddings = "tie_word_embeddings", hiddenAct = "hidden_act"
        case attentionBias = "attention_bias", mlpBias = "mlp_bias"
    }

    /// The keys of a `rope_scaling` (transformers 4) or `rope_parameters` (transformers 5) object the engine reads.
    enum RopeKeys: String, CodingKey {
        case ropeType = "rope_type", type, ropeTheta = "rope_theta"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        vocabularySize = try c.decodeSize(.vocabularySize, default: 32000)
        hiddenSize = try c.decodeSize(.hiddenSize)
        intermediateSize = try c.decodeSize(.intermediateSize)
        layerCount = try c.decodeSize(.layerCount)
        headCount = try c.decodeSize(.headCount)
        kvHeadCount = try c.decodeSizeIfPresent(.kvHeadCount) ?? headCount
        if c.contains(.headDim), try !c.decodeNil(forKey: .headDim) {
            headDim = try c.decodeSize(.headDim)
        } else {
            guard hiddenSize % headCount == 0 else {
                throw DecodingError.dataCorruptedError(
                    forKey: .headCount, in: c,
                    debugDescription: "hidden_size \(hiddenSize) is not divisible by \(headCount) heads (and no head_dim is given)")
            }
            headDim = hiddenSize / headCount
        }
        maxPositions = try c.decodeSize(.maxPositions, default: 2048)
        rmsNormEpsilon = try c.decodePositive(.rmsNormEpsilon, default: 1e-6)
        tieWordEmbeddings = try c.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings) ?? false
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? "silu"
        attentionBias = try c.decodeIfPresent(Bool.self, forKey: .attentionBias) ?? false
        mlpBias = try c.decodeIfPresent(Bool.self, forKey: .mlpBias) ?? false
        ropeTheta = try Self.decodeRopeTheta(c)
        guard headCount % kvHeadCount == 0 else {
            throw DecodingError.dataCorruptedError(
                forKey: .kvHeadCount, in: c,
                debugDescription: "\(headCount) attention heads cannot share \(kvHeadCount) key/value heads")
        }
    }

    /// The rotary base frequency, read with transformers 5's precedence (`RotaryEmbeddingConfigMixin.
    /// convert_rope_params_to_dict`): the RoPE object is a non-empty `rope_scaling` if there is one, else
    /// `rope_parameters`; its `rope_theta` wins over a top-level `rope_theta`, which wins over 10000; its
    /// `rope_type` wins over its legacy `type` (only the default type is supported).
    static func decodeRopeTheta(_ c: KeyedDecodingContainer<CodingKeys>) throws -> Float {
        func isNonEmptyObject(_ key: CodingKeys) throws -> Bool {
            guard c.contains(key), try !c.decodeNil(forKey: key) else { return false }
            guard let object = try? c.nestedContainer(keyedBy: AnyKey.self, forKey: key) else {
                throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "must be an object")
            }
            return !object.allKeys.isEmpty
        }
        let objectKey: CodingKeys? = try isNonEmptyObject(.ropeScaling) ? .ropeScaling
            : try isNonEmptyObject(.ropeParameters) ? .ropeParameters : nil
        if let objectKey {
            let rope = try c.nestedContainer(keyedBy: RopeKeys.self, forKey: objectKey)
            let typeKey: RopeKeys = rope.contains(.ropeType) ? .ropeType : .type
            let kind = try rope.decodeIfPresent(String.self, forKey: typeKey) ?? "default"
            guard kind == "default" else {
                throw DecodingError.dataCorruptedError(
                    forKey: typeKey, in: rope, debugDescription: "rope type '\(kind)' is not supported (only 'default')")
            }
            if rope.contains(.ropeTheta), try !rope.decodeNil(forKey: .ropeTheta) {
                return try rope.decodePositive(.ropeTheta, default: 10_000)
            }
        }
        if c.contains(.ropeTheta), try !c.decodeNil(forKey: .ropeTheta) {
            return try c.decodePositive(.ropeTheta, default: 10_000)
        }
        return 10_000
    }

    /// Any key (to list an object's keys).
    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}

// MARK: - Model

/// A LLaMA decoder with its language-model head.
public struct Llama: CausalLanguageModel {
    struct Block: Sendable {
        let inputNorm: RMSNorm, postAttentionNorm: RMSNorm
        let query: Linear, key: Linear, value: Linear, output: Linear
        let gate: Linear, up: Linear, down: Linear

        var matrices: [WeightMatrix] { [query, key, value, output, gate, up, down].map(\.weight) }
    }

    public let config: LlamaConfiguration
    let tokenEmbedding: WeightMatrix
    let blocks: [Block]
    let finalNorm: RMSNorm
    let head: WeightMatrix
    let rotary: RotaryEmbedding
    let attention: AttentionShape
    let activation: Activation
    /// The type the caches this model makes store keys and values in (f32 by default: exact).
    public var cacheFormat: KVCacheFormat = .f32

    /// Loads a `LlamaForCausalLM` directory.
    public init(directory: String, matrixFormat: WeightFormat? = nil) throws {
        let config = try ConfigFile.load(LlamaConfiguration.self, from: directory)
        let store = try WeightStore(directory: directory, matrixFormat: matrixFormat)
        try self.init(store: store, config: config)
        try store.verifyAllUsed(ignoring: { $0.hasSuffix("rotary_emb.inv_freq") })
    }

    /// Loads from `store`; the base model sits under `prefix + "model."`, the head at `prefix + "lm_head.weight"`
    /// (LLaVA checkpoints use the prefix `language_model.`).
    public init(store: WeightStore, config: LlamaConfiguration, prefix: String = "") throws {
        self.config = config
        let c = config.hiddenSize, eps = config.rmsNormEpsilon
        let q = config.headCount * config.headDim, kv = config.kvHeadCount * config.headDim
        let ab = config.attentionBias, mb = config.mlpBias
        let s = store.scope(prefix + "model.")
        tokenEmbedding = try s.matrix("embed_tokens.weight", rows: config.vocabularySize, columns: c)
        blocks = try (0..<config.layerCount).map { i in
            let b = s.scope("layers.\(i).")
            return Block(
                inputNorm: try RMSNorm(b, "input_layernorm", width: c, epsilon: eps),
                postAttentionNorm: try RMSNorm(b, "post_attention_layernorm", width: c, epsilon: eps),
                query: try Linear(b, "self_attn.q_proj", inputs: c, outputs: q, bias: ab),
                key: try Linear(b, "self_attn.k_proj", inputs: c, outputs: kv, bias: ab),
                value: try Linear(b, "self_attn.v_proj", inputs: c, outputs: kv, bias: ab),
                output: try Linear(b, "self_attn.o_proj", inputs: q, outputs: c, bias: ab),
                gate: try Linear(b, "mlp.gate_proj", inputs: c, outputs: config.intermediateSize, bias: mb),
                up: try Linear(b, "mlp.up_proj", inputs: c, outputs: config.intermediateSize, bias: mb),
                down: try Linear(b, "mlp.down_proj", inputs: config.intermediateSize, outputs: c, bias: mb))
        }
        finalNorm = try RMSNorm(s, "norm", width: c, epsilon: eps)
        let headName = prefix + "lm_head.weight"
        if config.tieWordEmbeddings && !store.contains(headName) {
            head = tokenEmbedding
        } else {
            head = try store.matrix(headName, rows: config.vocabularySize, columns: c)
        }
        rotary = RotaryEmbedding(headDim: config.headDim, theta: config.ropeTheta)
        attention = AttentionShape(heads: config.headCount, kvHeads: config.kvHeadCount, headDim: config.headDim)
        activation = try Models.activation(named: config.hiddenAct, in: "LLaMA")
    }

    /// The formats the model's weight matrices are kept in (more than one when some could not be quantized,
    /// see `WeightStore.keptInStoredFormat`).
    public var matrixFormats: Set<WeightFormat> {
        Set(blocks.flatMap(\.matrices).map(\.format) + [tokenEmbedding.format, head.format])
    }

    /// Bytes of layer `index`'s weight matrices: what one decode step reads of that layer.
    public func layerMatrixBytes(_ index: Int) -> Int { blocks[index].matrices.reduce(0) { $0 + $1.byteCount } }

    /// Bytes of the language-model head (read once per generated token).
    public var headBytes: Int { head.byteCount }

    public var hiddenSize: Int { config.hiddenSize }
    public var vocabularySize: Int { config.vocabularySize }
    public var maxPositions: Int { config.maxPositions }

    public func embed(_ ids: [Int]) throws -> Tensor { try embedTokens(ids, table: tokenEmbedding) }

    public func makeCache(capacity: Int) -> KVCache {
        KVCache(layers: config.layerCount, width: attention.kvWidth, headDim: attention.headDim, reservingCapacity: capacity,
                format: cacheFormat)
    }

    public func forward(_ batch: [Tensor], caches: inout [KVCache], recordHiddenStates: Bool = false) throws -> [DecoderOutput] {
        try checkBatch(batch, caches: caches)
        let layout = BatchLayout(batch, caches: caches)
        var h = layout.stack(batch)
        var states: [Tensor]? = recordHiddenStates ? [h] : nil
        for (i, block) in blocks.enumerated() {
            h.add(selfAttention(block, layer: i, h, layout: layout, caches: &caches))
            let y = block.postAttentionNorm(h)
            var gateAndUp = Linear.apply([block.gate, block.up], to: y)  // taken out, not copied, one by one
            let up = gateAndUp.removeLast()
            var gated = gateAndUp.removeLast().applying(activation)
            gated.multiply(up)
            h.add(block.down(gated))
            if i < blocks.count - 1 { states?.append(h) }
        }
        for s in caches.indices { caches[s].advance(by: layout.rows[s].count) }
        h = finalNorm(h)
        states?.append(h)
        return layout.outputs(hidden: h, states: states)
    }

    public func logits(_ hidden: Tensor) -> Tensor { hidden.linear(head) }

    /// The attention half of a block (its output projection included). A function of its own so that the
    /// normed input, queries, keys and values are freed before the MLP allocates its wider tensors.
    private func selfAttention(
        _ block: Block, layer i: Int, _ h: Tensor, layout: BatchLayout, caches: inout [KVCache]
    ) -> Tensor {
        let x = block.inputNorm(h)
        // Taken out of the array (not copied), so that rotating q and k in place does not copy them.
        var projections = Linear.apply([block.query, block.key, block.value], to: x)
        let v = projections.removeLast()
        var k = projections.removeLast(), q = projections.removeLast()
        for s in layout.rows.indices {
            rotary.apply(to: &q, rows: layout.rows[s], heads: attention.heads, startPosition: layout.starts[s])
            rotary.apply(to: &k, rows: layout.rows[s], heads: attention.kvHeads, startPosition: layout.starts[s])
        }
        let mixed = layout.rows.indices.map { s in
            let rows = layout.rows[s]
            let cached = caches[s].append(layer: i, keys: k.block(rows: rows), values: v.block(rows: rows))
            return Tensor.attention(
                query: q.block(rows: rows), cached: cached, shape: attention, mask: .causal(offset: layout.starts[s]))
        }
        return block.output(layout.stack(mixed))
    }
}
