// What an evaluation runs: every (budget, method) cell, `none` once with every patch.

import ACCM

/// A column of the results: a pruning method, with or without the caption.
public enum EvalMethod: String, Sendable, CaseIterable, Equatable {
    case none, random, uniform, clsAttention = "cls-attention", textGuided = "text-guided"
    case accmNoCaption = "accm-no-caption", accm

    /// Parses a comma list ("none,accm"); unknown names are an error naming the known ones.
    public static func parseList(_ text: String) throws -> [EvalMethod] {
        try commaList(text).map { name in
            guard let method = EvalMethod(rawValue: name) else {
                throw EvaluationError("unknown pruner '\(name)' (known: \(allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            return method
        }
    }

    /// Whether the decoder gets a caption.
    public var compensates: Bool { self == .accm }

    public func pruning(ranking: TextGuidedRanking, cap: CapPolicy, seed: UInt64) -> PruningMethod {
        switch self {
        case .none: .none
        case .random: .random(seed: seed)
        case .uniform: .uniform
        case .clsAttention: .classAttention
        case .textGuided: .textGuided(ranking)
        case .accm, .accmNoCaption: .accm(ranking: ranking, cap: cap, textPicks: nil)
        }
    }
}

/// Parses a comma list of positive budgets ("64,16,8").
public func parseBudgets(_ text: String) throws -> [Int] {
    try commaList(text).map { value in
        guard let budget = Int(value), budget >= 1 else { throw EvaluationError("budget '\(value)' is not a positive integer") }
        return budget
    }
}

private func commaList(_ text: String) throws -> [String] {
    let items = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    guard !items.isEmpty else { throw EvaluationError("empty list '\(text)'") }
    var seen = Set<String>()
    return items.filter { seen.insert($0).inserted }
}

/// One cell of the results table.
public struct EvalCell: Sendable, Hashable {
    public var budget: Int
    public var method: EvalMethod
    public init(budget: Int, method: EvalMethod) {
        self.budget = budget
        self.method = method
    }
}

/// Everything that decides what is run.
public struct EvalPlan: Sendable {
    public var budgets: [Int]
    public var methods: [EvalMethod]
    public var ranking: TextGuidedRanking
    public var cap: CapPolicy
    /// Base seed of the random pruner; question `i` of the split uses `seed + i`.
    public var seed: UInt64
    public var maxTokens: Int
    public var batchSize: Int

    public init(budgets: [Int], methods: [EvalMethod], ranking: TextGuidedRanking = .mostSimilar,
                cap: CapPolicy = .byScore, seed: UInt64 = 0, maxTokens: Int = 4, batchSize: Int = 8) {
        self.budgets = budgets
        self.methods = methods
        self.ranking = ranking
        self.cap = cap
        self.seed = seed
        self.maxTokens = maxTokens
        self.batchSize = batchSize
    }

    /// The cells, budgets from largest to smallest; `none` once, at `patchCount`.
    public func cells(patchCount: Int) throws -> [EvalCell] {
        if let tooLarge = budgets.first(where: { $0 > patchCount }) {
            throw EvaluationError("budget \(tooLarge) exceeds the model's \(patchCount) patches")
        }
        var cells: [EvalCell] = []
        if methods.contains(.none) { cells.append(EvalCell(budget: patchCount, method: .none)) }
        for budget in budgets.sorted(by: >) {
            for method in methods where method != .none { cells.append(EvalCell(budget: budget, method: method)) }
        }
        return cells
    }

    /// The request for question `index` of the split in `cell`.
    public func request(_ item: EvalItem, index: Int, image: [UInt8], cell: EvalCell) -> ACCMRequest {
        ACCMRequest(
            image: .encoded(image), question: item.question, budget: cell.budget,
            pruning: cell.method.pruning(ranking: ranking, cap: cap, seed: seed &+ UInt64(index)),
            compensate: cell.method.compensates,
            generation: GenerationOptions(maxNewTokens: maxTokens, sampling: .greedy))
    }
}
