import Tensor
import Weights
import XCTest

/// A parity fixture made by `Scripts/make_engine_fixtures.py`: a checkpoint directory plus
/// `reference.safetensors` with the inputs and Hugging Face / PyTorch outputs.
struct Fixture {
    static let tolerance: Float = 1e-4

    let directory: String
    let reference: SafeTensorsFile

    init(_ name: String) throws {
        let tests = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        directory = tests.appendingPathComponent("Fixtures/engine/\(name)").path
        reference = try SafeTensorsFile(path: directory + "/reference.safetensors")
    }

    func tensor(_ name: String) throws -> Tensor { try reference.tensor(named: name) }
    func integers(_ name: String) throws -> [Int] { try reference.integers(named: name) }
    func shape(_ name: String) -> [Int] { reference.entries[name]!.shape }
}

/// Asserts equal shapes and a maximum absolute difference within `tolerance`.
func assertClose(
    _ actual: Tensor, _ expected: Tensor, tolerance: Float = Fixture.tolerance, _ what: String,
    file: StaticString = #filePath, line: UInt = #line
) {
    XCTAssertEqual(actual.shape, expected.shape, "\(what): shape", file: file, line: line)
    guard actual.count == expected.count else { return }
    let difference = actual.maxAbsoluteDifference(expected)
    XCTAssertLessThanOrEqual(difference, tolerance, "\(what): max |Δ| = \(difference)", file: file, line: line)
}
