// Options every command that loads an ACCM model directory shares.

import ACCM
import ArgumentParser
import Tensor

extension KVCacheFormat: ExpressibleByArgument {}

struct ModelOptions: ParsableArguments {
    @Option(help: "ACCM model directory (accm.json + one sub-directory per component; see ModelDirectory.swift), or bench:N for random weights at LLaVA-1.5-7B shapes with N decoder layers (BenchModel.swift). Default: $ACCM_MODEL, else the shipped family, Models/accm-world.")
    var model: String?

    @Flag(help: "Parse special tokens spelled in the question (\"</s>\", \"<image>\") as those tokens, as the authors' code does. Off by default: user text is tokenized as text, so only the prompt template inserts special tokens.")
    var parseSpecial = false

    @Option(name: .customLong("weights"), help: ArgumentHelp(
        "The format weight matrices are kept in: FORMAT for every component or COMPONENT=FORMAT for one (repeatable, later wins). FORMAT: \(WeightFormatChoice.allowedValues.joined(separator: ", ")) (stored = the checkpoint's own type, the default; int8/int4 quantize at load). COMPONENT: \(ModelComponent.allCases.map(\.rawValue).joined(separator: ", ")). Overrides the manifest's \"weights\"; for bench:N, formats the random weights are made in (default f32).",
        valueName: "format"))
    var weights: [String] = []

    @Option(name: .customLong("kv-cache"), help: ArgumentHelp(
        "The type the language models' KV caches store keys and values in: f32 (exact, the default) or f16 (half the memory and half the bytes a decode step reads of them). Overrides the manifest's \"kv_cache\".",
        valueName: "format"))
    var kvCache: KVCacheFormat?

    func validate() throws {
        var choice = WeightFormatChoice()
        do { try choice.apply(settings: weights) } catch { throw ValidationError("\(error)") }
    }

    /// The --weights settings as a choice over the components (on top of nothing: for bench models).
    var weightChoice: WeightFormatChoice {
        var choice = WeightFormatChoice()
        try? choice.apply(settings: weights)  // validated already
        return choice
    }

    /// The directory in force.
    var directory: String { model ?? DefaultPaths.model }

    /// The random-weight bench model `--model bench:N` names, if it does (tokenizers: the shipped family's).
    var bench: BenchModel? {
        get throws {
            guard directory.hasPrefix("bench:") else { return nil }
            let tokenizers = try ModelDirectory(DefaultPaths.model, parseSpecialTokens: parseSpecial)
            guard let bench = BenchModel(directory, tokenizers: tokenizers, weights: weightChoice, kvCache: kvCache ?? .f32) else {
                throw ValidationError("\(directory): a bench model is bench:N with N in 1...32")
            }
            return bench
        }
    }

    /// The model directory in force, with the --weights settings applied over its manifest's "weights".
    func modelDirectory() throws -> ModelDirectory {
        try ModelDirectory(directory, parseSpecialTokens: parseSpecial, weightSettings: weights, kvCache: kvCache)
    }

    /// Loads the embedded pipeline.
    func load() throws -> ACCMPipeline {
        if let bench = try bench { return try bench.pipeline() }
        return try ACCMPipeline.load(directory: directory, parseSpecialTokens: parseSpecial, weightSettings: weights,
                                     kvCache: kvCache)
    }
}
