// LLaVA-1.5's multi-modal projector: vision features → language-model embeddings.
// Follows Hugging Face transformers `models/llava/modeling_llava.py` (LlavaMultiModalProjector):
// linear_1 → activation (`projector_hidden_act`, GELU in LLaVA-1.5) → linear_2.

import Tensor
import Weights

/// The parts of a LLaVA `config.json` the projector needs.
public struct LlavaConfiguration: Decodable, Sendable {
    public var visionHiddenSize: Int
    public var textHiddenSize: Int
    public var projectorActivation: String
    public var projectorBias: Bool

    enum CodingKeys: String, CodingKey {
        case vision = "vision_config", text = "text_config"
        case projectorActivation = "projector_hidden_act", projectorBias = "multimodal_projector_bias"
    }
    struct Tower: Decodable {
        let hiddenSize: Int
        enum CodingKeys: String, CodingKey { case hiddenSize = "hidden_size" }
        init(from decoder: Decoder) throws {
            hiddenSize = try decoder.container(keyedBy: CodingKeys.self).decodeSize(.hiddenSize)
        }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        visionHiddenSize = try c.decode(Tower.self, forKey: .vision).hiddenSize
        textHiddenSize = try c.decode(Tower.self, forKey: .text).hiddenSize
        projectorActivation = try c.decodeIfPresent(String.self, forKey: .projectorActivation) ?? "gelu"
        projectorBias = try c.decodeIfPresent(Bool.self, forKey: .projectorBias) ?? true
    }
}

/// Two linear maps with an activation between them, from vision width to language-model width.
public struct LlavaProjector: Sendable {
    public let config: LlavaConfiguration
    let first: Linear, second: Linear
    let activation: Activation

    /// Loads `multi_modal_projector.*` (or `model.multi_modal_projector.*`) from a LLaVA directory.
    public init(directory: String, matrixFormat: WeightFormat? = nil) throws {
        let config = try ConfigFile.load(LlavaConfiguration.self, from: directory)
        let store = try WeightStore(directory: directory, matrixFormat: matrixFormat)
        let prefix = store.contains("model.multi_modal_projector.linear_1.weight")
            ? "model.multi_modal_projector." : "multi_modal_projector."
        try self.init(store.scope(prefix), config: config)
        try store.verifyAllUsed(under: prefix)
    }

    public init(_ scope: WeightScope, config: LlavaConfiguration) throws {
        self.config = config
        let v = config.visionHiddenSize, t = config.textHiddenSize, bias = config.projectorBias
        first = try Linear(scope, "linear_1", inputs: v, outputs: t, bias: bias)
        second = try Linear(scope, "linear_2", inputs: t, outputs: t, bias: bias)
        activation = try Models.activation(named: config.projectorActivation, in: "LLaVA projector")
    }

    public var inputSize: Int { first.inputs }
    public var outputSize: Int { second.outputs }

    /// Projects features `[..., visionHiddenSize]` to `[..., textHiddenSize]`.
    public func callAsFunction(_ features: Tensor) throws -> Tensor {
        guard features.lastDimension == inputSize else {
            throw ModelError.invalidInput("projector expects features of width \(inputSize), got \(features.shape)")
        }
        return second(first(features).applying(activation))
    }
}
