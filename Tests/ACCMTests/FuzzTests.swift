import ACCM
import Foundation
import Images
import Models
import Tensor
import Tokenizers
import Weights
import XCTest

/// Seeded random requests and model configs, a fixed count each: every one gives an answer or a typed
/// error, resident memory stays bounded, and nothing traps (a trap would end this test process).
final class FuzzTests: XCTestCase {
    private static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/accm")
    private static let model = fixtures.appendingPathComponent("model").path

    /// The project's SplitMix64 with two helpers.
    private struct Generator: RandomNumberGenerator {
        var base: SplitMix64
        init(state: UInt64) { base = SplitMix64(seed: state) }
        mutating func next() -> UInt64 { base.next() }
        mutating func pick<T>(_ options: [T]) -> T { options[Int.random(in: 0..<options.count, using: &self)] }
        mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &self) < p }
    }

    private static func residentBytes() -> Int {
        let fields = ((try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8)) ?? "").split(separator: " ")
        return fields.count > 1 ? (Int(fields[1]) ?? 0) * 4096 : 0
    }

    // MARK: Requests

    private func question(_ g: inout Generator) -> String {
        let pieces = ["What color is the cross?", "</s>", "<s>", "<unk>", "<image>", "<|endoftext|>", "<|startoftext|>",
                      "ASSISTANT:", "\n", "\r\n", " ", "\u{3000}", "é", "🟥", "\u{0}", "red ", "?", "\u{FFFD}", "\t"]
        switch Int.random(in: 0..<10, using: &g) {
        case 0: return ""
        case 1: return String(repeating: g.pick(pieces), count: Int.random(in: 1...3000, using: &g))
        case 2: return String(String.UnicodeScalarView((0..<Int.random(in: 1...80, using: &g)).compactMap { _ in
            Unicode.Scalar(UInt32.random(in: 0...0x2FFFF, using: &g)) }))
        default: return (0..<Int.random(in: 1...12, using: &g)).map { _ in g.pick(pieces) }.joined()
        }
    }

    private func image(_ g: inout Generator, valid: [UInt8]) -> ImageInput {
        switch Int.random(in: 0..<9, using: &g) {
        case 0: return .encoded(Array(valid.prefix(Int.random(in: 0..<valid.count, using: &g))))
        case 1: return .encoded((0..<Int.random(in: 0...300, using: &g)).map { _ in UInt8.random(in: 0...255, using: &g) })
        case 2:
            var broken = valid
            for _ in 0..<Int.random(in: 1...6, using: &g) {
                broken[Int.random(in: 8..<broken.count, using: &g)] = UInt8.random(in: 0...255, using: &g)
            }
            return .encoded(broken)
        case 3:
            // A PNG header declaring a huge or degenerate size, and nothing else.
            func be32(_ v: Int) -> [UInt8] { [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: v >> $0) } }
            let (w, h) = g.pick([(200_000, 200), (1, 40_000_000), (0, 10), (70_000, 1), (Int(UInt32.max), 2)])
            return .encoded([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + be32(13) + Array("IHDR".utf8) + be32(w) + be32(h)
                            + [8, 2, 0, 0, 0, 0, 0, 0, 0])
        case 4:
            let shape = g.pick([[3, 48, 48], [3, 40, 48], [1, 48, 48], [48, 48], [3, 48, 48, 1], [0]])
            var pixels = Tensor(shape: shape)
            if g.chance(0.5), pixels.count > 0 {
                let bad = g.pick([Float.nan, .infinity, -.infinity, 1e30])
                pixels.withUnsafeMutableBufferPointer { $0[Int.random(in: 0..<$0.count, using: &g)] = bad }
            }
            return .pixels(pixels)
        default: return .encoded(valid)
        }
    }

    private func request(_ g: inout Generator, valid: [UInt8]) -> ACCMRequest {
        let pruning: PruningMethod = g.pick([
            .none, .random(seed: g.next()), .uniform, .classAttention, .textGuided(.mostSimilar), .textGuided(.leastSimilar),
            .accm(ranking: .mostSimilar, cap: .byScore, textPicks: nil),
            .accm(ranking: .leastSimilar, cap: .highestIndex, textPicks: g.pick([-3, 0, 5, 36, 37, Int.max])),
        ])
        let budget = g.chance(0.8) ? Int.random(in: 1...36, using: &g) : g.pick([0, -1, 37, Int.max, Int.min])
        let maxNew = g.chance(0.8) ? Int.random(in: 1...4, using: &g) : g.pick([0, -5, 257, 1_000_000_000, Int.max, 256])
        let sampling = g.chance(0.7) ? SamplingOptions.greedy : SamplingOptions(
            temperature: g.pick([0, 0.7, -1, .nan, .infinity, 1e-30]), topP: g.pick([1, 0.5, 0, 1.5, .nan]), seed: g.next())
        let stops = g.chance(0.8) ? [] : (0..<Int.random(in: 1...20, using: &g)).map { _ in
            g.pick(["", ".", "</s>", String(repeating: "x", count: 300), "red"]) }
        return ACCMRequest(image: image(&g, valid: valid), question: question(&g), budget: budget, pruning: pruning,
                           compensate: g.chance(0.6),
                           generation: GenerationOptions(maxNewTokens: maxNew, sampling: sampling, stopStrings: stops))
    }

    func testRandomRequestsGiveAnAnswerOrARequestError() throws {
        let pipeline = try ACCMPipeline.load(directory: Self.model)
        let valid = [UInt8](try Data(contentsOf: Self.fixtures.appendingPathComponent("images/portrait_36x60.png")))
        var g = Generator(state: 16)
        var answered = 0, refused: [String: Int] = [:]
        let before = Self.residentBytes()
        for trial in 0..<400 {
            let r = request(&g, valid: valid)
            do {
                let answer = try pipeline.answer([r])[0]
                answered += 1
                XCTAssertLessThanOrEqual(answer.tokens.count, r.generation.maxNewTokens, "trial \(trial)")
                XCTAssertLessThanOrEqual(answer.promptTokens + answer.sampledTokens, 256, "trial \(trial)")
                XCTAssertEqual(answer.keptIndices.count, r.pruning == .none ? 36 : r.budget, "trial \(trial)")
            } catch let error as RequestError {
                refused[error.field, default: 0] += 1
            } catch let error as StageError {
                refused[error.field ?? error.code.rawValue, default: 0] += 1
            } catch {
                XCTFail("trial \(trial): an untyped failure \(type(of: error)): \(error)")
            }
        }
        let grown = Self.residentBytes() - before
        XCTAssertLessThan(grown, 256 << 20, "resident memory grew by \(grown >> 20) MiB over 400 requests")
        // The generator reaches every outcome: answers and refusals of each field.
        XCTAssertGreaterThan(answered, 40, "\(refused)")
        for field in ["question", "budget", "max_new_tokens", "sampling", "stop", "image"] {
            XCTAssertGreaterThan(refused[field] ?? 0, 0, "no refusal of \(field): \(refused)")
        }
    }

    // MARK: Configs

    /// A copy of the fixture model (symlinks) with one JSON file replaced.
    private func copy(replacing file: String, with json: Any, in root: URL) throws -> String {
        let fm = FileManager.default
        let source = URL(fileURLWithPath: Self.model)
        for relative in try fm.subpathsOfDirectory(atPath: Self.model) {
            let from = source.appendingPathComponent(relative), to = root.appendingPathComponent(relative)
            var isDirectory: ObjCBool = false
            _ = fm.fileExists(atPath: from.path, isDirectory: &isDirectory)
            if isDirectory.boolValue {
                try fm.createDirectory(at: to, withIntermediateDirectories: true)
            } else if relative != file {
                try fm.createSymbolicLink(at: to, withDestinationURL: from)
            }
        }
        try JSONSerialization.data(withJSONObject: json, options: [.fragmentsAllowed]).write(to: root.appendingPathComponent(file))
        return root.path
    }

    /// Every key path of a JSON object ("text_config.num_attention_heads").
    private func keyPaths(_ object: [String: Any], prefix: String = "") -> [String] {
        object.keys.sorted().flatMap { key -> [String] in
            let path = prefix.isEmpty ? key : prefix + "." + key
            if let inner = object[key] as? [String: Any] { return [path] + keyPaths(inner, prefix: path) }
            return [path]
        }
    }

    private func setting(_ object: [String: Any], _ path: ArraySlice<Substring>, to value: Any) -> [String: Any] {
        var object = object
        let key = String(path.first!)
        if path.count == 1 {
            object[key] = value
        } else {
            object[key] = setting(object[key] as? [String: Any] ?? [:], path.dropFirst(), to: value)
        }
        return object
    }

    func testRandomConfigValuesLoadOrFailWithAnErrorNamingTheProblem() throws {
        let files = ["accm.json", "llava/config.json", "vision/config.json", "vision/preprocessor_config.json",
                     "caption/gpt2/config.json", "caption/mapper/config.json", "selector/scorer/config.json",
                     "selector/text/config.json"]
        let values: [Any] = [0, -1, 1, 2, 3, 1.5, 1 << 40, Int.max, 1e308, -0.0, "x", "pad", NSNull(), true, [Int](), [String: Int]()]
        let valid = [UInt8](try Data(contentsOf: Self.fixtures.appendingPathComponent("images/square_57x57.png")))
        var g = Generator(state: 17)
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("accm-fuzz-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: scratch) }
        var loaded = 0, refused = 0
        let before = Self.residentBytes()
        for trial in 0..<160 {
            let file = g.pick(files)
            let original = try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: Self.model + "/" + file))) as! [String: Any]
            let path = g.pick(keyPaths(original))
            let value = g.pick(values)
            let directory = try copy(replacing: file, with: setting(original, path.split(separator: ".")[...], to: value),
                                     in: scratch.appendingPathComponent("\(trial)"))
            do {
                let pipeline = try ACCMPipeline.load(directory: directory)
                loaded += 1
                let request = ACCMRequest(image: .encoded(valid), question: "Is there a red square?", budget: 4,
                                          pruning: .accm(ranking: .mostSimilar, cap: .byScore, textPicks: nil),
                                          generation: GenerationOptions(maxNewTokens: 2))
                do {
                    _ = try pipeline.answer([request])
                } catch is RequestError {
                } catch let error as ModelError {
                    XCTAssertFalse("\(error)".isEmpty)
                }
            } catch let error as WeightsError {
                refused += 1
                let place = file.contains("/") ? String(file[..<file.lastIndex(of: "/")!]) : file
                XCTAssertTrue("\(error)".contains(place), "trial \(trial) (\(file) \(path) = \(value)): \(error)")
                XCTAssertFalse("\(error)".contains("not valid JSON"), "trial \(trial) (\(file) \(path) = \(value)): \(error)")
            } catch is ModelError, is PreprocessingError, is TokenizerError {
                refused += 1
            } catch {
                XCTFail("trial \(trial) (\(file) \(path) = \(value)): an untyped failure \(type(of: error)): \(error)")
            }
            try? FileManager.default.removeItem(at: scratch.appendingPathComponent("\(trial)"))
        }
        XCTAssertGreaterThan(loaded, 10)
        XCTAssertGreaterThan(refused, 40)
        let grown = Self.residentBytes() - before
        XCTAssertLessThan(grown, 256 << 20, "resident memory grew by \(grown >> 20) MiB over 160 configs")
    }
}
