// `accm ask`: one question about one image, answered by the embedded pipeline.

import ACCM
import ArgumentParser
import Cluster
import Foundation
import Transport

struct Ask: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Answer a question about an image with ACCM (prune, caption, select, answer) in one process.")

    enum Pruner: String, CaseIterable, ExpressibleByArgument {
        case none, random, uniform, clsAttention = "cls-attention", textGuided = "text-guided", accm
    }

    @OptionGroup var engine: EngineOptions
    @OptionGroup var modelOptions: ModelOptions

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

    @Option(help: "Ask a running cluster (the coordinator's client endpoint, tcp://HOST:PORT) instead of answering in this process.")
    var coordinator: String?

    @OptionGroup var curve: CurveClientOptions

    @Option(help: "With --coordinator: seconds the cluster may take (its deadline for the request).")
    var timeout: Double = 120

    @Flag(help: "Print one JSON object instead of text (on failure: {\"error\": {\"field\", \"message\"}}, exit status 1).")
    var json = false

    func validate() throws {
        if let keep, keep < 1 { throw ValidationError("--keep must be at least 1") }
        if maxTokens < 1 { throw ValidationError("--max-tokens must be at least 1") }
        if !(timeout > 0 && timeout <= 3600) { throw ValidationError("--timeout must be in (0, 3600] seconds") }
    }

    func run() throws {
        engine.apply()
        guard json else { return try answer() }
        do {
            try answer()
        } catch {
            struct Failure: Encodable {
                struct Detail: Encodable { var field: String?, message: String }
                var error: Detail
            }
            let field = (error as? RequestError)?.field ?? (error as? StageError)?.field
            let failure = Failure(error: .init(field: field, message: "\(error)"))
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(failure), as: UTF8.self))
            throw ExitCode.failure
        }
    }

    private func answer() throws {
        let pipeline = coordinator == nil ? try modelOptions.load() : nil
        let bytes = try readImageFile(image, limit: pipeline?.limits.image.maxBytes ?? RequestLimits.default.image.maxBytes)
        // A cluster does not say its patch count: its default budget is 16 (a quarter of the shipped model's 64).
        let patches = pipeline?.vision.patchCount ?? 64
        let method = PruningMethod(name: pruner.rawValue, seed: seed, ranking: ranking, cap: cap)!
        let request = ACCMRequest(
            image: .encoded(bytes), question: question, budget: keep ?? max(1, patches / 4), pruning: method,
            compensate: !noCaption,
            generation: GenerationOptions(maxNewTokens: maxTokens, sampling: SamplingOptions(temperature: temperature, topP: topP, seed: seed)))
        let json = self.json
        let answer: ACCMAnswer
        if let pipeline {
            answer = try pipeline.answer([request]) { _, delta in
                if !json { FileHandle.standardOutput.write(Data(delta.utf8)) }
                return true
            }[0]
        } else {
            let client = try ClusterClient(context: ZeroMQContext(), coordinator: coordinator!, options: try curve.clientOptions())
            defer { client.close() }
            answer = try client.answer(request, timeout: .milliseconds(Int(timeout * 1000))) { delta in
                if !json { FileHandle.standardOutput.write(Data(delta.utf8)) }
            }
        }
        if json {
            print(String(decoding: try AnswerReport(answer, unpruned: answer.unprunedFLOPs).json(), as: UTF8.self))
        } else {
            print()
            print(AnswerReport(answer, unpruned: answer.unprunedFLOPs).text)
        }
    }
}

/// The bytes of an image file; one larger than `limit` is refused before it is read.
func readImageFile(_ path: String, limit: Int) throws -> [UInt8] {
    let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? nil
    if let size, size > limit { throw RequestError.image(.tooManyBytes(count: size, limit: limit)) }
    guard let data = FileManager.default.contents(atPath: path) else {
        throw CommandError("cannot read the image file \(path) (missing or unreadable)")
    }
    guard data.count <= limit else { throw RequestError.image(.tooManyBytes(count: data.count, limit: limit)) }
    return [UInt8](data)
}

extension TextGuidedRanking: ExpressibleByArgument {}
extension CapPolicy: ExpressibleByArgument {}

/// A failure of a command's own, printed as "Error: <message>" without the usage text.
struct CommandError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}
