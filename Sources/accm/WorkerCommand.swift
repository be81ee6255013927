// `accm worker`: serves one stage of a model directory to a coordinator.

import ACCM
import ArgumentParser
import ClusterWorker
import Foundation
import Tensor
import Transport

extension Stage: ExpressibleByArgument {}

struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Serve one stage (vision, caption, selector or decoder) to a coordinator; loads only that stage.")

    @Option(help: "The stage: vision, caption, selector or decoder.")
    var stage: Stage

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "The coordinator's worker endpoint.")
    var coordinator = "tcp://127.0.0.1:5555"

    @OptionGroup var engine: EngineOptions

    @Option(help: "Most tasks computed together.")
    var maxBatch = 8

    @OptionGroup var curve: CurveClientOptions

    @Option(help: .hidden)
    var parentPid: Int32?

    /// How many times `accm cluster up` restarted this slot (shown by `accm cluster status`).
    @Option(help: .hidden)
    var restarts = 0

    func validate() throws {
        if !(1...256).contains(maxBatch) { throw ValidationError("--max-batch must be in 1...256") }
    }

    func run() throws {
        let threadCount = engine.apply()
        let loaded: LoadedStage
        let identity: String
        var formats = WeightFormatChoice()
        let kvCache: KVCacheFormat
        if let bench = try modelOptions.bench {
            (loaded, identity) = (try LoadedStage.load(stage, from: bench), bench.identity)
            try formats.apply(settings: modelOptions.weights)
            kvCache = bench.kvCache
        } else {
            let model = try modelOptions.modelDirectory()  // the manifest's and --weights' formats apply
            (loaded, identity) = (try LoadedStage.load(stage, from: model), try model.identity())
            formats = model.weights
            kvCache = model.kvCache
        }
        let worker = try StageWorker(
            context: ZeroMQContext(), stage: loaded, modelIdentity: identity, modelPath: modelOptions.directory,
            options: WorkerOptions(stage: stage, coordinator: coordinator, threads: threadCount, maxBatch: maxBatch,
                                   restarts: restarts, curve: try curve.load(), weightFormats: formats.description(of: stage, kvCache: kvCache)))
        print("worker: \(stage.rawValue) of \(modelOptions.directory) (\(threadCount) thread\(threadCount == 1 ? "" : "s"), "
            + "batches of \(maxBatch)) → \(coordinator)")
        flushStandardOutput()
        let lifetime = ProcessLifetime.onTermination(parent: parentPid) { worker.stop() }
        try withExtendedLifetime(lifetime) { try worker.run() }
    }
}
