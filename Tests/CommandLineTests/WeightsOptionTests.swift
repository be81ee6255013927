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

    func testABadSettingIsRefusedByName() throws {
        for (weights, message) in [("int3", "'int3' is not a weight format"), ("decoder=int8", "unknown component 'decoder'")] {
            let result = try ask([weights])
            XCTAssertNotEqual(result.status, 0, weights)
            XCTAssertNil(result.signal, weights)
            XCTAssertTrue(result.stderr.contains(message), "\(weights): \(result.stderr)")
        }
    }
}
