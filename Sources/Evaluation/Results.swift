// What one cell scored, and the table / CSV written from all cells.

import Foundation

/// The tallies of one cell.
public struct CellResult: Sendable, Equatable {
    public var cell: EvalCell
    public var n = 0
    /// Questions left out of this cell (image unreadable, request refused).
    public var skipped = 0
    public var correct = 0
    public var totalFLOPs = 0.0
    public var decoderFLOPs = 0.0
    /// Summed cost at the real system's shapes (0 when not computed).
    public var referenceFLOPs = 0.0
    /// kind → (questions, correct).
    public var byKind: [String: (n: Int, correct: Int)] = [:]

    public init(cell: EvalCell) { self.cell = cell }

    public mutating func add(kind: String, correct isCorrect: Bool, totalFLOPs: Double, decoderFLOPs: Double,
                             referenceFLOPs: Double = 0) {
        n += 1
        self.referenceFLOPs += referenceFLOPs
        correct += isCorrect ? 1 : 0
        self.totalFLOPs += totalFLOPs
        self.decoderFLOPs += decoderFLOPs
        let tally = byKind[kind] ?? (0, 0)
        byKind[kind] = (tally.n + 1, tally.correct + (isCorrect ? 1 : 0))
    }

    public var accuracy: Double { n > 0 ? Double(correct) / Double(n) : 0 }
    public var meanTotalFLOPs: Double { n > 0 ? totalFLOPs / Double(n) : 0 }
    public var meanDecoderFLOPs: Double { n > 0 ? decoderFLOPs / Double(n) : 0 }
    public var meanReferenceFLOPs: Double { n > 0 ? referenceFLOPs / Double(n) : 0 }
    public func accuracy(kind: String) -> Double? {
        byKind[kind].flatMap { $0.n > 0 ? Double($0.correct) / Double($0.n) : nil }
    }

    public static func == (a: CellResult, b: CellResult) -> Bool {
        a.cell == b.cell && a.n == b.n && a.skipped == b.skipped && a.correct == b.correct && a.totalFLOPs == b.totalFLOPs
            && a.decoderFLOPs == b.decoderFLOPs && a.referenceFLOPs == b.referenceFLOPs && a.byKind.mapValues { [$0.n, $0.correct] } == b.byKind.mapValues { [$0.n, $0.correct] }
    }
}

/// Formatting of a finished evaluation.
public enum ResultsFormat {
    /// The kinds seen in any cell, sorted.
    public static func kinds(_ results: [CellResult]) -> [String] {
        Set(results.flatMap(\.byKind.keys)).sorted()
    }

    /// Rows: budgets largest first; columns: methods in first-seen order; cell "acc% / GFLOP", with
    /// "(k skipped)" when questions were left out.
    public static func markdown(_ results: [CellResult]) -> String {
        var methods: [EvalMethod] = []
        for r in results where !methods.contains(r.cell.method) { methods.append(r.cell.method) }
        let budgets = Set(results.map(\.cell.budget)).sorted(by: >)
        var lines = ["| keep | " + methods.map(\.rawValue).joined(separator: " | ") + " |",
                     "| ---: | " + methods.map { _ in "---:" }.joined(separator: " | ") + " |"]
        for budget in budgets {
            let cells = methods.map { method in
                results.first { $0.cell.budget == budget && $0.cell.method == method }
                    .map { String(format: "%.1f%% / %@", 100 * $0.accuracy, gflop($0.meanTotalFLOPs))
                        + ($0.skipped > 0 ? " (\($0.skipped) skipped)" : "") } ?? "–"
            }
            lines.append("| \(budget) | " + cells.joined(separator: " | ") + " |")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// GFLOP with about four significant digits.
    public static func gflop(_ flops: Double) -> String {
        let g = flops / 1e9
        return g >= 100 ? String(format: "%.0f", g) : g >= 1 ? String(format: "%.2f", g) : String(format: "%.4g", g)
    }

    /// One row per cell: budget, method, n, accuracy, mean_total_flops, mean_decoder_flops,
    /// mean_reference_flops (at LLaVA-1.5-7B shapes), skipped, acc_<kind>…
    public static func csv(_ results: [CellResult]) -> String {
        let kinds = kinds(results)
        var lines = [(["budget", "method", "n", "accuracy", "mean_total_flops", "mean_decoder_flops", "mean_reference_flops",
                       "skipped"]
                      + kinds.map { "acc_" + $0 }).joined(separator: ",")]
        for r in results {
            var fields = ["\(r.cell.budget)", r.cell.method.rawValue, "\(r.n)", String(format: "%.6f", r.accuracy),
                          String(format: "%.6e", r.meanTotalFLOPs), String(format: "%.6e", r.meanDecoderFLOPs),
                          String(format: "%.6e", r.meanReferenceFLOPs), "\(r.skipped)"]
            fields += kinds.map { kind in r.accuracy(kind: kind).map { String(format: "%.6f", $0) } ?? "" }
            lines.append(fields.joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// results.md: the table, then per-kind accuracy and decoder FLOPs per cell.
    public static func report(_ results: [CellResult], title: String) -> String {
        let kinds = kinds(results)
        var text = "# \(title)\n\nAccuracy / mean total GFLOP per request (budgets are visual tokens kept).\n\n"
        text += markdown(results)
        text += "\n| keep | method | n | accuracy | total GFLOP | decoder GFLOP | GFLOP at LLaVA-1.5-7B shapes | "
            + kinds.joined(separator: " | ") + " |\n"
        text += "| ---: | --- | ---: | ---: | ---: | ---: | ---: | " + kinds.map { _ in "---:" }.joined(separator: " | ") + " |\n"
        for r in results {
            let perKind = kinds.map { k in r.accuracy(kind: k).map { String(format: "%.1f%%", 100 * $0) } ?? "–" }
            text += "| \(r.cell.budget) | \(r.cell.method.rawValue) | \(r.n) | " + String(format: "%.1f%%", 100 * r.accuracy)
                + " | \(gflop(r.meanTotalFLOPs)) | \(gflop(r.meanDecoderFLOPs)) | \(gflop(r.meanReferenceFLOPs)) | "
                + perKind.joined(separator: " | ") + " |\n"
        }
        return text
    }
}
