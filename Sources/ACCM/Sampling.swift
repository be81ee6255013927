// Choosing the next token: greedy, or temperature + nucleus (top-p) sampling with a seeded generator.

import Tensor

#if canImport(Glibc)
import Glibc
#endif

/// How the next token is chosen.
public struct SamplingOptions: Sendable, Equatable, Codable {
    /// 0 means greedy (argmax); otherwise logits are divided by it before sampling.
    public var temperature: Float
    /// Nucleus sampling: sample from the smallest set of tokens whose probability reaches `topP` (1 = all).
    public var topP: Float
    /// Seed of the generator, so a sampled answer can be reproduced.
    public var seed: UInt64

    public init(temperature: Float = 0, topP: Float = 1, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topP = topP
        self.seed = seed
    }

    public static let greedy = SamplingOptions()

    /// Checks the values are usable; the message names the bad one.
    public func validate() throws {
        guard temperature >= 0, temperature.isFinite else {
            throw SamplingError.invalid("temperature must be a finite number ≥ 0, got \(temperature)")
        }
        guard topP > 0, topP <= 1 else { throw SamplingError.invalid("top_p must be in (0, 1], got \(topP)") }
    }
}

/// A sampling setting that cannot be used.
public enum SamplingError: Error, Equatable, CustomStringConvertible {
    case invalid(String)
    public var description: String {
        switch self {
        case .invalid(let what): "invalid sampling options: \(what)"
        }
    }
}

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
