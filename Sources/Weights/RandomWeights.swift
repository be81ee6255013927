// Random weights at any shape, for benchmarks at real model sizes without downloading a checkpoint.

import Tensor

extension WeightStore {
    /// A synthetic checkpoint: every tensor uniform in ±`scale`·√3 (standard deviation `scale`), except
    /// norm weights (names containing "norm") which are 1. Each value depends only on `seed`, the name and
    /// its index, so a matrix made a block of rows at a time in `matrixFormat` holds the same values (before
    /// rounding to that format) as the fp32 one.
    public static func random(seed: UInt64 = 0, scale: Float = 0.02, matrixFormat: WeightFormat? = nil) -> WeightStore {
        WeightStore(location: "random weights (seed \(seed))", matrixFormat: matrixFormat) { name, _, range, out in
            if name.contains("norm") && name.hasSuffix("weight") {
                out.update(repeating: 1, count: range.count)
                return
            }
            let key = name.utf8.reduce(UInt64(0xcbf2_9ce4_8422_2325)) { ($0 ^ UInt64($1)) &* 0x100_0000_01b3 } ^ seed
            let amplitude = scale * Float(3).squareRoot()
            for (j, i) in range.enumerated() {
                // SplitMix64 of (key, index): 24 high bits → uniform in [-1, 1)
                var z = key &+ UInt64(i) &* 0x9E37_79B9_7F4A_7C15
                z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
                z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
                let bits = (z ^ (z >> 31)) >> 40
                out[j] = (Float(bits) * (2.0 / 16_777_216.0) - 1) * amplitude
            }
        }
    }
}
