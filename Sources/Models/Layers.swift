// Building blocks shared by the models: linear maps and norms, each loaded from checkpoint tensors.

import Tensor
import Weights

/// `y = x·Wᵀ + b` with PyTorch `[out, in]` weights, kept in the store's matrix format.
public struct Linear: Sendable {
    public let weight: WeightMatrix
    public let bias: Tensor?

    public init(weight: WeightMatrix, bias: Tensor?) {
        self.weight = weight
        self.bias = bias
    }

    /// Loads `<name>.weight` `[outputs, inputs]` and, when `bias`, `<name>.bias` `[outputs]`.
    public init(_ scope: WeightScope, _ name: String, inputs: Int, outputs: Int, bias: Bool = true) throws {
        weight = try scope.matrix(name + ".weight", rows: outputs, columns: inputs)
        self.bias = bias ? try scope.tensor(name + ".bias", shape: [outputs]) : nil
    }

    public var inputs: Int { weight.columns }
    public var outputs: Int { weight.rows }

    public func callAsFunction(_ x: Tensor) -> Tensor { x.linear(weight, bias: bias) }

    /// Several linear maps of the same input (at decode, one parallel job: `Tensor.linear(_:)` over many).
    public static func apply(_ layers: [Linear], to x: Tensor) -> [Tensor] {
        x.linear(layers.map { (weight: $0.weight, bias: $0.bias) })
    }
}

/// GPT-2's `Conv1D`: a linear map whose weight is stored `[in, out]` (kept so in fp32; other formats hold
/// it `[out, in]`, transposed at load).
public struct Conv1D: Sendable {
    public let weight: WeightMatrix
    public let bias: Tensor

    public init(_ scope: WeightScope, _ name: String, inputs: Int, outputs: Int) throws {
        weight = try scope.matrix(name + ".weight", rows: outputs, columns: inputs, inputMajor: true)
        bias = try scope.tensor(name + ".bias", shape: [outputs])
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { x.linear(weight, bias: bias) }
}

/// Layer normalisation with weight and bias.
public struct LayerNorm: Sendable {
    public let weight: Tensor
    public let bias: Tensor
    public let epsilon: Float

    public init(_ scope: WeightScope, _ name: String, width: Int, epsilon: Float) throws {
        weight = try scope.tensor(name + ".weight", shape: [width])
        bias = try scope.tensor(name + ".bias", shape: [width])
        self.epsilon = epsilon
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { x.layerNorm(weight: weight, bias: bias, epsilon: epsilon) }
}

/// RMS normalisation (LLaMA).
public struct RMSNorm: Sendable {
    public let weight: Tensor
    public let epsilon: Float

    public init(_ scope: WeightScope, _ name: String, width: Int, epsilon: Float) throws {
        weight = try scope.tensor(name + ".weight", shape: [width])
        self.epsilon = epsilon
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { x.rmsNorm(weight: weight, epsilon: epsilon) }
}

/// Parses a config's activation name or fails with a message naming it.
func activation(named name: String, in place: String) throws -> Activation {
    guard let a = Activation(configName: name) else {
        throw ModelError.unsupported("\(place): activation '\(name)' (supported: gelu, gelu_new, gelu_pytorch_tanh, quick_gelu, silu, relu)")
    }
    return a
}
