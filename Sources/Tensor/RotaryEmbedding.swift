// Rotary position embeddings in LLaMA's rotate-half convention (Hugging Face `apply_rotary_pos_emb`).

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Rotates query/key heads by position-dependent angles `position · θ^(-2i/D)`.
public struct RotaryEmbedding: Sendable {
    public let headDim: Int
    public let theta: Float
    /// `θ^(-2i/D)` for `i < D/2`, in fp32 as the reference computes it.
    private let inverseFrequencies: [Float]

    public init(headDim: Int, theta: Float) {
        precondition(headDim % 2 == 0, "rotary embeddings need an even head size, got \(headDim)")
        self.headDim = headDim
        self.theta = theta
        inverseFrequencies = (0..<headDim / 2).map { i in
            1 / powf(theta, Float(2 * i) / Float(headDim))
        }
    }

    /// Rotates every head of `x [T, heads·D]` in place (only rows `rows` when given); the first rotated row
    /// is at position `startPosition`, the next at `startPosition + 1`, and so on.
    public func apply(to x: inout Tensor, rows: Range<Int>? = nil, heads: Int, startPosition: Int) {
        let d = headDim, half = headDim / 2
        precondition(x.lastDimension == heads * d, "rotary: \(x.shape) is not \(heads) heads of \(d)")
        let range = rows ?? 0..<x.rowCount
        precondition(range.lowerBound >= 0 && range.upperBound <= x.rowCount, "rotary: rows \(range) out of \(x.shape)")
        var cosines = [Float](repeating: 0, count: half)
        var sines = [Float](repeating: 0, count: half)
        x.withUnsafeMutableBufferPointer { buffer in
            for (t, row) in range.enumerated() {
                let position = Float(startPosition + t)
                for i in 0..<half {
                    let angle = position * inverseFrequencies[i]
                    cosines[i] = cosf(angle)
                    sines[i] = sinf(angle)
                }
                for h in 0..<heads {
                    let head = buffer.baseAddress! + row * heads * d + h * d
                    for i in 0..<half {
                        let a = head[i], b = head[i + half]
                        head[i] = a * cosines[i] - b * sines[i]
                        head[i + half] = b * cosines[i] + a * sines[i]
                    }
                }
            }
        }
    }
}
