// Vectorised element-wise math over fp32 buffers (SIMD16 lanes; scalar tails).
// exp follows the Cephes single-precision polynomial (relative error about 2 ulp), which is what makes
// softmax, SiLU, quick-GELU and tanh-GELU run at memory speed instead of one libm call per element.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public enum VectorMath {
    public typealias Vector = SIMD16<Float>

    @inlinable @inline(__always)
    static func exp(_ v: Vector) -> Vector {
        // Clamp with compare-and-blend: pointwiseMin/Max compile to per-lane loops.
        let low = Vector(repeating: -87.33654), high = Vector(repeating: 88.37626)
        var x = v.replacing(with: low, where: v .< low)
        x = x.replacing(with: high, where: x .> high)
        // n = round(x / ln 2) with the 1.5·2²³ trick: after adding it, the low mantissa bits hold n, so
        // no (slow, per-lane) float→int conversion or floor is needed.
        let shifted = x * 1.442_695_04 + 12_582_912
        let fx = shifted - 12_582_912
        // r = x - n ln 2 (ln 2 split in two constants for precision)
        x = x - fx * 0.693_359_375
        x = x - fx * -2.121_944_4e-4
        var y = Vector(repeating: 1.987_569_15e-4)
        y = y * x + 1.398_199_95e-3
        y = y * x + 8.333_451_9e-3
        y = y * x + 4.166_579_59e-2
        y = y * x + 1.666_666_55e-1
        y = y * x + 5.000_000_12e-1
        y = y * (x * x) + x + 1
        // 2ⁿ: (n + 127) << 23, with n = bits(shifted) - bits(1.5·2²³)
        let n = unsafeBitCast(shifted, to: SIMD16<UInt32>.self) &- 0x4B40_0000
        let scale = unsafeBitCast((n &+ 127) &<< 23, to: Vector.self)
        return y * scale
    }

    @inlinable @inline(__always)
    static func scalarExp(_ x: Float) -> Float { expf(x) }

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

    /// `p[i] = exp(p[i])`.
    @inlinable
    public static func expInPlace(_ p: UnsafeMutablePointer<Float>, count: Int) {
        map(p, count, vector: { exp($0) }, scalar: { scalarExp($0) })
    }

    /// `p[i] = p[i] * sigmoid(alpha * p[i])` (SiLU for alpha = 1, CLIP's quick_gelu for alpha = 1.702).
    @inlinable
    public static func sigmoidGateInPlace(_ p: UnsafeMutablePointer<Float>, count: Int, alpha: Float) {
        map(
            p, count,
            vector: { x in x / (1 + exp(-alpha * x)) },
            scalar: { x in x / (1 + scalarExp(-alpha * x)) }
        )
    }

    /// tanh-approximated GELU (`gelu_new` / `gelu_pytorch_tanh`).
    @inlinable
    public static func geluTanhInPlace(_ p: UnsafeMutablePointer<Float>, count: Int) {
        let c: Float = 0.797_884_560_802_865_4  // sqrt(2 / pi)
        map(
            p, count,
            vector: { x in
                // 0.5 x (1 + tanh(u)) = x * sigmoid(2u) = x / (1 + exp(-2u))
                let u = c * (x + 0.044715 * x * x * x)
                return x / (1 + exp(-2 * u))
            },
            scalar: { x in
                let u = c * (x + 0.044715 * x * x * x)
                return 0.5 * x * (1 + tanhf(u))
            }
        )
    }

    /// Exact GELU, `0.5 x (1 + erf(x / sqrt 2))`.
    @inlinable
    public static func geluErfInPlace(_ p: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count {
            let x = p[i]
            p[i] = 0.5 * x * (1 + erff(x * 0.707_106_781_186_547_6))
        }
    }

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
    @inlinable
    public static func softmaxInPlace(_ p: UnsafeMutablePointer<Float>, count: Int) {
        guard count > 0 else { return }
        let m = maximum(p, count: count)
        map(p, count, vector: { exp($0 - m) }, scalar: { scalarExp($0 - m) })
        let inv = 1 / sum(p, count: count)
        map(p, count, vector: { $0 * inv }, scalar: { $0 * inv })
    }
}
