// Choosing the next token: greedy, or temperature + nucleus (top-p) sampling with a seeded generator.

import Tensor

#if canImport(Glibc)
import Glibc
#endif

/// Picks tokens from logits according to `SamplingOptions`; one per sequence, holding its generator.
public struct TokenSampler: Sendable {
    public let options: SamplingOptions
    private var generator: SplitMix64

    public init(_ options: SamplingOptions) {
        self.options = options
        generator = SplitMix64(seed: options.seed)
    }

    /// The next token for a `[V]` (or `[1, V]`) row of logits.
    public mutating func next(_ logits: Tensor) -> Int {
        let values = logits.scalars
        if options.temperature == 0 {
            return values.indices.max { values[$0] < values[$1] || (values[$0] == values[$1] && $0 > $1) } ?? 0
        }
        // Probabilities at the temperature, in descending order.
        let m = values.max() ?? 0
        var weights = values.map { Double(expf(($0 - m) / options.temperature)) }
        let total = weights.reduce(0, +)
        for i in weights.indices { weights[i] /= total }
        let order = weights.indices.sorted { weights[$0] != weights[$1] ? weights[$0] > weights[$1] : $0 < $1 }
        // The nucleus: the shortest prefix whose probability reaches top-p (at least one token).
        var nucleus = 0, mass = 0.0
        while nucleus < order.count && (nucleus == 0 || mass < Double(options.topP)) {
            mass += weights[order[nucleus]]
            nucleus += 1
        }
        var draw = Double(generator.next() >> 11) / Double(1 << 53) * mass
        for token in order[..<nucleus] {
            draw -= weights[token]
            if draw < 0 { return token }
        }
        return order[nucleus - 1]
    }
}
