import Tensor
import XCTest

/// A small deterministic generator (SplitMix64) so every run sees the same inputs.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func floats(_ count: Int, in range: ClosedRange<Float> = -1...1) -> [Float] {
        (0..<count).map { _ in Float.random(in: range, using: &self) }
    }

    mutating func tensor(_ shape: [Int], in range: ClosedRange<Float> = -1...1) -> Tensor {
        Tensor(shape: shape, values: floats(shape.reduce(1, *), in: range))
    }
}

/// Asserts that two float sequences have the same length and that every element is within
/// `tolerance + relative · |expected|` of the expected value.
func assertClose(
    _ actual: [Float], _ expected: [Double], tolerance: Double, relative: Double = 0, _ what: String = "",
    file: StaticString = #filePath, line: UInt = #line
) {
    XCTAssertEqual(actual.count, expected.count, "\(what): element count", file: file, line: line)
    guard actual.count == expected.count else { return }
    var worstExcess = -Double.infinity, worstIndex = 0, worstDifference = 0.0
    for i in actual.indices {
        let d = abs(Double(actual[i]) - expected[i])
        let excess = d.isNaN ? .infinity : d - (tolerance + relative * abs(expected[i]))
        if excess > worstExcess { worstExcess = excess; worstIndex = i; worstDifference = d }
    }
    XCTAssertLessThanOrEqual(
        worstExcess, 0,
        "\(what): |Δ| = \(worstDifference) at \(worstIndex) (actual \(actual[worstIndex]), expected \(expected[worstIndex]))",
        file: file, line: line)
}

func assertClose(
    _ actual: Tensor, _ expected: [Double], tolerance: Double, relative: Double = 0, _ what: String = "",
    file: StaticString = #filePath, line: UInt = #line
) {
    assertClose(actual.scalars, expected, tolerance: tolerance, relative: relative, what, file: file, line: line)
}
