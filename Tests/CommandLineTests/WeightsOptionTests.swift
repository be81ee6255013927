import Foundation
import XCTest

/// `--weights` as a user gives it: a format for every component or one, refused by name when it is not one.
final class WeightsOptionTests: XCTestCase {
    private let model = Accm.root.appendingPathComponent("Models/accm-world").path
    private let image = Accm.root.appendingPathComponent("Training/test/images/00000.png").path

    private func ask(_ weights: [String]) throws -> CommandResult {
        try Accm.run(["ask", "--model", model, "--image", image, "--keep", "4"] + weights.flatMap { ["--weights", $0] }
                     + ["What color is the cross?"])
    }

    func testQuantizedWeightsAnswer() throws {
        for weights in [["int8"], ["llava=int4", "vision=bf16"]] {
            let result = try ask(weights)
            XCTAssertNil(result.signal, "\(weights): \(result.stderr)")
            XCTAssertEqual(result.status, 0, "\(weights): \(result.stderr)")
            XCTAssertTrue(result.stdout.contains("visual tokens"), "\(weights): \(result.stdout)")
        }
    }

    func testAPreQuantizedCopyAnswersAsQuantizingAtLoadDoes() throws {
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent("accm-quantized-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: copy) }
        let written = try Accm.run(["quantize", "--model", model, "--weights", "llava=int4", "--weights", "vision=int8", "--output", copy])
        XCTAssertEqual(written.status, 0, written.stderr)
        XCTAssertTrue(written.stdout.contains("llava (llava): int4"), written.stdout)

        func answer(_ arguments: [String]) throws -> [String: Any] {
            let result = try Accm.run(["ask", "--image", image, "--keep", "4", "--json"] + arguments + ["What color is the cross?"])
            XCTAssertEqual(result.status, 0, result.stderr)
            return try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] ?? [:]
        }
        let atLoad = try answer(["--model", model, "--weights", "llava=int4", "--weights", "vision=int8"])
        let preQuantized = try answer(["--model", copy])
        func canonical(_ value: Any?) throws -> String {
            String(decoding: try JSONSerialization.data(withJSONObject: [value ?? NSNull()], options: [.sortedKeys]), as: UTF8.self)
        }
        for key in ["answer", "caption", "candidates", "keptIndices"] {
            XCTAssertEqual(try canonical(preQuantized[key]), try canonical(atLoad[key]), key)
        }
        let again = try Accm.run(["quantize", "--model", model, "--weights", "int8", "--output", copy])
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.stderr.contains("already exists"), again.stderr)
    }

    func testABadSettingIsRefusedByName() throws {
        for (weights, message) in [("int3", "'int3' is not a weight format"), ("decoder=int8", "unknown component 'decoder'")] {
            let result = try ask([weights])
            XCTAssertNotEqual(result.status, 0, weights)
            XCTAssertNil(result.signal, weights)
            XCTAssertTrue(result.stderr.contains(message), "\(weights): \(result.stderr)")
        }
    }
}
