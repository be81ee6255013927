// How an answer is generated: its length, its stop conditions, and how tokens are chosen.

/// When and how to stop, and how to choose tokens.
public struct GenerationOptions: Sendable, Equatable, Codable {
    public var maxNewTokens: Int
    public var sampling: SamplingOptions
    /// Tokens that end the answer (not part of the text), such as `</s>`.
    public var stopTokenIDs: Set<Int>
    /// Texts that end the answer where they first appear (not part of the text).
    public var stopStrings: [String]

    public init(maxNewTokens: Int = 128, sampling: SamplingOptions = .greedy, stopTokenIDs: Set<Int> = [],
                stopStrings: [String] = []) {
        self.maxNewTokens = maxNewTokens
        self.sampling = sampling
        self.stopTokenIDs = stopTokenIDs
        self.stopStrings = stopStrings
    }

    /// Checks the values are usable; the message names the bad one.
    public func validate() throws {
        guard maxNewTokens >= 1 else { throw SamplingError.invalid("max new tokens must be at least 1, got \(maxNewTokens)") }
        guard !stopStrings.contains("") else { throw SamplingError.invalid("a stop string is empty") }
        try sampling.validate()
    }
}

/// Why generation ended.
public enum FinishReason: String, Sendable, Codable {
    case stopToken = "stop"
    case stopString = "stop_string"
    case length
    case cancelled
}

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
