// Random weights at any shape, for benchmarks at real model sizes without downloading a checkpoint.

import Tensor

extension WeightStore {
    /// A synthetic checkpoint: every tensor uniform in ±`scale`·√3 (standard deviation `scale`), except
    /// norm weights (names containing "norm") which are 1. Values depend only on `seed` and the name.
    public static func random(seed: UInt64 = 0, scale: Float = 0.02) -> WeightStore {
        WeightStore(location: "random weights (seed \(seed))") { name, shape in
            var t = Tensor(uninitializedShape: shape)
            if name.contains("norm") && name.hasSuffix("weight") {
                t.withUnsafeMutableBufferPointer { $0.update(repeating: 1) }
                return t
            }
            let nameHash = name.utf8.reduce(UInt64(0xcbf2_9ce4_8422_2325)) { ($0 ^ UInt64($1)) &* 0x100_0000_01b3 }
            let amplitude = scale * Float(3).squareRoot()
            t.withUnsafeMutableBufferPointer { buffer in
                Parallelism.forEachChunk(count: buffer.count, grain: 1 << 16) { range in
                    var state = (seed ^ nameHash) &+ UInt64(range.lowerBound) &* 0x9E37_79B9_7F4A_7C15 | 1
                    for i in range {
                        // xorshift64*: 24 high bits → uniform in [-1, 1)
                        state ^= state >> 12
                        state ^= state << 25
                        state ^= state >> 27
                        let bits = (state &* 0x2545_F491_4F6C_DD1D) >> 40
                        buffer[i] = (Float(bits) * (2.0 / 16_777_216.0) - 1) * amplitude
                    }
                }
            }
            return t
        }
    }
}
