// Which visual tokens to keep: the pruning methods ACCM is compared with, and ACCM's own selection
// (CLS-attention outliers ∪ question-guided patches, capped at the budget, filled up to it).
// The authors' code (ASGO-MM/ACCM, clip_encoder.py::token_prune_merge_advanced_plus) differs from the
// paper's wording in two places; both readings are options here (see `TextGuidedRanking`, `CapPolicy`).

/// What the pruners look at, for one image with `patchCount` patches (class token excluded).
public struct PruningEvidence: Sendable {
    public var patchCount: Int
    /// Softmax attention of the class token over the patches in the last layer, `[patchCount]`.
    public var classAttention: [Float]?
    /// Cosine similarity of each patch's projected embedding to the question's, `[patchCount]`.
    public var questionSimilarity: [Float]?

    public init(patchCount: Int, classAttention: [Float]? = nil, questionSimilarity: [Float]? = nil) {
        self.patchCount = patchCount
        self.classAttention = classAttention
        self.questionSimilarity = questionSimilarity
    }
}

/// A pruning request that cannot be carried out.
public enum PruningError: Error, Equatable, CustomStringConvertible {
    case invalidBudget(budget: Int, patches: Int)
    case missingEvidence(String)

    public var description: String {
        switch self {
        case .invalidBudget(let budget, let patches):
            "token budget \(budget) is outside 1...\(patches) (the image has \(patches) patches)"
        case .missingEvidence(let what): "pruning needs \(what)"
        }
    }
}

extension PruningMethod {
    /// The kept patch indices, exactly `budget` of them (all patches for `.none`), ascending.
    public func keptIndices(budget: Int, evidence: PruningEvidence) throws -> [Int] {
        let n = evidence.patchCount
        if case .none = self { return Array(0..<n) }
        guard budget >= 1 && budget <= n else { throw PruningError.invalidBudget(budget: budget, patches: n) }
        switch self {
        case .none:
            return Array(0..<n)
        case .random(let seed):
            var generator = SplitMix64(seed: seed)
            var all = Array(0..<n)
            for i in 0..<budget {  // partial Fisher–Yates
                let j = i + Int(generator.next() % UInt64(n - i))
                all.swapAt(i, j)
            }
            return all[..<budget].sorted()
        case .uniform:
            return Self.evenlySpaced(budget, from: Array(0..<n))
        case .classAttention:
            let scores = try Self.require(evidence.classAttention, "the class token's attention", n)
            return Self.ranking(scores, descending: true).prefix(budget).sorted()
        case .textGuided(let order):
            let similarity = try Self.require(evidence.questionSimilarity, "the question's similarity to each patch", n)
            return Self.ranking(similarity, descending: order == .mostSimilar).prefix(budget).sorted()
        case .accm(let order, let cap, let textPicks):
            let scores = try Self.require(evidence.classAttention, "the class token's attention", n)
            let similarity = try Self.require(evidence.questionSimilarity, "the question's similarity to each patch", n)
            let outliers = Self.ranking(scores, descending: true).prefix(Self.outlierCount(scores))
            let text = Self.ranking(similarity, descending: order == .mostSimilar)
                .prefix(min(textPicks ?? Self.defaultTextPicks(budget: budget), n))
            var kept = Self.capped(textRanked: Array(text), attentionRanked: Array(outliers), budget: budget, policy: cap)
            if kept.count < budget {
                let keptSet = Set(kept)
                kept += Self.evenlySpaced(budget - kept.count, from: (0..<n).filter { !keptSet.contains($0) })
            }
            return kept.sorted()
        }
    }

    /// The number of question-guided picks the authors pair with each budget (their code's comment:
    /// 288→150, 144→70, 72→40, 36→20, 18→12); other budgets take 55% of the budget.
    public static func defaultTextPicks(budget: Int) -> Int {
        let table = [288: 150, 144: 70, 72: 40, 36: 20, 18: 12]
        return table[budget] ?? max(1, Int((Double(budget) * 0.55).rounded()))
    }

    /// How many values lie above `Q3 + 1.5·IQR` (quartiles linearly interpolated, as numpy's percentile).
    public static func outlierCount(_ values: [Float]) -> Int {
        guard values.count > 1 else { return 0 }
        let sorted = values.map(Double.init).sorted()
        func percentile(_ q: Double) -> Double {
            let position = q * Double(sorted.count - 1)
            let lower = Int(position.rounded(.down))
            let upper = min(lower + 1, sorted.count - 1)
            return sorted[lower] + (sorted[upper] - sorted[lower]) * (position - Double(lower))
        }
        let q1 = percentile(0.25), q3 = percentile(0.75)
        let bound = q3 + 1.5 * (q3 - q1)
        return sorted.reduce(0) { $0 + ($1 > bound ? 1 : 0) }
    }

    // MARK: - Pieces

    private static func require(_ values: [Float]?, _ what: String, _ n: Int) throws -> [Float] {
        guard let values else { throw PruningError.missingEvidence(what) }
        guard values.count == n else { throw PruningError.missingEvidence("\(what) for all \(n) patches (got \(values.count))") }
        return values
    }

    /// Indices ordered by score (ties: lower index first).
    static func ranking(_ scores: [Float], descending: Bool) -> [Int] {
        scores.indices.sorted { a, b in
            if scores[a] != scores[b] { return descending ? scores[a] > scores[b] : scores[a] < scores[b] }
            return a < b
        }
    }

    /// `count` indices of `candidates` spread evenly over it (centred in equal strides).
    static func evenlySpaced(_ count: Int, from candidates: [Int]) -> [Int] {
        guard count > 0, !candidates.isEmpty else { return [] }
        let total = candidates.count
        return (0..<min(count, total)).map { i in candidates[(2 * i + 1) * total / (2 * min(count, total))] }
    }

    /// The union of both selections, trimmed to `budget`.
    static func capped(textRanked: [Int], attentionRanked: [Int], budget: Int, policy: CapPolicy) -> [Int] {
        var seen = Set<Int>()
        switch policy {
        case .highestIndex:
            let union = Set(textRanked).union(attentionRanked).sorted()
            return Array(union.suffix(budget))
        case .byScore:
            // Alternate the two rankings (question-guided first at equal rank) until the budget is met.
            var kept: [Int] = []
            for rank in 0..<max(textRanked.count, attentionRanked.count) where kept.count < budget {
                for list in [textRanked, attentionRanked] where rank < list.count && kept.count < budget {
                    if seen.insert(list[rank]).inserted { kept.append(list[rank]) }
                }
            }
            return kept
        }
    }
}

/// A small, fast, seedable generator (SplitMix64), so random pruning is reproducible across runs.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
