// ACCM's caption mapper: pruned patch embeddings → a fixed-length prefix of language-model embeddings.
// ClipCap's TransformerMapper as the ACCM authors modified it (see Scripts/accm_modules.py for the
// PyTorch reference and the file layout): a per-token linear map, learned prefix constants appended
// after the tokens, pre-LN transformer layers without positions, and the last `prefix_length` outputs.

import Tensor
import Weights

/// `config.json` of an `accm_caption_mapper`.
public struct CaptionMapperConfiguration: Decodable, Sendable {
    public var inputSize: Int
    public var hiddenSize: Int
    public var prefixLength: Int
    public var layerCount: Int
    public var headCount: Int
    public var mlpRatio: Double
    public var layerNormEpsilon: Float

    enum CodingKeys: String, CodingKey {
        case modelType = "model_type", inputSize = "input_size", hiddenSize = "hidden_size"
        case prefixLength = "prefix_length", layerCount = "num_layers", headCount = "num_heads"
        case mlpRatio = "mlp_ratio", layerNormEpsilon = "layer_norm_eps"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let type = try c.decode(String.self, forKey: .modelType)
        guard type == "accm_caption_mapper" else {
            throw DecodingError.dataCorruptedError(
                forKey: .modelType, in: c, debugDescription: "expected accm_caption_mapper, found '\(type)'")
        }
        inputSize = try c.decodeSize(.inputSize)
        hiddenSize = try c.decodeSize(.hiddenSize)
        prefixLength = try c.decodeSize(.prefixLength)
        layerCount = try c.decodeSize(.layerCount)
        headCount = try c.decodeSize(.headCount, default: 8)
        mlpRatio = try c.decodePositive(.mlpRatio, default: 2)
        layerNormEpsilon = try c.decodePositive(.layerNormEpsilon, default: 1e-5)
        guard Double(hiddenSize) * mlpRatio >= 1, Double(hiddenSize) * mlpRatio <= Double(largestConfigSize) else {
            throw DecodingError.dataCorruptedError(
                forKey: .mlpRatio, in: c, debugDescription: "hidden_size × mlp_ratio must be a size of at least 1, got \(Double(hiddenSize) * mlpRatio)")
        }
        guard hiddenSize % headCount == 0 else {
            throw DecodingError.dataCorruptedError(
                forKey: .headCount, in: c, debugDescription: "hidden_size \(hiddenSize) is not divisible by \(headCount) heads")
        }
    }

    public var mlpSize: Int { Int(Double(hiddenSize) * mlpRatio) }
}

/// Maps `[B, N, inputSize]` token embeddings (any N) to `[B, prefixLength, hiddenSize]` prefixes.
public struct CaptionMapper: Sendable {
    struct Layer: Sendable {
        let norm1: LayerNorm, norm2: LayerNorm
        let queries: Linear, keysValues: Linear, project: Linear
        let fc1: Linear, fc2: Linear
    }

    public let config: CaptionMapperConfiguration
    let input: Linear
    let prefixConstants: Tensor
    let layers: [Layer]
    let attention: AttentionShape

    public init(directory: String, matrixFormat: WeightFormat? = nil) throws {
        let config = try ConfigFile.load(CaptionMapperConfiguration.self, from: directory)
        let store = try WeightStore(directory: directory, matrixFormat: matrixFormat)
        try self.init(store.scope(""), config: config)
        try store.verifyAllUsed()
    }

    public init(_ s: WeightScope, config: CaptionMapperConfiguration) throws {
        self.config = config
        let h = config.hiddenSize, f = config.mlpSize, eps = config.layerNormEpsilon
        input = try Linear(s, "linear", inputs: config.inputSize, outputs: h)
        prefixConstants = try s.tensor("prefix_const", shape: [config.prefixLength, h])
        layers = try (0..<config.layerCount).map { i in
            let l = s.scope("transformer.layers.\(i).")
            return Layer(
                norm1: try LayerNorm(l, "norm1", width: h, epsilon: eps),
                norm2: try LayerNorm(l, "norm2", width: h, epsilon: eps),
                queries: try Linear(l, "attn.to_queries", inputs: h, outputs: h, bias: false),
                keysValues: try Linear(l, "attn.to_keys_values", inputs: h, outputs: 2 * h, bias: false),
                project: try Linear(l, "attn.project", inputs: h, outputs: h),
                fc1: try Linear(l, "mlp.fc1", inputs: h, outputs: f),
                fc2: try Linear(l, "mlp.fc2", inputs: f, outputs: h))
        }
        attention = AttentionShape(heads: config.headCount, headDim: h / config.headCount)
    }

    /// The prefix for each sequence of tokens `[B, N, inputSize]` (N ≥ 0): `[B, prefixLength, hiddenSize]`.
    public func callAsFunction(_ tokens: Tensor) throws -> Tensor {
        guard tokens.rank == 3, tokens.shape[2] == config.inputSize else {
            throw ModelError.invalidInput("caption mapper expects tokens [B, N, \(config.inputSize)], got \(tokens.shape)")
        }
        let (b, n, h, p) = (tokens.shape[0], tokens.shape[1], config.hiddenSize, config.prefixLength)
        var prefixes = [Tensor]()
        for i in 0..<b {
            let mapped = n > 0 ? input(tokens.slice(i)) : Tensor(shape: [0, h])
            var x = Tensor.concatenateRows([mapped, prefixConstants])
            for layer in layers {
                let y = layer.norm1(x)
                let kv = layer.keysValues(y)
                let mixed = Tensor.attention(
                    query: layer.queries(y).block(), key: kv.block(columns: 0..<h), value: kv.block(columns: h..<(2 * h)),
                    shape: attention, mask: .none)
                x.add(layer.project(mixed))
                x.add(layer.fc2(layer.fc1(layer.norm2(x)).applying(.relu)))
            }
            prefixes.append(x.rows(n..<(n + p)))
        }
        return Tensor.concatenateRows(prefixes).reshaped([b, p, h])
    }
}
