// CLIP vision and text towers.
// Follows Hugging Face transformers `models/clip/modeling_clip.py` (CLIPVisionTransformer,
// CLIPTextTransformer, CLIPModel's visual_projection / text_projection).

import Tensor
import Weights

// MARK: - Configuration

/// One CLIP tower's hyper-parameters (`vision_config` / `text_config` of a `CLIPConfig`).
public struct CLIPTowerConfiguration: Decodable, Sendable, Equatable {
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layerCount: Int
    public var headCount: Int
    public var hiddenAct: String
    public var layerNormEpsilon: Float
    // Vision only.
    public var imageSize: Int
    public var patchSize: Int
    public var channelCount: Int
    // Text only.
    public var vocabularySize: Int
    public var maxPositions: Int
    public var eosTokenId: Int
    /// Width of the projection into the joint space, when the tower config states it.
    public var projectionDim: Int?

    enum CodingKeys: String, CodingKey {
        case hiddenSize = "hidden_size", intermediateSize = "intermediate_size"
        case layerCount = "num_hidden_layers", headCount = "num_attention_heads"
        case hiddenAct = "hidden_act", layerNormEpsilon = "layer_norm_eps"
        case imageSize = "image_size", patchSize = "patch_size", channelCount = "num_channels"
        case vocabularySize = "vocab_size", maxPositions = "max_position_embeddings", eosTokenId = "eos_token_id"
        case projectionDim = "projection_dim"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        hiddenSize = try c.decodeSize(.hiddenSize)
        intermediateSize = try c.decodeSize(.intermediateSize)
        layerCount = try c.decodeSize(.layerCount)
        headCount = try c.decodeSize(.headCount)
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? "quick_gelu"
        layerNormEpsilon = try c.decodePositive(.layerNormEpsilon, default: 1e-5)
        imageSize = try c.decodeSize(.imageSize, default: 224)
        patchSize = try c.decodeSize(.patchSize, default: 32)
        channelCount = try c.decodeSize(.channelCount, default: 3)
        vocabularySize = try c.decodeSize(.vocabularySize, default: 49408)
        maxPositions = try c.decodeSize(.maxPositions, default: 77)
        eosTokenId = try c.decodeInteger(.eosTokenId, in: 0...largestConfigSize, default: 2)
        projectionDim = try c.decodeSizeIfPresent(.projectionDim)
        guard patchSize <= imageSize else {
            throw DecodingError.dataCorruptedError(
                forKey: .patchSize, in: c, debugDescription: "patch_size \(patchSize) is larger than image_size \(imageSize)")
        }
        guard hiddenSize % headCount == 0 else {
            throw DecodingError.dataCorruptedError(
                forKey: .headCount, in: c, debugDescription: "hidden_size \(hiddenSize) is not divisible by \(headCount) heads")
        }
    }

    public var headDim: Int { hiddenSize / headCount }
    public var patchesPerSide: Int { imageSize / patchSize }
    /// Patches plus the class token.
    public var visionTokenCount: Int { patchesPerSide * patchesPerSide + 1 }
}

/// A `config.json` of a `CLIPModel` (`model_type: clip`) or of a single tower
/// (`clip_vision_model`, `clip_text_model`).
public struct CLIPConfiguration: Decodable, Sendable {
    public var modelType: String
    public var vision: CLIPTowerConfiguration?
    public var text: CLIPTowerConfiguration?
    public var projectionDim: Int?

    enum CodingKeys: String, CodingKey {
        case modelType = "model_type", vision = "vision_config", text = "text_config", projectionDim = "projection_dim"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        modelType = try c.decodeIfPresent(String.self, forKey: .modelType) ?? "clip"
        projectionDim = try c.decodeSizeIfPresent(.projectionDim)
        switch modelType {
        case "clip":
            vision = try c.decodeIfPresent(CLIPTowerConfiguration.self, forKey: .vision)
            text = try c.decodeIfPresent(CLIPTowerConfiguration.self, forKey: .text)
        case "clip_vision_model":
            vision = try CLIPTowerConfiguration(from: decoder)
        case "clip_text_model":
            text = try CLIPTowerConfiguration(from: decoder)
        default:
            throw DecodingError.dataCorruptedError(
                forKey: .modelType, in: c, debugDescription: "'\(modelType)' is not a CLIP model type")
        }
    }
}

// MARK: - Shared encoder

extension CLIP {
    struct EncoderLayer: Sendable {
        let norm1: LayerNorm, norm2: LayerNorm
        /// q, k and v projections fused into one `[3C, C]` map (one GEMM instead of three).
        let qkv: Linear
        let output: Linear
        let fc1: Linear, fc2: Linear
        let activation: Activation
        let attention: AttentionShape

        init(_ s: WeightScope, _ config: CLIPTowerConfiguration) throws {
            let c = config.hiddenSize
            norm1 = try LayerNorm(s, "layer_norm1", width: c, epsilon: config.layerNormEpsilon)
            norm2 = try LayerNorm(s, "layer_norm2", width: c, epsilon: config.layerNormEpsilon)
            let parts = try ["q_proj", "k_proj", "v_proj"].map { try Linear(s, "self_attn." + $0, inputs: c, outputs: c) }
            qkv = Linear(
                weight: WeightMatrix.concatenateRows(parts.map(\.weight)),
                bias: Tensor.concatenateRows(parts.map { $0.bias!.reshaped([1, c]) }).reshaped([3 * c]))
            output = try Linear(s, "self_attn.out_proj", inputs: c, outputs: c)
            fc1 = try Linear(s, "mlp.fc1", inputs: c, outputs: config.intermediateSize)
            fc2 = try Linear(s, "mlp.fc2", inputs: config.intermediateSize, outputs: c)
            activation = try Models.activation(named: config.hiddenAct, in: "CLIP")
            attention = AttentionShape(heads: config.headCount, headDim: config.headDim)
        }

        /// Runs the layer on `sequences` sequences of `length` rows each, stacked as `[sequences·length, C]`.
        /// `probe` receives the layer's normalised input's query and key projections when set.
        func callAsFunction(
            _ x: Tensor, sequences: Int, length: Int, mask: AttentionMask,
            probe: ((_ query: Tensor, _ key: Tensor) -> Void)? = nil
        ) -> Tensor {
            let c = attention.queryWidth
            let fused = qkv(norm1(x))
            probe?(fused.columns(0..<c), fused.columns(c..<(2 * c)))
            func attend(_ one: Tensor) -> Tensor {
                Tensor.attention(
                    query: one.block(columns: 0..<c), key: one.block(columns: c..<(2 * c)),
                    value: one.block(columns: (2 * c)..<(3 * c)), shape: attention, mask: mask)
            }
            let mixed = sequences == 1
                ? attend(fused)
                : Tensor.concatenateRows((0..<sequences).map { attend(fused.rows(($0 * length)..<(($0 + 1) * length))) })
            var out = x + output(mixed)
            out.add(fc2(fc1(norm2(out)).applying(activation)))
            return out
        }
    }
}

/// Namespace of the two CLIP towers.
public enum CLIP {}

// MARK: - Vision

extension CLIP {
    /// What one vision forward returns (leading dimension = images).
    public struct VisionOutput: Sendable {
        /// Embeddings after the pre-layernorm, then every layer's output: `layerCount + 1` tensors `[B, T, C]`.
        public var hiddenStates: [Tensor]
        /// The last layer's query and key projections `[B, T, C]` (inputs to the CLS attention).
        public var lastLayerQuery: Tensor
        public var lastLayerKey: Tensor
        /// `visual_projection(post_layernorm(h))` for EVERY token `[B, T, P]`, when the checkpoint has a projection.
        public var tokenEmbeddings: Tensor?
        /// The standard pooled image embedding `[B, P]` (the class token's row of `tokenEmbeddings`).
        public var imageEmbeddings: Tensor?

        public var lastHiddenState: Tensor { hiddenStates[hiddenStates.count - 1] }

        /// The class token's attention over the patches in the last layer, as one head over the full width
        /// (LLaVA-PruMerge's convention): `softmax(q·kᵀ/√C)[0, 1...]`, `[B, patches]`.
        public var classAttention: Tensor {
            let (b, t, c) = (lastLayerQuery.shape[0], lastLayerQuery.shape[1], lastLayerQuery.shape[2])
            let single = AttentionShape(heads: 1, headDim: c)
            var rows = [Tensor]()
            for i in 0..<b {
                let q = lastLayerQuery.slice(i).rows(0..<1), k = lastLayerKey.slice(i)
                var scores = Tensor(uninitializedShape: [1, t])
                q.withUnsafeBufferPointer { qp in
                    k.withUnsafeBufferPointer { kp in
                        scores.withUnsafeMutableBufferPointer { sp in
                            BLAS.gemm(transposeA: false, transposeB: true, m: 1, n: t, k: single.headDim,
                                      alpha: 1 / Float(c).squareRoot(), a: qp.baseAddress!, lda: c,
                                      b: kp.baseAddress!, ldb: c, c: sp.baseAddress!, ldc: t)
                        }
                    }
                }
                rows.append(scores.softmax().columns(1..<t))
            }
            return Tensor.concatenateRows(rows)
        }
    }

    /// The CLIP vision transformer, with the visual projection when the checkpoint has one.
    public struct Vision: Sendable {
        public let config: CLIPTowerConfiguration
        let patchWeight: Tensor
        let classEmbedding: Tensor
        let positionEmbedding: Tensor
        let preNorm: LayerNorm, postNorm: LayerNorm
        let layers: [EncoderLayer]
        let projection: Linear?

        /// Loads `vision_model.*` (and `visual_projection.weight` when present) from a `CLIPModel`,
        /// `CLIPVisionModel` or `CLIPVisionModelWithProjection` directory.
        public init(directory: String, matrixFormat: WeightFormat? = nil) throws {
            let config = try ConfigFile.load(CLIPConfiguration.self, from: directory)
            guard let vision = config.vision else { throw ModelError.invalidConfig("\(directory) has no vision_config") }
            let store = try WeightStore(directory: directory, matrixFormat: matrixFormat)
            try self.init(store: store, config: vision, projectionDim: config.projectionDim ?? vision.projectionDim)
            try store.verifyAllUsed(under: "vision_model.", ignoring: { $0.hasSuffix("position_ids") })
        }

        /// Loads the tower whose tensors sit under `towerPrefix` (LLaVA checkpoints use `vision_tower.` or
        /// `vision_tower.vision_model.`); the projection is `visual_projection.weight` at the top level.
        public init(
            store: WeightStore, config: CLIPTowerConfiguration, projectionDim: Int?, towerPrefix: String = "vision_model."
        ) throws {
            self.config = config
            let c = config.hiddenSize, p = config.patchSize
            let root = store.scope("")
            let s = store.scope(towerPrefix)
            patchWeight = try s.tensor("embeddings.patch_embedding.weight", shape: [c, config.channelCount, p, p])
            classEmbedding = try s.tensor("embeddings.class_embedding", shape: [c])
            positionEmbedding = try s.tensor("embeddings.position_embedding.weight", shape: [config.visionTokenCount, c])
            preNorm = try LayerNorm(s, "pre_layrnorm", width: c, epsilon: config.layerNormEpsilon)
            postNorm = try LayerNorm(s, "post_layernorm", width: c, epsilon: config.layerNormEpsilon)
            layers = try (0..<config.layerCount).map { try EncoderLayer(s.scope("encoder.layers.\($0)."), config) }
            if let projectionDim, root.contains("visual_projection.weight") {
                projection = try Linear(root, "visual_projection", inputs: c, outputs: projectionDim, bias: false)
            } else {
                projection = nil
            }
        }

        /// Width of the joint embedding space, when the tower has a projection. (Written without `?.`: Swift
        /// 6.3.1's SIL ownership verifier crashed on `projection?.outputs` inlined into the ACCM module.)
        public var projectionDim: Int? {
            guard let projection else { return nil }
            return projection.outputs
        }

        /// Runs images `[B, channels, imageSize, imageSize]` (already normalised) through the tower.
        public func callAsFunction(_ pixels: Tensor) throws -> VisionOutput {
            let side = config.imageSize
            guard pixels.rank == 4, pixels.shape[1] == config.channelCount, pixels.shape[2] == side, pixels.shape[3] == side
            else {
                throw ModelError.invalidInput(
                    "CLIP vision expects pixels [B, \(config.channelCount), \(side), \(side)], got \(pixels.shape)")
            }
            let b = pixels.shape[0], t = config.visionTokenCount, c = config.hiddenSize
            var embeddings = [Tensor]()
            for i in 0..<b {
                let patches = pixels.slice(i).patchEmbedding(weight: patchWeight)
                embeddings.append(Tensor.concatenateRows([classEmbedding.reshaped([1, c]), patches]))
            }
            var h = Tensor.concatenateRows(embeddings)
            for i in 0..<b {
                // add position embeddings per image
                h.withUnsafeMutableBufferPointer { dst in
                    positionEmbedding.withUnsafeBufferPointer { pos in
                        let base = dst.baseAddress! + i * t * c
                        for j in 0..<(t * c) { base[j] += pos[j] }
                    }
                }
            }
            h = preNorm(h)
            var states = [h.reshaped([b, t, c])]
            var lastQuery = Tensor(shape: [0]), lastKey = Tensor(shape: [0])
            for (index, layer) in layers.enumerated() {
                let isLast = index == layers.count - 1
                h = layer(h, sequences: b, length: t, mask: .none, probe: isLast ? { q, k in
                    lastQuery = q
                    lastKey = k
                } : nil)
                states.append(h.reshaped([b, t, c]))
            }
            var output = VisionOutput(
                hiddenStates: states, lastLayerQuery: lastQuery.reshaped([b, t, c]), lastLayerKey: lastKey.reshaped([b, t, c]))
            if let projection {
                let p = projection.outputs
                let tokens = projection(postNorm(h)).reshaped([b, t, p])
                output.tokenEmbeddings = tokens
                output.imageEmbeddings = Tensor.concatenateRows((0..<b).map { tokens.slice($0).rows(0..<1) })
            }
            return output
        }
    }
}

// MARK: - Text

extension CLIP {
    /// What one text forward returns (leading dimension = texts).
    public struct TextOutput: Sendable {
        /// The final-layer-normed hidden states `[B, T, C]`.
        public var lastHiddenState: Tensor
        /// The hidden state at each text's end-of-text token `[B, C]`.
        public var pooled: Tensor
        /// `text_projection(pooled)` `[B, P]`, when the checkpoint has a projection.
        public var textEmbeddings: Tensor?
    }

    /// The CLIP text transformer (causal), pooled at the end-of-text token, with the text projection.
    public struct Text: Sendable {
        public let config: CLIPTowerConfiguration
        let tokenEmbedding: Tensor
        let positionEmbedding: Tensor
        let layers: [EncoderLayer]
        let finalNorm: LayerNorm
        let projection: Linear?

        /// Loads `text_model.*` (and `text_projection.weight` when present) from a `CLIPModel` or
        /// `CLIPTextModel(WithProjection)` directory.
        public init(directory: String, matrixFormat: WeightFormat? = nil) throws {
            let config = try ConfigFile.load(CLIPConfiguration.self, from: directory)
            guard let text = config.text else { throw ModelError.invalidConfig("\(directory) has no text_config") }
            let store = try WeightStore(directory: directory, matrixFormat: matrixFormat)
            try self.init(store: store, config: text, projectionDim: config.projectionDim ?? text.projectionDim)
            try store.verifyAllUsed(under: "text_model.", ignoring: { $0.hasSuffix("position_ids") })
        }

        /// Loads the tower whose tensors sit under `towerPrefix`; the projection is `text_projection.weight`.
        public init(
            store: WeightStore, config: CLIPTowerConfiguration, projectionDim: Int?, towerPrefix: String = "text_model."
        ) throws {
            self.config = config
            let c = config.hiddenSize
            let root = store.scope("")
            let s = store.scope(towerPrefix)
            tokenEmbedding = try s.tensor("embeddings.token_embedding.weight", shape: [config.vocabularySize, c])
            positionEmbedding = try s.tensor("embeddings.position_embedding.weight", shape: [config.maxPositions, c])
            layers = try (0..<config.layerCount).map { try EncoderLayer(s.scope("encoder.layers.\($0)."), config) }
            finalNorm = try LayerNorm(s, "final_layer_norm", width: c, epsilon: config.layerNormEpsilon)
            if let projectionDim, root.contains("text_projection.weight") {
                projection = try Linear(root, "text_projection", inputs: c, outputs: projectionDim, bias: false)
            } else {
                projection = nil
            }
        }

        /// The context length (77 for CLIP, 248 for LongCLIP).
        public var contextLength: Int { config.maxPositions }
        public var projectionDim: Int? {
            guard let projection else { return nil }
            return projection.outputs
        }

        /// Where a text is pooled: the first end-of-text token, or (configs with the legacy `eos_token_id` 2)
        /// the largest id, as the reference does.
        public func poolingIndex(_ ids: [Int]) throws -> Int {
            if config.eosTokenId == 2 {
                return ids.indices.max { ids[$0] < ids[$1] } ?? 0
            }
            guard let index = ids.firstIndex(of: config.eosTokenId) else {
                throw ModelError.invalidInput("text has no end-of-text token (id \(config.eosTokenId))")
            }
            return index
        }

        /// Encodes texts of equal length (token ids, already padded/truncated to at most the context length).
        public func callAsFunction(_ texts: [[Int]]) throws -> TextOutput {
            guard let length = texts.first?.count, length > 0, texts.allSatisfy({ $0.count == length }) else {
                throw ModelError.invalidInput("CLIP text expects one or more token sequences of equal, non-zero length")
            }
            guard length <= config.maxPositions else {
                throw ModelError.invalidInput("text of \(length) tokens exceeds the context length \(config.maxPositions)")
            }
            for ids in texts {
                if let bad = ids.first(where: { $0 < 0 || $0 >= config.vocabularySize }) {
                    throw ModelError.invalidInput("token id \(bad) is outside the vocabulary of \(config.vocabularySize)")
                }
            }
            let b = texts.count, c = config.hiddenSize
            let positions = positionEmbedding.rows(0..<length)
            var h = Tensor.concatenateRows(texts.map { tokenEmbedding.gatherRows($0) + positions })
            for layer in layers {
                h = layer(h, sequences: b, length: length, mask: .causal(offset: 0))
            }
            h = finalNorm(h)
            let pooledRows = try texts.enumerated().map { i, ids in
                let row = try i * length + poolingIndex(ids)
                return h.rows(row..<(row + 1))
            }
            let pooled = Tensor.concatenateRows(pooledRows)
            return TextOutput(
                lastHiddenState: h.reshaped([b, length, c]), pooled: pooled, textEmbeddings: projection.map { $0(pooled) })
        }
    }
}
