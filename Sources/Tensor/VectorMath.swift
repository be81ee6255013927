// Element-wise math over fp32 buffers. exp, softmax and the activations are the C kernels
// (Sources/CKernels/elementwise.c: AVX2 + FMA where the CPU has them, else portable C; the Cephes exp
// polynomial, about 1 ulp, instead of one libm call per element); sum, maximum and ReLU stay here, in
// SIMD16 lanes with scalar tails.

import CKernels

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public enum VectorMath {
    public typealias Vector = SIMD16<Float>

    /// Applies `vector` to SIMD-sized chunks and `scalar` to the tail, in place.
    @inlinable @inline(__always)
    static func map(
        _ p: UnsafeMutablePointer<Float>, _ count: Int,
        vector: (Vector) -> Vector, scalar: (Float) -> Float
    ) {
        var i = 0
        let raw = UnsafeMutableRawPointer(p)
        while i + 16 <= count {
            let v = raw.loadUnaligned(fromByteOffset: i * 4, as: Vector.self)
            raw.storeBytes(of: vector(v), toByteOffset: i * 4, as: Vector.self)
            i += 16
        }
        while i < count {
            p[i] = scalar(p[i])
            i += 1
        }
    }

    /// `p[i] = exp(p[i])` (`accm_exp`: inputs clamped to [-87.34, 88.38], so never NaN for a number).
    public static func expInPlace(_ p: UnsafeMutablePointer<Float>, count: Int) { accm_exp(p, count) }

    /// `p[i] = p[i] * sigmoid(alpha * p[i])` (SiLU for alpha = 1, CLIP's quick_gelu for alpha = 1.702).
    public static func sigmoidGateInPlace(_ p: UnsafeMutablePointer<Float>, count: Int, alpha: Float) {
        accm_sigmoid_gate(p, count, alpha)
    }

    /// tanh-approximated GELU (`gelu_new` / `gelu_pytorch_tanh`).
    public static func geluTanhInPlace(_ p: UnsafeMutablePointer<Float>, count: Int) { accm_gelu_tanh(p, count) }

    /// Exact GELU, `0.5 x (1 + erf(x / sqrt 2))`.
    public static func geluErfInPlace(_ p: UnsafeMutablePointer<Float>, count: Int) { accm_gelu_erf(p, count) }

    /// `p[i] = max(p[i], 0)`.
    @inlinable
    public static func reluInPlace(_ p: UnsafeMutablePointer<Float>, count: Int) {
        map(p, count, vector: { $0.replacing(with: 0, where: $0 .< 0) }, scalar: { max($0, 0) })
    }

    /// Sum of a buffer (four independent SIMD accumulators, so loads rather than add latency set the pace).
    @inlinable
    public static func sum(_ p: UnsafePointer<Float>, count: Int) -> Float {
        var acc0 = Vector(), acc1 = Vector(), acc2 = Vector(), acc3 = Vector()
        var i = 0
        let raw = UnsafeRawPointer(p)
        while i + 64 <= count {
            acc0 += raw.loadUnaligned(fromByteOffset: i * 4, as: Vector.self)
            acc1 += raw.loadUnaligned(fromByteOffset: (i + 16) * 4, as: Vector.self)
            acc2 += raw.loadUnaligned(fromByteOffset: (i + 32) * 4, as: Vector.self)
            acc3 += raw.loadUnaligned(fromByteOffset: (i + 48) * 4, as: Vector.self)
            i += 64
        }
        while i + 16 <= count {
            acc0 += raw.loadUnaligned(fromByteOffset: i * 4, as: Vector.self)
            i += 16
        }
        var s = ((acc0 + acc1) + (acc2 + acc3)).sum()
        while i < count { s += p[i]; i += 1 }
        return s
    }

    /// Largest element of a buffer (-inf when empty).
    @inlinable
    public static func maximum(_ p: UnsafePointer<Float>, count: Int) -> Float {
        var best = Vector(repeating: -.infinity)
        var i = 0
        let raw = UnsafeRawPointer(p)
        while i + 16 <= count {
            let v = raw.loadUnaligned(fromByteOffset: i * 4, as: Vector.self)
            best = best.replacing(with: v, where: v .> best)
            i += 16
        }
        var m = best.max()
        while i < count {
            if p[i] > m { m = p[i] }
            i += 1
        }
        return m
    }

    /// Softmax of one row, in place.
    public static func softmaxInPlace(_ p: UnsafeMutablePointer<Float>, count: Int) { accm_softmax(p, count) }
}
