// ACCM's caption selector: scores candidate-caption embeddings; the highest score wins.
// PyTorch `nn.TransformerEncoder` of `TransformerEncoderLayer(norm_first=True, activation="gelu")`, no
// positions (so the scores do not depend on candidate order), then `Linear(d, 1)` per candidate.
// See Scripts/accm_modules.py for the PyTorch reference and the file layout.

import Tensor
import Weights

/// `config.json` of an `accm_caption_selector`.
public struct CaptionSelectorConfiguration: Decodable, Sendable {
    public var hiddenSize: Int
    public var headCount: Int
    public var intermediateSize: Int
    public var layerCount: Int
    public var layerNormEpsilon: Float
    public var hiddenAct: String

    enum CodingKeys: String, CodingKey {
        case modelType = "model_type", hiddenSize = "hidden_size", headCount = "num_heads"
        case intermediateSize = "intermediate_size", layerCount = "num_layers"
        case layerNormEpsilon = "layer_norm_eps", hiddenAct = "hidden_act"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let type = try c.decode(String.self, forKey: .modelType)
        guard type == "accm_caption_selector" else {
            throw DecodingError.dataCorruptedError(
                forKey: .modelType, in: c, debugDescription: "expected accm_caption_selector, found '\(type)'")
        }
        hiddenSize = try c.decodeSize(.hiddenSize)
        headCount = try c.decodeSize(.headCount)
        intermediateSize = try c.decodeSize(.intermediateSize)
        layerCount = try c.decodeSize(.layerCount, minimum: 0)
        layerNormEpsilon = try c.decodePositive(.layerNormEpsilon, default: 1e-5)
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? "gelu"
        guard hiddenSize % headCount == 0 else {
            throw DecodingError.dataCorruptedError(
                forKey: .headCount, in: c, debugDescription: "hidden_size \(hiddenSize) is not divisible by \(headCount) heads")
        }
    }
}

/// Scores `[B, candidates, hiddenSize]` embeddings as `[B, candidates]` logits.
public struct CaptionSelector: Sendable {
    struct Layer: Sendable {
        let norm1: LayerNorm, norm2: LayerNorm
        let inProjection: Linear, outProjection: Linear
        let linear1: Linear, linear2: Linear
    }

    public let config: CaptionSelectorConfiguration
    let layers: [Layer]
    let head: Linear
    let attention: AttentionShape
    let activation: Activation

    public init(directory: String, matrixFormat: WeightFormat? = nil) throws {
        let config = try ConfigFile.load(CaptionSelectorConfiguration.self, from: directory)
        let store = try WeightStore(directory: directory, matrixFormat: matrixFormat)
        try self.init(store.scope(""), config: config)
        try store.verifyAllUsed()
    }

    public init(_ s: WeightScope, config: CaptionSelectorConfiguration) throws {
        self.config = config
        let d = config.hiddenSize, f = config.intermediateSize, eps = config.layerNormEpsilon
        layers = try (0..<config.layerCount).map { i in
            let l = s.scope("transformer.layers.\(i).")
            return Layer(
                norm1: try LayerNorm(l, "norm1", width: d, epsilon: eps),
                norm2: try LayerNorm(l, "norm2", width: d, epsilon: eps),
                inProjection: Linear(
                    weight: try l.matrix("self_attn.in_proj_weight", rows: 3 * d, columns: d),
                    bias: try l.tensor("self_attn.in_proj_bias", shape: [3 * d])),
                outProjection: try Linear(l, "self_attn.out_proj", inputs: d, outputs: d),
                linear1: try Linear(l, "linear1", inputs: d, outputs: f),
                linear2: try Linear(l, "linear2", inputs: f, outputs: d))
        }
        head = try Linear(s, "head", inputs: d, outputs: 1)
        attention = AttentionShape(heads: config.headCount, headDim: d / config.headCount)
        activation = try Models.activation(named: config.hiddenAct, in: "caption selector")
    }

    /// One logit per candidate; softmax over candidates gives the selection probabilities.
    public func callAsFunction(_ candidates: Tensor) throws -> Tensor {
        let d = config.hiddenSize
        guard candidates.rank == 3, candidates.shape[2] == d, candidates.shape[1] > 0 else {
            throw ModelError.invalidInput("selector expects candidates [B, C ≥ 1, \(d)], got \(candidates.shape)")
        }
        let (b, n) = (candidates.shape[0], candidates.shape[1])
        var scores = [Tensor]()
        for i in 0..<b {
            var x = candidates.slice(i)
            for layer in layers {
                let qkv = layer.inProjection(layer.norm1(x))
                let mixed = Tensor.attention(
                    query: qkv.block(columns: 0..<d), key: qkv.block(columns: d..<(2 * d)),
                    value: qkv.block(columns: (2 * d)..<(3 * d)), shape: attention, mask: .none)
                x.add(layer.outProjection(mixed))
                x.add(layer.linear2(layer.linear1(layer.norm2(x)).applying(activation)))
            }
            scores.append(head(x).reshaped([1, n]))
        }
        return Tensor.concatenateRows(scores)
    }
}
