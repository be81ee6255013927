import Foundation
import XCTest

/// `accm ask` and `accm eval` on the inputs that once crashed them or took gigabytes: each now answers or
/// exits with status 1 and a message naming the problem, and stays under the README's memory bound.
final class HostileInputTests: XCTestCase {
    /// Peak resident memory of `accm ask` on the shipped model, whatever the input (README, "Limits"). The worst
    /// case is a 40-megapixel progressive JPEG: libjpeg-turbo keeps every coefficient of it (284 MiB measured).
    static let askMemoryBound = 320 << 20
    /// Peak resident memory of `accm eval` answering batches of 8 on the shipped model, whatever the input.
    static let evalMemoryBound = 384 << 20

    private let model = Accm.root.appendingPathComponent("Models/accm-world").path
    private let image = Accm.root.appendingPathComponent("Training/test/images/00000.png").path

    private func ask(_ arguments: [String], image: String? = nil, model: String? = nil) throws -> CommandResult {
        try Accm.run(["ask", "--model", model ?? self.model, "--image", image ?? self.image, "--keep", "4"] + arguments)
    }

    /// Exit status 1 with `message` on stderr, no signal, within the memory bound.
    private func assertRefused(_ result: CommandResult, _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertFalse(result.timedOut, "timed out", file: file, line: line)
        XCTAssertNil(result.signal, "killed by signal \(result.signal ?? 0): \(result.stderr)", file: file, line: line)
        XCTAssertEqual(result.status, 1, result.stderr, file: file, line: line)
        XCTAssertTrue(result.stderr.contains(message), "stderr: \(result.stderr)", file: file, line: line)
        XCTAssertGreaterThan(result.peakResidentBytes, 0, "no peak memory reported", file: file, line: line)
        XCTAssertLessThan(result.peakResidentBytes, Self.askMemoryBound, file: file, line: line)
    }

    private func assertAnswered(_ result: CommandResult, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertNil(result.signal, "killed by signal \(result.signal ?? 0): \(result.stderr)", file: file, line: line)
        XCTAssertEqual(result.status, 0, result.stderr, file: file, line: line)
        XCTAssertTrue(result.stdout.contains("visual tokens"), result.stdout, file: file, line: line)
        XCTAssertLessThan(result.peakResidentBytes, Self.askMemoryBound,
                          "peak \(result.peakResidentBytes >> 20) MiB", file: file, line: line)
    }

    func testExtremeAspectRatiosAreRefusedAtTheHeaderOrAnsweredWithinTheBound() throws {
        let scratch = try ScratchDirectory()
        let wide = try scratch.write(PNGFile.header(width: 200_000, height: 200) + PNGFile.chunk("IEND", []), to: "wide.png")
        assertRefused(try ask(["What color is the cross?"], image: wide), "200000x200 pixels, a side over the limit of 65535")
        let thin = try scratch.write(PNGFile.header(width: 1, height: 40_000_000) + PNGFile.chunk("IEND", []), to: "thin.png")
        assertRefused(try ask(["What color is the cross?"], image: thin), "1x40000000 pixels")
        // 40 megapixels at 10:1: padded eagerly this was a 20000² square (1.36 GB resident).
        let panorama = try scratch.write(PNGFile.rgb(width: 20_000, height: 2_000) { x, y in
            (UInt8(truncatingIfNeeded: x >> 6), UInt8(truncatingIfNeeded: y), 90)
        }, to: "panorama.png")
        assertAnswered(try ask(["What color is the cross?"], image: panorama))
        let photo = try scratch.write(try JPEGFile.progressive(width: 7296, height: 5472), to: "photo.jpg")
        assertAnswered(try ask(["What color is the cross?"], image: photo))
    }

    func testGenerationLengthsBeyondTheContextAreRefused() throws {
        for value in ["1000000000", "\(Int.max)", "257"] {
            assertRefused(try ask(["--max-tokens", value, "What color is the cross?"]),
                          "max_new_tokens \(value) is outside 1...256")
        }
    }

    func testBadQuestionsAreRefusedByName() throws {
        assertRefused(try ask(["   "]), "the question is empty")
        assertRefused(try ask([String(repeating: "red ", count: 40)]), "tokens for the caption model, which holds at most 21")
        assertRefused(try ask(["--no-caption", String(repeating: "red ", count: 2100)]), "over the limit of 8192 bytes")
    }

    func testAFailureWithJSONOutputIsAJSONObject() throws {
        let result = try ask(["--json", "--max-tokens", "100000", "What color is the cross?"])
        XCTAssertEqual(result.status, 1)
        let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        let error = object?["error"] as? [String: Any]
        XCTAssertEqual(error?["field"] as? String, "max_new_tokens")
        XCTAssertTrue((error?["message"] as? String)?.contains("100000") ?? false, result.stdout)
    }

    // MARK: Model directories

    /// A copy of the shipped model (symlinks) with `value` at `keyPath` of the JSON file `file`.
    private func model(editing file: String, _ keyPath: String, _ value: Any, in scratch: ScratchDirectory) throws -> String {
        let copy = scratch.url.appendingPathComponent("model-\(UUID().uuidString)")
        let fm = FileManager.default
        let source = URL(fileURLWithPath: model)
        for relative in try fm.subpathsOfDirectory(atPath: model) {
            let from = source.appendingPathComponent(relative), to = copy.appendingPathComponent(relative)
            var isDirectory: ObjCBool = false
            _ = fm.fileExists(atPath: from.path, isDirectory: &isDirectory)
            if isDirectory.boolValue {
                try fm.createDirectory(at: to, withIntermediateDirectories: true)
            } else if relative != file {
                try fm.createSymbolicLink(at: to, withDestinationURL: from)
            }
        }
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: source.appendingPathComponent(file))) as! [String: Any]
        func set(_ dict: inout [String: Any], _ keys: ArraySlice<Substring>) {
            let key = String(keys.first!)
            if keys.count == 1 { dict[key] = value; return }
            var inner = dict[key] as? [String: Any] ?? [:]
            set(&inner, keys.dropFirst())
            dict[key] = inner
        }
        set(&json, keyPath.split(separator: ".")[...])
        try JSONSerialization.data(withJSONObject: json).write(to: copy.appendingPathComponent(file))
        return copy.path
    }

    func testBadConfigValuesAreRefusedNamingTheFileAndTheKey() throws {
        let scratch = try ScratchDirectory()
        let cases: [(String, String, Any, String)] = [
            ("llava/config.json", "text_config.num_attention_heads", 0, "text_config.num_attention_heads': must be at least 1, got 0"),
            ("llava/config.json", "text_config.num_key_value_heads", 0, "num_key_value_heads': must be at least 1"),
            ("llava/config.json", "text_config.rms_norm_eps", 0, "rms_norm_eps': must be a finite number greater than 0"),
            ("llava/config.json", "text_config.num_hidden_layers", 1.5, "num_hidden_layers': must be a whole number, got 1.5"),
            ("vision/config.json", "vision_config.num_attention_heads", 0, "vision_config.num_attention_heads'"),
            ("caption/gpt2/config.json", "n_head", 0, "n_head': must be at least 1"),
            ("caption/mapper/config.json", "num_heads", 0, "num_heads': must be at least 1"),
            ("selector/scorer/config.json", "num_heads", 0, "num_heads': must be at least 1"),
            ("accm.json", "caption_max_new_tokens", 1_000_000, "caption_max_new_tokens 1000000"),
            ("accm.json", "caption_max_new_tokens", 1_000_000_000, "leave no room for a question"),
            ("accm.json", "image_aspect_ratio", "bogus", "'bogus' is not one of 'pad', 'crop'"),
            ("accm.json", "caption_beams", 0, "caption_beams': must be in 1...16"),
        ]
        for (file, key, value, message) in cases {
            let result = try ask(["What color is the cross?"], model: try model(editing: file, key, value, in: scratch))
            assertRefused(result, message)
            if file != "accm.json" { XCTAssertTrue(result.stderr.contains(file), "\(file): \(result.stderr)") }
        }
    }

    // MARK: accm eval

    func testEvalSkipsBadQuestionsNamingThemAndCountsThemInTheTable() throws {
        let scratch = try ScratchDirectory()
        try FileManager.default.createDirectory(atPath: scratch.path("images"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: image, toPath: scratch.path("images/good.png"))
        _ = try scratch.write(Array("not an image".utf8), to: "images/corrupt.png")
        let huge = String(repeating: "What color is it? ", count: 600_000)  // 10.8 MB
        func line(_ id: String, _ image: String, _ question: String) -> String {
            let object: [String: String] = ["id": id, "image": image, "kind": "color", "question": question, "answer": "green"]
            return String(decoding: try! JSONSerialization.data(withJSONObject: object), as: UTF8.self)
        }
        let lines = [
            line("good", "images/good.png", "What color is the cross?"),
            line("huge", "images/good.png", huge),
            line("corrupt", "images/corrupt.png", "What color is the cross?"),
            line("missing", "images/missing.png", "What color is the cross?"),
            line("long", "images/good.png", String(repeating: "red ", count: 40)),
        ]
        _ = try scratch.write(Array(lines.joined(separator: "\n").utf8), to: "test.jsonl")
        let out = scratch.path("out")
        let arguments = ["eval", "--model", model, "--data", scratch.url.path, "--keep", "4", "--pruner", "text-guided,accm",
                         "--out", out]
        let result = try Accm.run(arguments)
        XCTAssertEqual(result.status, 0, result.stderr)
        for id in ["huge", "corrupt", "missing"] {
            XCTAssertTrue(result.stderr.contains("skipped question \(id) ("), "\(id): \(result.stderr)")
        }
        XCTAssertTrue(result.stderr.contains("skipped question long"), "too long for the caption model only")
        XCTAssertTrue(result.stdout.contains("(3 skipped)"), result.stdout)  // text-guided: huge, corrupt, missing
        XCTAssertTrue(result.stdout.contains("(4 skipped)"), result.stdout)  // accm: and the caption-model overflow
        XCTAssertLessThan(result.peakResidentBytes, Self.evalMemoryBound, "peak \(result.peakResidentBytes >> 20) MiB")
        let csv = try String(contentsOfFile: out + "/results.csv", encoding: .utf8)
        XCTAssertTrue(csv.contains(",skipped,"), csv)

        let strict = try Accm.run(arguments + ["--strict"])
        XCTAssertEqual(strict.status, 1)
        XCTAssertTrue(strict.stderr.contains("question huge (images/good.png)"), strict.stderr)
        XCTAssertLessThan(strict.peakResidentBytes, Self.evalMemoryBound)
    }
}
