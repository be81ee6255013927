// `accm bench engine`: CLIP ViT-L/14-336, GPT-2 124M and one LLaMA-7B layer with random weights at
// their real shapes, against what OpenBLAS's sgemm and the memory system reach on this machine.

import ArgumentParser
import Foundation
import Models
import Tensor
import Weights

struct BenchEngine: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine",
        abstract: "Time a CLIP ViT-L/14-336 forward, GPT-2 124M prefill/decode and a LLaMA-7B layer prefill/decode.",
        discussion: """
            FLOPs follow one convention (Models/FLOPs.swift): a linear map over R rows is 2·R·in·out, attention \
            4·heads·headDim per (query, key) pair, element-wise work uncounted. Scripts/bench_engine_torch.py \
            times the same cases with PyTorch under the same convention.
            """
    )

    enum Case: String, CaseIterable, ExpressibleByArgument {
        case vit, gpt2Prefill = "gpt2-prefill", gpt2Decode = "gpt2-decode"
        case llamaPrefill = "llama-prefill", llamaDecode = "llama-decode"
    }

    @OptionGroup var engine: EngineOptions

    @Option(help: "Timed runs per case (the median is reported, after one warm-up).")
    var `repeat` = 3

    @Option(parsing: .upToNextOption, help: "Cases to run: \(Case.allCases.map(\.rawValue).joined(separator: ", ")).")
    var cases: [Case] = Case.allCases

    @Option(help: "Also write the results as JSON to this file.")
    var json: String?

    func validate() throws {
        if `repeat` < 1 { throw ValidationError("--repeat must be at least 1") }
    }

    func run() throws {
        engine.apply()
        print(MachineDescription.current.lines.joined(separator: "\n"))
        print("runs per case: \(`repeat`) timed after 1 warm-up, median reported\n")
        var results: [BenchmarkResult] = []
        let bench = EngineBenchmark(repeats: `repeat`)
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
    var gflop: Double
    var gflopPerSecond: Double
    var gigabytesPerSecond: Double?
    /// The bar this case is held to (sgemm rate at the same shapes, or the streaming bandwidth).
    var reference: String
    var referenceValue: Double
    var shareOfReference: Double

    var line: String {
        let time = seconds >= 1 ? String(format: "%8.3f s ", seconds) : String(format: "%8.2f ms", seconds * 1000)
        var s = "\(name.padding(toLength: 34, withPad: " ", startingAt: 0)) \(time)  \(String(format: "%8.2f", gflop)) GFLOP"
        s += String(format: "  %7.1f GFLOP/s", gflopPerSecond)
        if let gigabytesPerSecond { s += String(format: "  %6.1f GB/s", gigabytesPerSecond) }
        s += String(format: "   %.0f%% of %@ (%.1f)", shareOfReference * 100, reference, referenceValue)
        return s
    }
}

/// Builds the models with random weights and times them.
struct EngineBenchmark {
    let repeats: Int

    func run(_ c: BenchEngine.Case) throws -> BenchmarkResult {
        switch c {
        case .vit: return try vit()
        case .gpt2Prefill: return try gpt2(decode: false)
        case .gpt2Decode: return try gpt2(decode: true)
        case .llamaPrefill: return try llamaLayer(decode: false)
        case .llamaDecode: return try llamaLayer(decode: true)
        }
    }

    // MARK: Cases

    private func vit() throws -> BenchmarkResult {
        let config = try configuration(CLIPTowerConfiguration.self, [
            "hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16,
            "image_size": 336, "patch_size": 14, "hidden_act": "quick_gelu",
        ])
        let vision = try CLIP.Vision(store: .random(seed: 1), config: config, projectionDim: nil)
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
        let model = try GPT2(store: .random(seed: 2), config: config)
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
        return result("gpt2-124m decode 1 at 64", seconds, flop, config.decodeWeightBytes / seconds / 1e9,
                      "stream GB/s", bandwidth)
    }

    private func llamaLayer(decode: Bool) throws -> BenchmarkResult {
        let config = try configuration(LlamaConfiguration.self, [
            "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 1, "num_attention_heads": 32,
            "num_key_value_heads": 32, "max_position_embeddings": 4096, "vocab_size": 32,
        ])
        let model = try Llama(store: .random(seed: 3), config: config)
        let prompt = randomTensor([640, 4096], scale: 1)
        var cache = model.makeCache(capacity: 660)
        if !decode {
            let c = config.hiddenSize, i = config.intermediateSize
            let shapes = [(640, c, c), (640, c, c), (640, c, c), (640, c, c), (640, c, i), (640, c, i), (640, i, c)]
            let (seconds, ceiling) = try timeAgainstSGEMM(shapes: shapes) {
                cache.truncate(to: 0)
                _ = try model.forward(prompt, cache: &cache, recordHiddenStates: false)
            }
            let flop = config.flops(newTokens: 640, cached: 0, logitRows: 0)
            return result("llama-7b layer prefill 640", seconds, flop, nil, "sgemm at its shapes GFLOP/s", ceiling)
        }
        _ = try model.forward(prompt, cache: &cache, recordHiddenStates: false)
        let token = randomTensor([1, 4096], scale: 1)
        let (seconds, bandwidth) = try timeAgainstStream {
            cache.truncate(to: 640)
            _ = try model.forward(token, cache: &cache, recordHiddenStates: false)
        }
        let flop = config.flops(newTokens: 1, cached: 640, logitRows: 0)
        return result("llama-7b layer decode 1 at 640", seconds, flop,
                      config.decodeWeightBytes(withHead: false) / seconds / 1e9, "stream GB/s", bandwidth)
    }

    // MARK: References
    // Each reference is timed in turn with the case itself (case, reference, case, ...), so that the
    // ratio holds even when the machine's speed drifts during the run (shared virtual machines do).

    /// Median time of `body`, and the GFLOP/s `cblas_sgemm` reaches on the `(m, k, n)` products
    /// `x[m,k] · W[n,k]ᵀ` the case is made of (through the engine's threaded `linear`).
    private func timeAgainstSGEMM(
        shapes: [(m: Int, k: Int, n: Int)], _ body: () throws -> Void
    ) throws -> (seconds: Double, gflopPerSecond: Double) {
        let operands = shapes.map { (randomTensor([$0.m, $0.k]), randomTensor([$0.n, $0.k])) }
        let flop = shapes.reduce(0.0) { $0 + FLOPs.linear(rows: $1.m, inputs: $1.k, outputs: $1.n) }
        let (seconds, reference) = try interleaved(body) { for (x, w) in operands { _ = x.linear(weight: w) } }
        return (seconds, flop / reference / 1e9)
    }

    /// Median time of `body`, and the machine's streaming read bandwidth: bytes per second while every engine
    /// thread compares its part of two equal 256 MiB buffers with glibc's vectorised `memcmp`, which reads
    /// both and writes nothing (the bar for memory-bound decoding, which only reads weights).
    private func timeAgainstStream(_ body: () throws -> Void) throws -> (seconds: Double, gigabytesPerSecond: Double) {
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
        return (seconds, Double(2 * count * 4) / reference / 1e9)
    }

    // MARK: Helpers

    private func result(
        _ name: String, _ seconds: Double, _ flop: Double, _ gbps: Double?, _ reference: String, _ value: Double
    ) -> BenchmarkResult {
        let rate = flop / seconds / 1e9
        return BenchmarkResult(
            name: name, seconds: seconds, gflop: flop / 1e9, gflopPerSecond: rate, gigabytesPerSecond: gbps,
            reference: reference, referenceValue: value, shareOfReference: (gbps ?? rate) / value)
    }

    /// Median wall times of `body` and `reference`, run alternately `repeats` times after one warm-up each.
    private func interleaved(_ body: () throws -> Void, _ reference: () throws -> Void) throws -> (Double, Double) {
        try body()
        try reference()
        let clock = ContinuousClock()
        func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18 }
        var samples: [Double] = [], references: [Double] = []
        for _ in 0..<repeats {
            samples.append(seconds(try clock.measure(body)))
            references.append(seconds(try clock.measure(reference)))
        }
        return (samples.sorted()[samples.count / 2], references.sorted()[references.count / 2])
    }

    private func randomTensor(_ shape: [Int], scale: Float = 0.5) -> Tensor {
        (try? WeightStore.random(seed: 7, scale: scale).tensor("input", shape: shape)) ?? Tensor(shape: shape)
    }

    private func configuration<T: Decodable>(_ type: T.Type, _ fields: [String: Any]) throws -> T {
        try JSONDecoder().decode(type, from: JSONSerialization.data(withJSONObject: fields))
    }
}
