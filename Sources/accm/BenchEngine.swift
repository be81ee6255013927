// `accm bench engine`: CLIP ViT-L/14-336, GPT-2 124M and LLaMA-7B layers (or the whole 32-layer model) with
// random weights at their real shapes, in a chosen weight format, against what OpenBLAS's sgemm and the
// memory system reach on this machine in the same run.

import ArgumentParser
import Foundation
import Models
import Tensor
import Weights

struct BenchEngine: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine",
        abstract: "Time a CLIP ViT-L/14-336 forward, GPT-2 124M prefill/decode and LLaMA-7B layers' prefill/decode.",
        discussion: """
            FLOPs follow one convention (Models/FLOPs.swift): a linear map over R rows is 2·R·in·out, attention \
            4·heads·headDim per (query, key) pair, element-wise work uncounted. Scripts/bench_engine_torch.py \
            times the same cases with PyTorch under the same convention. Each line gives the median and, in \
            brackets, the fastest and slowest run. Decode is held to the bound the weight bytes it reads and the \
            streaming bandwidth (measured alternately with it) set; prefill to sgemm's rate at its shapes. \
            llama-model builds all --layers layers (default 32) in --dtype, prefills 640 tokens, decodes one, and \
            prints the process's peak resident memory: run it alone (--cases llama-model) for that figure to be its own.
            """
    )

    enum Case: String, CaseIterable, ExpressibleByArgument {
        case vit, gpt2Prefill = "gpt2-prefill", gpt2Decode = "gpt2-decode"
        case llamaPrefill = "llama-prefill", llamaPrefill100 = "llama-prefill-100", llamaDecode = "llama-decode"
        case llamaDecode4 = "llama-decode-4", llamaDecode8 = "llama-decode-8"
        case llamaModel = "llama-model"

        /// The cases run when none are named (the whole model is only run when asked for).
        static var defaults: [Case] { allCases.filter { $0 != .llamaModel } }
    }

    @OptionGroup var engine: EngineOptions

    @Option(help: "The format every weight matrix is made in: \(WeightFormat.allCases.map(\.rawValue).joined(separator: ", ")).")
    var dtype: WeightFormat = .f32

    @Option(name: .customLong("kv-cache"), help: "The KV cache format of the GPT-2 and LLaMA cases: f32 or f16.")
    var kvCache: KVCacheFormat = .f32

    @Option(help: "Decoder layers of the llama-model case (1...32).")
    var layers = 32

    @Option(help: "Timed runs per case (the median is reported, after one warm-up).")
    var `repeat` = 3

    @Option(parsing: .upToNextOption, help: "Cases to run: \(Case.allCases.map(\.rawValue).joined(separator: ", ")).")
    var cases: [Case] = Case.defaults

    @Option(help: "Also write the results as JSON to this file.")
    var json: String?

    func validate() throws {
        if `repeat` < 1 { throw ValidationError("--repeat must be at least 1") }
        if !(1...32).contains(layers) { throw ValidationError("--layers must be in 1...32") }
    }

    func run() throws {
        engine.apply()
        print(MachineDescription.current.lines.joined(separator: "\n"))
        print("weights: \(dtype.rawValue), KV cache: \(kvCache.rawValue) (kernels: \(Kernels.pathName)); runs per case: \(`repeat`) timed after 1 warm-up, median [fastest–slowest]\n")
        var results: [BenchmarkResult] = []
        let bench = EngineBenchmark(repeats: `repeat`, format: dtype, kvCache: kvCache, modelLayers: layers)
        for c in cases {
            let result = try bench.run(c)
            print(result.line)
            results.append(result)
        }
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(results).write(to: URL(fileURLWithPath: json))
        }
    }
}

/// One timed case and what it is compared with.
struct BenchmarkResult: Encodable {
    var name: String
    var seconds: Double
    var fastestSeconds: Double
    var slowestSeconds: Double
    var gflop: Double
    var gflopPerSecond: Double
    var gigabytesPerSecond: Double?
    /// The bar this case is held to (sgemm rate at the same shapes, or the streaming bandwidth).
    var reference: String
    var referenceValue: Double
    var shareOfReference: Double
    /// Decode cases: the share of the streaming bandwidth when the KV cache bytes the step reads are counted too.
    var shareWithKVCache: Double? = nil

    var line: String {
        let time = seconds >= 1 ? String(format: "%8.3f s ", seconds) : String(format: "%8.2f ms", seconds * 1000)
        func short(_ t: Double) -> String { t >= 1 ? String(format: "%.3f", t) : String(format: "%.2f", t * 1000) }
        var s = "\(name.padding(toLength: 38, withPad: " ", startingAt: 0)) \(time) [\(short(fastestSeconds))–\(short(slowestSeconds))]"
        s += "  \(String(format: "%8.2f", gflop)) GFLOP"
        s += String(format: "  %7.1f GFLOP/s", gflopPerSecond)
        if let gigabytesPerSecond { s += String(format: "  %6.1f GB/s", gigabytesPerSecond) }
        s += String(format: "   %.0f%% of %@ (%.1f)", shareOfReference * 100, reference, referenceValue)
        if let shareWithKVCache { s += String(format: "; %.0f%% with the KV cache read", shareWithKVCache * 100) }
        return s
    }
}

/// Builds the models with random weights and times them.
struct EngineBenchmark {
    let repeats: Int
    /// The format the weight matrices are made in.
    let format: WeightFormat
    /// The format of the language models' KV caches.
    let kvCache: KVCacheFormat
    /// Layers of the whole-model case.
    let modelLayers: Int

    private func random(_ seed: UInt64) -> WeightStore { .random(seed: seed, matrixFormat: format) }

    func run(_ c: BenchEngine.Case) throws -> BenchmarkResult {
        switch c {
        case .vit: return try vit()
        case .gpt2Prefill: return try gpt2(decode: false)
        case .gpt2Decode: return try gpt2(decode: true)
        case .llamaPrefill: return try llamaLayerPrefill(tokens: 640)
        case .llamaPrefill100: return try llamaLayerPrefill(tokens: 100)
        case .llamaDecode: return try llamaLayerDecode(sequences: 1, tokens: 640)
        case .llamaDecode4: return try llamaLayerDecode(sequences: 4, tokens: 640)
        case .llamaDecode8: return try llamaLayerDecode(sequences: 8, tokens: 640)
        case .llamaModel: return try llamaModel()
        }
    }

    // MARK: Cases

    private func vit() throws -> BenchmarkResult {
        let config = try configuration(CLIPTowerConfiguration.self, [
            "hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16,
            "image_size": 336, "patch_size": 14, "hidden_act": "quick_gelu",
        ])
        let vision = try CLIP.Vision(store: random(1), config: config, projectionDim: nil)
        let pixels = randomTensor([1, 3, 336, 336])
        let t = config.visionTokenCount, c = config.hiddenSize, i = config.intermediateSize
        let (seconds, ceiling) = try timeAgainstSGEMM(shapes: [(t, c, 3 * c), (t, c, c), (t, c, i), (t, i, c)]) {
            _ = try vision(pixels)
        }
        let flop = config.visionFLOPs(images: 1)
        return result("clip-vit-l14-336 forward (577 tok)", seconds, flop, nil, "sgemm at its shapes GFLOP/s", ceiling)
    }

    private func gpt2(decode: Bool) throws -> BenchmarkResult {
        let config = try configuration(GPT2Configuration.self, [:])  // the 124M defaults
        var model = try GPT2(store: random(2), config: config)
        model.cacheFormat = kvCache
        let prompt = (0..<64).map { ($0 * 7919) % config.vocabularySize }
        var cache = model.makeCache(capacity: 80)
        if !decode {
            let k = config.hiddenSize, m = config.mlpSize
            let shapes = [(64, k, 3 * k), (64, k, k), (64, k, m), (64, m, k), (64, k, config.vocabularySize)]
            let (seconds, ceiling) = try timeAgainstSGEMM(shapes: shapes) {
                cache.truncate(to: 0)
                _ = model.logits(try model.forward(model.embed(prompt), cache: &cache, recordHiddenStates: false).hidden)
            }
            let flop = config.flops(newTokens: 64, cached: 0, logitRows: 64)
            return result("gpt2-124m prefill 64", seconds, flop, nil, "sgemm at its shapes GFLOP/s", ceiling)
        }
        _ = try model.forward(model.embed(prompt), cache: &cache, recordHiddenStates: false)
        let (seconds, bandwidth) = try timeAgainstStream {
            cache.truncate(to: 64)
            _ = model.logits(try model.forward(model.embed([42]), cache: &cache, recordHiddenStates: false).hidden)
        }
        let flop = config.flops(newTokens: 1, cached: 64, logitRows: 1)
        let bytes = config.decodeWeightBytes * format.bytesPerWeight / 4  // every GPT-2 124M width is a whole number of blocks
        return result("gpt2-124m decode 1 at 64", seconds, flop, bytes / seconds.median / 1e9, "stream GB/s", bandwidth)
    }

    /// LLaMA-7B's shapes with `layers` layers and a `vocabulary`-token embedding and head (the layer cases take a
    /// tiny one, so that only the layer is timed; the whole-model case LLaMA's 32000 at any layer count).
    private func llama7B(layers: Int, vocabulary: Int) throws -> LlamaConfiguration {
        try configuration(LlamaConfiguration.self, [
            "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": layers, "num_attention_heads": 32,
            "num_key_value_heads": 32, "max_position_embeddings": 4096, "vocab_size": vocabulary,
        ])
    }

    /// One LLaMA-7B layer in the chosen formats.
    private func llamaLayerModel() throws -> (LlamaConfiguration, Llama) {
        let config = try llama7B(layers: 1, vocabulary: 32)
        var model = try Llama(store: random(3), config: config)
        model.cacheFormat = kvCache
        return (config, model)
    }

    /// One LLaMA-7B layer's prefill of `tokens` (640: LLaVA's unpruned request; 100: ACCM's at 6.25%).
    private func llamaLayerPrefill(tokens: Int) throws -> BenchmarkResult {
        let (config, model) = try llamaLayerModel()
        let prompt = randomTensor([tokens, 4096], scale: 1)
        var cache = model.makeCache(capacity: tokens + 20)
        let c = config.hiddenSize, i = config.intermediateSize
        let shapes = [(tokens, c, c), (tokens, c, c), (tokens, c, c), (tokens, c, c), (tokens, c, i), (tokens, c, i), (tokens, i, c)]
        let (seconds, ceiling) = try timeAgainstSGEMM(shapes: shapes) {
            cache.truncate(to: 0)
            _ = try model.forward(prompt, cache: &cache, recordHiddenStates: false)
        }
        let flop = config.flops(newTokens: tokens, cached: 0, logitRows: 0)
        return result("llama-7b layer prefill \(tokens)", seconds, flop, nil, "fp32 sgemm at its shapes GFLOP/s", ceiling)
    }

    /// One LLaMA-7B layer's decode step for `sequences` sequences, each at a context of `tokens`: one sequence
    /// through the one-sequence forward pass, more through the batch one (what the decoder stage runs when that
    /// many requests decode together). The weights are read once a step either way, so the bound is the weight
    /// bytes over the streaming bandwidth.
    private func llamaLayerDecode(sequences: Int, tokens: Int) throws -> BenchmarkResult {
        let (config, model) = try llamaLayerModel()
        var cache = model.makeCache(capacity: tokens + 20)
        _ = try model.forward(randomTensor([tokens, 4096], scale: 1), cache: &cache, recordHiddenStates: false)
        var caches = Array(repeating: cache, count: sequences)
        let inputs = (0..<sequences).map { _ in randomTensor([1, 4096], scale: 1) }
        let (seconds, bandwidth) = try timeAgainstStream {
            for i in caches.indices { caches[i].truncate(to: tokens) }
            if sequences == 1 {
                _ = try model.forward(inputs[0], cache: &caches[0], recordHiddenStates: false)
            } else {
                _ = try model.forward(inputs, caches: &caches, recordHiddenStates: false)
            }
        }
        let flop = Double(sequences) * config.flops(newTokens: 1, cached: tokens, logitRows: 0)
        let bytes = Double(model.layerMatrixBytes(0))
        let name = sequences == 1 ? "llama-7b layer decode 1 at \(tokens)" : "llama-7b layer decode \(sequences) × 1 at \(tokens)"
        return result(name, seconds, flop, bytes / seconds.median / 1e9, "stream GB/s", bandwidth,
                      cacheBytes: llamaCacheBytes(layers: 1, positions: tokens, sequences: sequences))
    }

    /// The LLaMA-7B-shaped decoder with `modelLayers` layers and its head, made in `format` (no fp32 copy):
    /// one prefill of 640 tokens (timed once), then decode steps at 640, and the process's peak resident memory.
    private func llamaModel() throws -> BenchmarkResult {
        let config = try llama7B(layers: modelLayers, vocabulary: 32000)
        let clock = ContinuousClock()
        var model: Llama!
        let build = clock.measure { model = try? Llama(store: random(4), config: config) }
        guard var model else { throw ValidationError("could not build the model") }
        model.cacheFormat = kvCache
        let weightBytes = (0..<modelLayers).reduce(0) { $0 + model.layerMatrixBytes($1) } + model.headBytes
        print(String(format: "llama-7b %d layers in %@: %.2f GB of weight matrices, built in %.1f s; peak RSS %.2f GB",
                     modelLayers, format.rawValue, Double(weightBytes) / 1e9, build.seconds, ProcessMemory.peakResidentGigabytes))
        var cache = model.makeCache(capacity: 660)
        let prompt = randomTensor([640, 4096], scale: 1)
        let prefill = try clock.measure { _ = model.logits(try model.forward(prompt, cache: &cache, recordHiddenStates: false).hidden.rows(639..<640)) }
        print(String(format: "llama-7b %d layers prefill 640: %.2f s (%.3f s a layer, one run); peak RSS %.2f GB",
                     modelLayers, prefill.seconds, prefill.seconds / Double(modelLayers), ProcessMemory.peakResidentGigabytes))
        let token = randomTensor([1, 4096], scale: 1)
        _ = model.logits(try model.forward(token, cache: &cache, recordHiddenStates: false).hidden)
        print(String(format: "peak RSS after the prefill and a decode step: %.2f GB (weights %.2f GB, %@ KV cache %.2f GB at 660 positions)",
                     ProcessMemory.peakResidentGigabytes, Double(weightBytes) / 1e9, kvCache.rawValue,
                     Double(KVCache.byteCount(layers: modelLayers, width: 4096, positions: 660, format: kvCache)) / 1e9))
        let (seconds, bandwidth) = try timeAgainstStream {
            cache.truncate(to: 640)
            _ = model.logits(try model.forward(token, cache: &cache, recordHiddenStates: false).hidden)
        }
        let flop = config.flops(newTokens: 1, cached: 640, logitRows: 1)
        return result("llama-7b \(modelLayers)L+head decode at 640", seconds, flop,
                      Double(weightBytes) / seconds.median / 1e9, "stream GB/s", bandwidth,
                      cacheBytes: llamaCacheBytes(layers: modelLayers, positions: 640))
    }

    // MARK: References
    // Each reference is timed in turn with the case itself (case, reference, case, ...), so that the
    // ratio holds even when the machine's speed drifts during the run (shared virtual machines do).

    /// Median time of `body`, and the GFLOP/s `cblas_sgemm` reaches on the `(m, k, n)` products
    /// `x[m,k] · W[n,k]ᵀ` the case is made of (through the engine's threaded `linear`).
    private func timeAgainstSGEMM(
        shapes: [(m: Int, k: Int, n: Int)], _ body: () throws -> Void
    ) throws -> (seconds: Samples, gflopPerSecond: Double) {
        let operands = shapes.map { (randomTensor([$0.m, $0.k]), randomTensor([$0.n, $0.k])) }
        let flop = shapes.reduce(0.0) { $0 + FLOPs.linear(rows: $1.m, inputs: $1.k, outputs: $1.n) }
        let (seconds, reference) = try interleaved(body) { for (x, w) in operands { _ = x.linear(weight: w) } }
        return (seconds, flop / reference.median / 1e9)
    }

    /// Median time of `body`, and the machine's streaming read bandwidth: bytes per second while every engine
    /// thread compares its part of two equal 256 MiB buffers with glibc's vectorised `memcmp`, which reads
    /// both and writes nothing (the bar for memory-bound decoding, which only reads weights).
    private func timeAgainstStream(_ body: () throws -> Void) throws -> (seconds: Samples, gigabytesPerSecond: Double) {
        let count = 1 << 26
        let first = randomTensor([count])
        let second = Tensor(shape: [count], values: first.scalars)
        let (seconds, reference) = try interleaved(body) {
            first.withUnsafeBufferPointer { a in
                second.withUnsafeBufferPointer { b in
                    Parallelism.forEachChunk(count: count, grain: 1 << 20) { range in
                        let differ = memcmp(a.baseAddress! + range.lowerBound, b.baseAddress! + range.lowerBound, range.count * 4)
                        precondition(differ == 0, "the two buffers are equal")
                    }
                }
            }
        }
        return (seconds, Double(2 * count * 4) / reference.median / 1e9)
    }

    // MARK: Helpers

    /// `cacheBytes`: for a decode case, the KV cache bytes its step reads besides the weights (the bound counts
    /// only the weights, as the issue's target does; the line also gives the share with both).
    private func result(
        _ name: String, _ seconds: Samples, _ flop: Double, _ gbps: Double?, _ reference: String, _ value: Double,
        cacheBytes: Double? = nil
    ) -> BenchmarkResult {
        let rate = flop / seconds.median / 1e9
        let withCache = gbps.flatMap { gbps in cacheBytes.map { (gbps + $0 / seconds.median / 1e9) / value } }
        return BenchmarkResult(
            name: name, seconds: seconds.median, fastestSeconds: seconds.fastest, slowestSeconds: seconds.slowest,
            gflop: flop / 1e9, gflopPerSecond: rate, gigabytesPerSecond: gbps,
            reference: reference, referenceValue: value, shareOfReference: (gbps ?? rate) / value,
            shareWithKVCache: withCache)
    }

    /// Bytes of KV cache one LLaMA-7B decode step of `sequences` sequences reads at `positions` positions, over `layers`.
    private func llamaCacheBytes(layers: Int, positions: Int, sequences: Int = 1) -> Double {
        Double(sequences * KVCache.byteCount(layers: layers, width: 4096, positions: positions, format: kvCache))
    }

    /// Wall times of `body` and `reference`, run alternately `repeats` times after one warm-up each.
    private func interleaved(_ body: () throws -> Void, _ reference: () throws -> Void) throws -> (Samples, Samples) {
        try body()
        try reference()
        let clock = ContinuousClock()
        func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18 }
        var samples: [Double] = [], references: [Double] = []
        for _ in 0..<repeats {
            samples.append(seconds(try clock.measure(body)))
            references.append(seconds(try clock.measure(reference)))
        }
        return (Samples(samples), Samples(references))
    }

    private func randomTensor(_ shape: [Int], scale: Float = 0.5) -> Tensor {
        (try? WeightStore.random(seed: 7, scale: scale).tensor("input", shape: shape)) ?? Tensor(shape: shape)
    }

    private func configuration<T: Decodable>(_ type: T.Type, _ fields: [String: Any]) throws -> T {
        try JSONDecoder().decode(type, from: JSONSerialization.data(withJSONObject: fields))
    }
}

/// Timed runs of one case.
struct Samples {
    let sorted: [Double]
    init(_ seconds: [Double]) { sorted = seconds.sorted() }
    var median: Double { sorted[sorted.count / 2] }
    var fastest: Double { sorted.first! }
    var slowest: Double { sorted.last! }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}

extension WeightFormat: ExpressibleByArgument {}

/// This process's memory, from getrusage.
enum ProcessMemory {
    /// The largest resident set the process has had so far, in GB (10^9 bytes).
    static var peakResidentGigabytes: Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) * 1024 / 1e9
    }
}
