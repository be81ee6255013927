// `accm ask`: one question about one image, answered by the embedded pipeline.

import ACCM
import ArgumentParser
import Foundation

struct Ask: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Answer a question about an image with ACCM (prune, caption, select, answer) in one process.")

    enum Pruner: String, CaseIterable, ExpressibleByArgument {
        case none, random, uniform, clsAttention = "cls-attention", textGuided = "text-guided", accm
    }

    @OptionGroup var engine: EngineOptions

    @Option(help: "ACCM model directory (accm.json + one sub-directory per component; see ModelDirectory.swift). Default: the shipped family, Models/accm-world.")
    var model: String?

    @Option(help: "Image file (JPEG or PNG).")
    var image: String

    @Argument(help: "The question.")
    var question: String

    @Option(help: "Visual tokens to keep.")
    var keep: Int?

    @Option(help: "Pruning method: \(Pruner.allCases.map(\.rawValue).joined(separator: ", ")).")
    var pruner: Pruner = .accm

    @Option(help: "Question-guided ranking: most-similar (the paper) or least-similar (the authors' code).")
    var ranking: TextGuidedRanking = .mostSimilar

    @Option(help: "How ACCM trims its selection to the budget: score or highest-index (the authors' code).")
    var cap: CapPolicy = .byScore

    @Option(help: "Seed of the random pruner and of sampling.")
    var seed: UInt64 = 0

    @Flag(help: "Answer from the kept visual tokens alone (no caption).")
    var noCaption = false

    @Option(help: "Sampling temperature (0 = greedy).")
    var temperature: Float = 0

    @Option(help: "Nucleus sampling threshold.")
    var topP: Float = 1

    @Option(help: "Most tokens in the answer.")
    var maxTokens = 128

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    func validate() throws {
        if let keep, keep < 1 { throw ValidationError("--keep must be at least 1") }
        if maxTokens < 1 { throw ValidationError("--max-tokens must be at least 1") }
    }

    func run() throws {
        engine.apply()
        let pipeline = try ACCMPipeline.load(directory: model ?? DefaultPaths.model)
        guard let data = FileManager.default.contents(atPath: image) else {
            throw CommandError("cannot read the image file \(image) (missing or unreadable)")
        }
        let bytes = [UInt8](data)
        let patches = pipeline.vision.patchCount
        let method: PruningMethod = switch pruner {
        case .none: .none
        case .random: .random(seed: seed)
        case .uniform: .uniform
        case .clsAttention: .classAttention
        case .textGuided: .textGuided(ranking)
        case .accm: .accm(ranking: ranking, cap: cap, textPicks: nil)
        }
        let request = ACCMRequest(
            image: .encoded(bytes), question: question, budget: keep ?? max(1, patches / 4), pruning: method,
            compensate: !noCaption,
            generation: GenerationOptions(maxNewTokens: maxTokens, sampling: SamplingOptions(temperature: temperature, topP: topP, seed: seed)))
        let answer = try pipeline.answer([request]) { _, delta in
            if !json { FileHandle.standardOutput.write(Data(delta.utf8)) }
            return true
        }[0]
        if json {
            print(String(decoding: try AnswerReport(answer, unpruned: pipeline.unprunedFLOPs(for: answer)).json(), as: UTF8.self))
        } else {
            print()
            print(AnswerReport(answer, unpruned: pipeline.unprunedFLOPs(for: answer)).text)
        }
    }
}

extension TextGuidedRanking: ExpressibleByArgument {}
extension CapPolicy: ExpressibleByArgument {}

/// A failure of a command's own, printed as "Error: <message>" without the usage text.
struct CommandError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}
