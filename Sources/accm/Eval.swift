// `accm eval`: accuracy against FLOPs for every (token budget × pruning method) cell on a test split.
// The logic lives in the Evaluation target; this is argument parsing, progress and file output.

import ACCM
import ArgumentParser
import Evaluation
import Foundation

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Score pruning methods and token budgets on a test split: accuracy, FLOPs, a table and a plot.")

    @OptionGroup var engine: EngineOptions
    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "Data directory holding test.jsonl and its images. Default: the committed test split, Training/test.")
    var data: String?

    @Option(help: "Comma list of visual-token budgets.")
    var keep = "64,16,8,4"

    @Option(help: "Comma list of methods: \(EvalMethod.allCases.map(\.rawValue).joined(separator: ",")).")
    var pruner = EvalMethod.allCases.map(\.rawValue).joined(separator: ",")

    @Option(help: "Evaluate only the first N questions.")
    var limit: Int?

    @Option(help: "Requests answered together.")
    var batch = 8

    @Option(help: "Directory for results.csv, results.md, accuracy_vs_flops.png and answers.jsonl.")
    var out = "eval-out"

    @Option(help: "Question-guided ranking: most-similar or least-similar.")
    var ranking: TextGuidedRanking = .mostSimilar

    @Option(help: "How ACCM trims its selection to the budget: score or highest-index.")
    var cap: CapPolicy = .byScore

    @Option(help: "Most tokens in an answer (answers are one word).")
    var maxTokens = 4

    @Option(help: "Seed of the random pruner (question i uses seed + i).")
    var seed: UInt64 = 0

    @Flag(help: "Stop at the first question whose image cannot be read or whose request is refused (default: skip it, name it, count it in the table).")
    var strict = false

    func validate() throws {
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
        if batch < 1 || batch > RequestLimits.default.maxBatch {
            throw ValidationError("--batch must be in 1...\(RequestLimits.default.maxBatch), got \(batch)")
        }
        if maxTokens < 1 { throw ValidationError("--max-tokens must be at least 1") }
        _ = try plan()
    }

    /// The plan the options describe; a bad --keep or --pruner list is a usage error.
    private func plan() throws -> EvalPlan {
        do {
            return EvalPlan(budgets: try parseBudgets(keep), methods: try EvalMethod.parseList(pruner), ranking: ranking,
                            cap: cap, seed: seed, maxTokens: maxTokens, batchSize: batch)
        } catch let error as EvaluationError { throw ValidationError(error.description) }
    }

    func run() throws {
        engine.apply()
        let plan = try plan()
        let model = modelOptions.directory
        let data = data ?? DefaultPaths.testSplit

        do {
            let dataset = try EvalDataset.load(directory: data, limit: limit)
            for problem in dataset.problems { warn("skipped \(data)/test.jsonl \(problem)") }
            guard !dataset.items.isEmpty else { throw CommandError("no questions in \(data)/test.jsonl") }
            let pipeline = try modelOptions.load()
            let evaluator = try Evaluator(pipeline: pipeline)
            let cells = try plan.cells(patchCount: evaluator.patchCount)
            warn("\(dataset.items.count) questions × \(cells.count) cell\(cells.count == 1 ? "" : "s") (model: \(evaluator.patchCount) patches)")

            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            let answers = try AnswerLog(path: out + "/answers.jsonl")
            let progress = ProgressReporter()
            var named = Set<String>()
            let results = try evaluator.run(
                plan, items: dataset.items, images: ImageCache(directory: data), strict: strict,
                progress: progress.update, record: answers.write,
                skip: { skipped in
                    // Each question and reason once, however many cells it is skipped in.
                    let line = "skipped question \(skipped.id) (\(data)/\(skipped.image)): \(skipped.reason)"
                    if named.insert(line).inserted { progress.interrupt { warn(line) } }
                })
            progress.finish()
            try answers.close()
            let skips = results.reduce(0) { $0 + $1.skipped }
            if skips > 0 {
                warn("\(skips) question-cell\(skips == 1 ? "" : "s") skipped (\(named.count) distinct reason\(named.count == 1 ? "" : "s")); the table counts them per cell")
            }

            let table = ResultsFormat.markdown(results)
            print(table, terminator: "")
            try write(ResultsFormat.csv(results), to: out + "/results.csv")
            try write(ResultsFormat.report(results, title: "accm eval: \(model) on \(data) (\(dataset.items.count) questions)"),
                      to: out + "/results.md")
            let png = try AccuracyPlot.render(results).png()
            try Data(png).write(to: URL(fileURLWithPath: out + "/accuracy_vs_flops.png"))
            warn("wrote \(out)/results.csv, \(out)/results.md, \(out)/accuracy_vs_flops.png, \(out)/answers.jsonl")
        } catch let error as EvaluationError {
            throw CommandError(error.description)
        }
    }

    private func write(_ text: String, to path: String) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    }
}

/// One JSON line per answered question and cell: what the agreement check against the Python evaluation reads.
private final class AnswerLog {
    private let handle: FileHandle

    init(path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil) else {
            throw CommandError("cannot create \(path)")
        }
        handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
    }

    func write(cell: EvalCell, item: EvalItem, answer: ACCMAnswer) throws {
        var line: [String: Any] = [
            "id": item.id, "budget": cell.budget, "method": cell.method.rawValue, "answer": answer.text,
            "expected": item.answer, "correct": AnswerMatching.isCorrect(answer: answer.text, expected: item.answer),
            "kept": answer.keptIndices, "flops": answer.totalFLOPs,
        ]
        if let caption = answer.caption { line["caption"] = caption }
        let data = try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys, .withoutEscapingSlashes])
        try handle.write(contentsOf: data + Data("\n".utf8))
    }

    func close() throws { try handle.close() }
}

private func warn(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

/// A redrawn bar when stderr is a terminal; otherwise a line at each 10%.
private final class ProgressReporter {
    private let start = ContinuousClock.now
    private let terminal = isatty(STDERR_FILENO) != 0
    private var lastDecile = 0

    private var elapsed: Double {
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }

    func update(done: Int, total: Int) {
        let line = ProgressText.line(done: done, total: total, elapsed: elapsed)
        if terminal {
            FileHandle.standardError.write(Data(("\r" + line).utf8))
        } else {
            let decile = total > 0 ? done * 10 / total : 10
            if decile > lastDecile {
                lastDecile = decile
                warn(line)
            }
        }
    }

    func finish() {
        if terminal { FileHandle.standardError.write(Data("\n".utf8)) }
    }

    /// Writes `body`'s lines on their own, not over the bar.
    func interrupt(_ body: () -> Void) {
        if terminal { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        body()
    }
}
