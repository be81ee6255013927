// Element-wise and per-row operations: norms, activations, residual adds, softmax, row gathers.

import CKernels

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A pointwise non-linearity, named as Hugging Face configs name it.
public enum Activation: String, Sendable, CaseIterable {
    /// Exact GELU with erf (`gelu`).
    case gelu
    /// tanh-approximated GELU (`gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`).
    case geluTanh = "gelu_new"
    /// CLIP's `x · sigmoid(1.702 x)` (`quick_gelu`).
    case quickGELU = "quick_gelu"
    /// `x · sigmoid(x)` (`silu`, `swish`).
    case silu
    case relu

    /// Parses a config's activation name; nil when the engine does not implement it.
    public init?(configName: String) {
        switch configName {
        case "gelu": self = .gelu
        case "gelu_new", "gelu_pytorch_tanh", "gelu_fast": self = .geluTanh
        case "quick_gelu": self = .quickGELU
        case "silu", "swish": self = .silu
        case "relu": self = .relu
        default: return nil
        }
    }
}

extension Tensor {
    /// `activation` of every element. Consuming: a temporary (`linear(x).applying(.gelu)`) is activated in its
    /// own buffer instead of a copy.
    public consuming func applying(_ activation: Activation) -> Tensor {
        var out = consume self
        out.apply(activation)
        return out
    }

    /// Applies `activation` to every element in place (no second buffer when this one is not shared).
    public mutating func apply(_ activation: Activation) {
        withUnsafeMutableBufferPointer { buffer in
            Parallelism.forEachChunk(count: buffer.count, grain: 1 << 15) { range in
                let p = buffer.baseAddress! + range.lowerBound
                switch activation {
                case .gelu: VectorMath.geluErfInPlace(p, count: range.count)
                case .geluTanh: VectorMath.geluTanhInPlace(p, count: range.count)
                case .quickGELU: VectorMath.sigmoidGateInPlace(p, count: range.count, alpha: 1.702)
                case .silu: VectorMath.sigmoidGateInPlace(p, count: range.count, alpha: 1)
                case .relu: VectorMath.reluInPlace(p, count: range.count)
                }
            }
        }
    }

    /// Element-wise sum with a tensor of the same element count.
    public static func + (lhs: Tensor, rhs: Tensor) -> Tensor {
        var out = lhs
        out.add(rhs)
        return out
    }

    /// Adds `other` element-wise in place (the residual connection).
    public mutating func add(_ other: Tensor) {
        precondition(count == other.count, "add \(other.shape) to \(shape)")
        withUnsafeMutableBufferPointer { a in
            other.withUnsafeBufferPointer { b in
                for i in 0..<a.count { a[i] += b[i] }
            }
        }
    }

    /// Adds a vector of `lastDimension` elements to every row in place.
    public mutating func addRowVector(_ vector: Tensor) {
        let width = lastDimension
        precondition(vector.count == width, "row vector of \(vector.count) for rows of \(width)")
        let rows = rowCount
        withUnsafeMutableBufferPointer { a in
            vector.withUnsafeBufferPointer { v in
                for r in 0..<rows {
                    let row = a.baseAddress! + r * width
                    for i in 0..<width { row[i] += v[i] }
                }
            }
        }
    }

    /// Multiplies every element by `factor` in place.
    public mutating func scale(by factor: Float) {
        withUnsafeMutableBufferPointer { a in
            for i in 0..<a.count { a[i] *= factor }
        }
    }

    /// Layer normalisation over the last dimension with an affine weight and (optional) bias (`accm_layer_norm`).
    public func layerNorm(weight: Tensor, bias: Tensor?, epsilon: Float) -> Tensor {
        let width = lastDimension
        precondition(weight.count == width && (bias?.count ?? width) == width, "layer norm weight does not match \(shape)")
        return normalizedRows { x, y, rows in
            weight.withUnsafeBufferPointer { g in
                if let bias {
                    bias.withUnsafeBufferPointer { accm_layer_norm(x, y, rows, width, g.baseAddress!, $0.baseAddress!, epsilon) }
                } else {
                    accm_layer_norm(x, y, rows, width, g.baseAddress!, nil, epsilon)
                }
            }
        }
    }

    /// RMS normalisation over the last dimension (LLaMA): `x / sqrt(mean(x²) + eps) · weight` (`accm_rms_norm`).
    public func rmsNorm(weight: Tensor, epsilon: Float) -> Tensor {
        let width = lastDimension
        precondition(weight.count == width, "RMS norm weight of \(weight.count) for rows of \(width)")
        return normalizedRows { x, y, rows in
            weight.withUnsafeBufferPointer { accm_rms_norm(x, y, rows, width, $0.baseAddress!, epsilon) }
        }
    }

    /// A new tensor of this shape whose rows `normalize(source, destination, rowCount)` writes, a block of rows
    /// per engine thread.
    private func normalizedRows(
        _ normalize: (_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ rows: Int) -> Void
    ) -> Tensor {
        let width = lastDimension
        var out = Tensor(uninitializedShape: shape)
        guard width > 0 else { return out }
        withUnsafeBufferPointer { x in
            out.withUnsafeMutableBufferPointer { o in
                Parallelism.forEachChunk(count: rowCount, grain: max(1, (1 << 16) / width)) { range in
                    normalize(x.baseAddress! + range.lowerBound * width, o.baseAddress! + range.lowerBound * width, range.count)
                }
            }
        }
        return out
    }

    /// Softmax over the last dimension.
    public func softmax() -> Tensor {
        var out = self
        let width = lastDimension
        let rows = rowCount
        out.withUnsafeMutableBufferPointer { o in
            for r in 0..<rows { VectorMath.softmaxInPlace(o.baseAddress! + r * width, count: width) }
        }
        return out
    }

    /// Rows of a `[vocabulary, width]` table picked by `ids`: `[ids.count, width]` (an embedding lookup).
    public func gatherRows(_ ids: [Int]) -> Tensor {
        precondition(rank == 2, "gatherRows needs a matrix, got \(shape)")
        let width = shape[1]
        var out = Tensor(uninitializedShape: [ids.count, width])
        withUnsafeBufferPointer { table in
            out.withUnsafeMutableBufferPointer { o in
                for (r, id) in ids.enumerated() {
                    precondition(id >= 0 && id < shape[0], "row \(id) out of \(shape[0])")
                    (o.baseAddress! + r * width).update(from: table.baseAddress! + id * width, count: width)
                }
            }
        }
        return out
    }

    /// Columns `range` of every row: `[..., range.count]` (a copy).
    public func columns(_ range: Range<Int>) -> Tensor {
        let width = lastDimension
        precondition(range.lowerBound >= 0 && range.upperBound <= width, "columns \(range) out of \(width)")
        let rows = rowCount
        var out = Tensor(uninitializedShape: Array(shape.dropLast()) + [range.count])
        withUnsafeBufferPointer { x in
            out.withUnsafeMutableBufferPointer { o in
                for r in 0..<rows {
                    (o.baseAddress! + r * range.count).update(
                        from: x.baseAddress! + r * width + range.lowerBound, count: range.count)
                }
            }
        }
        return out
    }
}

extension Tensor {
    /// Multiplies element-wise by a tensor of the same element count, in place (gated MLPs).
    public mutating func multiply(_ other: Tensor) {
        precondition(count == other.count, "multiply \(shape) by \(other.shape)")
        withUnsafeMutableBufferPointer { a in
            other.withUnsafeBufferPointer { b in
                for i in 0..<a.count { a[i] *= b[i] }
            }
        }
    }
}

extension Tensor {
    /// Whether every element is finite (no NaN, no infinity): what a model's outputs are checked for before
    /// a decision is taken on them.
    public var isFinite: Bool {
        withUnsafeBufferPointer { p in
            // x − x is 0 for finite x and NaN for NaN or ±infinity; one comparison per block of the sum.
            var sum: Float = 0
            var i = 0
            while i < p.count {
                let end = Swift.min(i + 1024, p.count)
                for j in i..<end { sum += p[j] - p[j] }
                if sum != 0 || sum.isNaN { return false }
                i = end
            }
            return true
        }
    }
}
