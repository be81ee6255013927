// The pruning methods a request can ask for: the baselines ACCM is compared with, and ACCM's own selection.
// How each one chooses is `PruningMethod.keptIndices` in the ACCM target (TokenPruner.swift).

/// A token-selection method, with its own parameters.
public enum PruningMethod: Sendable, Equatable {
    /// Keep every patch (the budget is ignored).
    case none
    /// `budget` patches drawn uniformly at random with `seed`.
    case random(seed: UInt64)
    /// `budget` patches evenly spaced in raster order.
    case uniform
    /// The `budget` patches the class token attends to most in the last layer.
    case classAttention
    /// The `budget` patches whose projected embedding is closest to (or farthest from) the question's.
    case textGuided(TextGuidedRanking)
    /// ACCM: CLS-attention outliers (IQR rule) ∪ `textPicks` question-guided patches, capped at the budget
    /// by `cap`, then filled with evenly spaced patches.
    case accm(ranking: TextGuidedRanking, cap: CapPolicy, textPicks: Int?)
}

/// How question-guided selection ranks patches by cosine similarity to the question.
public enum TextGuidedRanking: String, Sendable, CaseIterable {
    /// Most similar first (the paper's wording).
    case mostSimilar = "most-similar"
    /// Least similar first (the authors' code: `topk` of the distance with `largest=True`).
    case leastSimilar = "least-similar"
}

/// How ACCM trims the union of its two selections when it exceeds the budget.
public enum CapPolicy: String, Sendable, CaseIterable {
    /// Keep the best-ranked tokens of both sources, alternating by rank (the sensible reading).
    case byScore = "score"
    /// Keep the highest raster indices (the authors' code: `unique[-K:]`).
    case highestIndex = "highest-index"
}

extension PruningMethod {
    /// Whether the method needs the class token's attention row.
    public var needsClassAttention: Bool {
        switch self {
        case .classAttention, .accm: true
        default: false
        }
    }

    /// Whether the method needs the question's similarity to every patch.
    public var needsQuestionSimilarity: Bool {
        switch self {
        case .textGuided, .accm: true
        default: false
        }
    }
}

extension PruningMethod {
    /// The names the command line and the HTTP API give the methods.
    public static let names = ["accm", "none", "random", "uniform", "cls-attention", "text-guided"]

    /// The method a name stands for (one of `names`, or the short `cls` / `text`); `seed` is the random pruner's,
    /// `ranking` and `cap` apply to the question-guided ones.
    public init?(name: String, seed: UInt64 = 0, ranking: TextGuidedRanking = .mostSimilar, cap: CapPolicy = .byScore) {
        switch name {
        case "accm": self = .accm(ranking: ranking, cap: cap, textPicks: nil)
        case "none": self = .none
        case "random": self = .random(seed: seed)
        case "uniform": self = .uniform
        case "cls-attention", "cls": self = .classAttention
        case "text-guided", "text": self = .textGuided(ranking)
        default: return nil
        }
    }
}
