// `accm bench request`: one ACCM request at LLaVA-1.5-7B shapes end to end on the embedded pipeline (random
// weights), with the decoder in each of several formats: time to first token and decode tokens/s, next to the
// same request unpruned.

import ACCM
import ArgumentParser
import Foundation
import Tensor

struct BenchRequest: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "request",
        abstract: "Time one request end to end at LLaVA-1.5-7B shapes (random weights): ACCM against unpruned, per decoder format.",
        discussion: """
            The model is bench:LAYERS (ViT-L/14-336 + CLIP-L text, mapper + GPT-2 124M caption beams, LongCLIP-L + \
            selector, LLaVA-1.5-7B's projector + LLaMA-7B layers), its decoder made in each --dtypes format, the \
            other stages fp32. Two requests per format: ACCM keeping --keep of 576 visual tokens with its caption, and \
            the same question unpruned (576 tokens, no caption). Time to first token is the wall time of a request that \
            stops after one token; decode speed is the decoder's own steps after the first token, timed one by one, \
            on the same prompt (the request's caption and as many visual tokens as it kept). One warm-up request \
            runs first for each format.
            """)

    @OptionGroup var engine: EngineOptions

    @Option(help: "LLaMA-7B-shaped decoder layers (1...32).")
    var layers = 32

    @Option(parsing: .upToNextOption, help: "Decoder formats to run, in order: f32, bf16, f16, int8, int4.")
    var dtypes: [WeightFormat] = [.bf16, .int8, .int4]

    @Option(name: .customLong("kv-cache"), help: "KV cache format of the decoder and the caption model: f32 or f16.")
    var kvCache: KVCacheFormat = .f16

    @Option(help: "Visual tokens ACCM keeps (36 of 576 is the paper's 6.25%).")
    var keep = 36

    @Option(help: "Tokens decoded after the first, for the decode speed.")
    var tokens = 16

    @Option(help: "Also write the results as JSON to this file.")
    var json: String?

    func validate() throws {
        guard (1...32).contains(layers) else { throw ValidationError("--layers must be in 1...32") }
        guard (1...576).contains(keep) else { throw ValidationError("--keep must be in 1...576") }
        guard (1...256).contains(tokens) else { throw ValidationError("--tokens must be in 1...256") }
    }

    struct Row: Encodable {
        var dtype: String, request: String, visualTokens: Int, promptTokens: Int
        var timeToFirstToken: Double, tokensPerSecond: Double, stageSeconds: [String: Double]
    }

    func run() throws {
        engine.apply()
        print(MachineDescription.current.lines.joined(separator: "\n"))
        let tokenizers = try ModelDirectory(DefaultPaths.model)
        // A fixed pseudo-random image already at the vision tower's input size (the bench measures the model).
        let image = ImageInput.pixels(Tensor(shape: [3, 336, 336], values: Self.pseudoRandomValues(3 * 336 * 336, seed: 12345)))
        let question = "What is the man holding in his hand?"
        func request(_ pruned: Bool, maxTokens: Int) -> ACCMRequest {
            ACCMRequest(image: image, question: question, budget: pruned ? keep : 576,
                        pruning: pruned ? .accm(ranking: .mostSimilar, cap: .byScore, textPicks: nil) : PruningMethod(name: "none")!,
                        compensate: pruned, generation: GenerationOptions(maxNewTokens: maxTokens))
        }
        print("request: \"\(question)\", \(layers) decoder layers, KV cache \(kvCache.rawValue), decode speed over \(tokens) tokens after the first\n")
        print("| decoder | request | visual tokens | prompt tokens | time to first token | decode | vision / caption / selector / decoder s (first-token request) |")
        print("| --- | --- | ---: | ---: | ---: | ---: | --- |")
        var rows: [Row] = []
        for dtype in dtypes {
            var weights = WeightFormatChoice()
            weights.set(dtype, for: .llava)
            guard let bench = BenchModel("bench:\(layers)", tokenizers: tokenizers, weights: weights, kvCache: kvCache) else {
                throw ValidationError("bench:\(layers) is not a bench model")
            }
            let pipeline = try bench.pipeline()
            _ = try pipeline.answer([request(true, maxTokens: 2)])
            for pruned in [true, false] {
                let start = ContinuousClock.now
                let first = try pipeline.answer([request(pruned, maxTokens: 1)])[0]
                let firstSeconds = (ContinuousClock.now - start).seconds
                let rate = try decodeRate(pipeline.decoder, question: question, caption: first.caption,
                                          visualTokens: first.keptIndices.count)
                let stages = first.seconds.reduce(into: [String: Double]()) { $0[$1.key.rawValue] = $1.value }
                let row = Row(dtype: dtype.rawValue, request: pruned ? "ACCM at \(keep) + caption" : "unpruned",
                              visualTokens: first.keptIndices.count, promptTokens: first.promptTokens,
                              timeToFirstToken: firstSeconds, tokensPerSecond: rate, stageSeconds: stages)
                rows.append(row)
                let stageList = ["vision", "caption", "selector", "decoder"].map { stages[$0].map { String(format: "%.2f", $0) } ?? "–" }
                print("| \(dtype.rawValue) | \(row.request) | \(row.visualTokens) | \(row.promptTokens) | "
                      + String(format: "%.2f s | %.2f tok/s", firstSeconds, rate) + " | \(stageList.joined(separator: " / ")) |")
            }
        }
        print("\npeak RSS: " + String(format: "%.2f GB", ProcessMemory.peakResidentGigabytes))
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(rows).write(to: URL(fileURLWithPath: json))
        }
    }

    /// Tokens per second of the decoder's steps after the first token (the first step is the prompt's prefill),
    /// each step timed on its own, for a prompt like the request's: its caption and `visualTokens` features.
    private func decodeRate(_ decoder: DecoderStage, question: String, caption: String?, visualTokens: Int) throws -> Double {
        let width = decoder.projector.inputSize
        let features = Tensor(shape: [visualTokens, width], values: Self.pseudoRandomValues(visualTokens * width, seed: 777))
        var session = decoder.session()
        try session.join(0, DecodeRequest(question: question, caption: caption, visualFeatures: features,
                                          generation: GenerationOptions(maxNewTokens: 1 + tokens)))
        var steps = 0, seconds = 0.0
        while !session.isEmpty {
            let start = ContinuousClock.now
            _ = try session.step { _, _ in true }
            if steps > 0 { seconds += (ContinuousClock.now - start).seconds }
            steps += 1
        }
        // The last step samples a token that ends the answer; every step after the first decoded one token.
        return steps > 1 && seconds > 0 ? Double(steps - 1) / seconds : .nan
    }

    /// `count` values in [-1, 1) from a fixed linear congruential sequence (the same inputs in every run).
    private static func pseudoRandomValues(_ count: Int, seed: UInt32) -> [Float] {
        var state = seed
        return (0..<count).map { _ in
            state = state &* 1_664_525 &+ 1_013_904_223
            return Float(state >> 8) / 8_388_608 - 1
        }
    }
}
