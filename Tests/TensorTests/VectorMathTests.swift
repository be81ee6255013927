import Tensor
import XCTest

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

final class VectorMathTests: XCTestCase {
    /// The largest relative error of `expInPlace` against libm's `expf` measured on the sweep below
    /// was 1.19e-7 (one ulp, at x = -65.16); the bound leaves a little room above it.
    static let expRelativeBound: Double = 1.5e-7

    /// Activations are checked to 1e-6 absolute plus one float ulp relative (2^-23 · |y|): near |x| = 10 an
    /// fp32 result is only representable to 9.5e-7, and SiLU measured 1.07e-6 (about 1.1 ulp) there.
    static let activationAbsolute: Double = 1e-6
    static let activationRelative: Double = 0x1p-23

    /// `count` evenly spaced values from `lower` to `upper` inclusive.
    private func sweep(_ lower: Double, _ upper: Double, count: Int) -> [Float] {
        (0..<count).map { Float(lower + (upper - lower) * Double($0) / Double(count - 1)) }
    }

    private func applied(_ values: [Float], _ body: (UnsafeMutablePointer<Float>, Int) -> Void) -> [Float] {
        var out = values
        out.withUnsafeMutableBufferPointer { body($0.baseAddress!, $0.count) }
        return out
    }

    /// Values in [-10, 10]: an even grid that hits 0 and both ends, plus random values; the total
    /// length (2001 + 403) is not a multiple of 16, so the scalar tail is exercised too.
    private func activationInputs() -> [Float] {
        var rng = SeededGenerator(seed: 7)
        let values = sweep(-10, 10, count: 2001) + rng.floats(403, in: -10...10)
        XCTAssertNotEqual(values.count % 16, 0)
        return values
    }

    // MARK: exp

    func testExpMatchesLibmAcrossTheWholeFiniteRange() {
        // 1,750,003 points (not a multiple of 16): the vector body and the scalar tail both run.
        let xs = sweep(-87, 88, count: 1_750_003)
        let ys = applied(xs) { VectorMath.expInPlace($0, count: $1) }
        var worst = 0.0, worstX: Float = 0
        for (x, y) in zip(xs, ys) {
            let reference = expf(x)
            let relative = abs(Double(y) - Double(reference)) / Double(reference)
            if !(relative <= worst) { worst = relative.isNaN ? .infinity : relative; worstX = x }
        }
        print("VectorMath.expInPlace: max relative error vs expf over [-87, 88] = \(worst) at x = \(worstX)")
        XCTAssertLessThanOrEqual(worst, Self.expRelativeBound, "worst at x = \(worstX)")
    }

    func testExpIsExactlyOneAtZeroAndFiniteAtTheTopOfTheRange() {
        // 16 lanes: the vector path only.
        let xs: [Float] = [0, 0, 88, 88.3, 88.37, 1, -1, 10, -10, 50, -50, 0.5, -0.5, 2, -2, 0]
        let ys = applied(xs) { VectorMath.expInPlace($0, count: $1) }
        XCTAssertEqual(ys[0], 1)
        XCTAssertEqual(ys[15], 1)
        for (x, y) in zip(xs, ys) {
            XCTAssertTrue(y.isFinite, "exp(\(x)) = \(y)")
            XCTAssertEqual(Double(y), exp(Double(x)), accuracy: exp(Double(x)) * 3e-7, "exp(\(x))")
        }
    }

    func testExpOfLargeNegativesGoesToZeroNotNaN() {
        let negatives: [Float] = [-87.5, -88, -89, -100, -104, -150, -200, -1000, -1e10, -.greatestFiniteMagnitude, -.infinity]
        // Twice over (22 values): the first 16 go through the vector path, the rest through the tail.
        let xs = negatives + negatives
        let ys = applied(xs) { VectorMath.expInPlace($0, count: $1) }
        for (x, y) in zip(xs, ys) {
            XCTAssertFalse(y.isNaN, "exp(\(x)) is NaN")
            XCTAssertGreaterThanOrEqual(y, 0, "exp(\(x))")
            XCTAssertLessThanOrEqual(y, 1.2e-38, "exp(\(x))")
        }
    }

    // MARK: activations

    func testSigmoidGateWithAlphaOneIsSiLU() {
        let xs = activationInputs()
        let ys = applied(xs) { VectorMath.sigmoidGateInPlace($0, count: $1, alpha: 1) }
        assertClose(ys, xs.map { x in Double(x) / (1 + exp(-Double(x))) }, tolerance: Self.activationAbsolute, relative: Self.activationRelative, "SiLU")
    }

    func testSigmoidGateWithAlpha1702IsQuickGELU() {
        let xs = activationInputs()
        let ys = applied(xs) { VectorMath.sigmoidGateInPlace($0, count: $1, alpha: 1.702) }
        assertClose(ys, xs.map { x in Double(x) / (1 + exp(-1.702 * Double(x))) }, tolerance: Self.activationAbsolute, relative: Self.activationRelative, "quick GELU")
    }

    func testGeluTanhMatchesTheTanhFormula() {
        let xs = activationInputs()
        let ys = applied(xs) { VectorMath.geluTanhInPlace($0, count: $1) }
        let c = (2 / Double.pi).squareRoot()
        let expected = xs.map { x -> Double in
            let x = Double(x)
            return 0.5 * x * (1 + tanh(c * (x + 0.044715 * x * x * x)))
        }
        assertClose(ys, expected, tolerance: Self.activationAbsolute, relative: Self.activationRelative, "tanh GELU")
    }

    func testGeluErfMatchesTheErfFormula() {
        let xs = activationInputs()
        let ys = applied(xs) { VectorMath.geluErfInPlace($0, count: $1) }
        let expected = xs.map { x in 0.5 * Double(x) * (1 + erf(Double(x) / 2.0.squareRoot())) }
        assertClose(ys, expected, tolerance: Self.activationAbsolute, relative: Self.activationRelative, "erf GELU")
    }

    func testShortBuffersGoThroughTheScalarTail() {
        // Lengths below, at and just above one SIMD chunk.
        for length in [1, 3, 15, 16, 17, 31, 33] {
            var rng = SeededGenerator(seed: UInt64(length))
            let xs = rng.floats(length, in: -10...10)
            let silu = applied(xs) { VectorMath.sigmoidGateInPlace($0, count: $1, alpha: 1) }
            assertClose(silu, xs.map { Double($0) / (1 + exp(-Double($0))) }, tolerance: Self.activationAbsolute, relative: Self.activationRelative, "SiLU length \(length)")
            let exps = applied(xs) { VectorMath.expInPlace($0, count: $1) }
            for (x, y) in zip(xs, exps) {
                XCTAssertEqual(Double(y), Double(expf(x)), accuracy: Double(expf(x)) * Self.expRelativeBound, "exp(\(x)), length \(length)")
            }
        }
    }

    func testReluZeroesNegativesAndKeepsPositives() {
        let xs: [Float] = (0..<37).map { Float($0) - 18.5 }
        let ys = applied(xs) { VectorMath.reluInPlace($0, count: $1) }
        XCTAssertEqual(ys, xs.map { max($0, 0) })
    }

    func testApplyingActivationUsesTheNamedFunction() {
        // Large enough to be split across threads; the length is odd so every chunk boundary differs.
        var rng = SeededGenerator(seed: 11)
        let xs = rng.floats(70_001, in: -10...10)
        let input = Tensor(shape: [70_001], values: xs)
        let c = (2 / Double.pi).squareRoot()
        let references: [(Activation, (Double) -> Double)] = [
            (.gelu, { 0.5 * $0 * (1 + erf($0 / 2.0.squareRoot())) }),
            (.geluTanh, { 0.5 * $0 * (1 + tanh(c * ($0 + 0.044715 * $0 * $0 * $0))) }),
            (.quickGELU, { $0 / (1 + exp(-1.702 * $0)) }),
            (.silu, { $0 / (1 + exp(-$0)) }),
            (.relu, { max($0, 0) }),
        ]
        XCTAssertEqual(references.count, Activation.allCases.count)
        for (activation, reference) in references {
            let output = input.applying(activation)
            XCTAssertEqual(output.shape, input.shape)
            assertClose(output, xs.map { reference(Double($0)) }, tolerance: Self.activationAbsolute, relative: Self.activationRelative, "\(activation)")
        }
        XCTAssertEqual(input.scalars, xs, "applying must not modify its input")
    }

    // MARK: softmax

    func testSoftmaxRowsSumToOneAndMatchDoublePrecision() {
        var rng = SeededGenerator(seed: 3)
        for width in [1, 5, 16, 37, 100] {
            let rows = 6
            let values = rng.floats(rows * width, in: -20...20)
            let output = Tensor(shape: [rows, width], values: values).softmax()
            XCTAssertEqual(output.shape, [rows, width])
            var expected: [Double] = []
            for r in 0..<rows {
                let row = values[(r * width)..<((r + 1) * width)].map(Double.init)
                let m = row.max()!
                let e = row.map { exp($0 - m) }
                let s = e.reduce(0, +)
                expected += e.map { $0 / s }
                let sum = output.scalars[(r * width)..<((r + 1) * width)].reduce(0.0) { $0 + Double($1) }
                XCTAssertEqual(sum, 1, accuracy: 1e-6, "row \(r) of width \(width)")
            }
            assertClose(output, expected, tolerance: 1e-6, "softmax width \(width)")
        }
    }

    func testSoftmaxIsStableForHugeLogits() {
        var row: [Float] = [1000, 999, -1000, 1000, 0, 998, 1000, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]
        row.withUnsafeMutableBufferPointer { VectorMath.softmaxInPlace($0.baseAddress!, count: $0.count) }
        XCTAssertFalse(row.contains { $0.isNaN })
        let e1 = exp(-1.0), e2 = exp(-2.0)
        let z = 3 + e1 + e2
        XCTAssertEqual(Double(row[0]), 1 / z, accuracy: 1e-6)
        XCTAssertEqual(Double(row[1]), e1 / z, accuracy: 1e-6)
        XCTAssertEqual(Double(row[5]), e2 / z, accuracy: 1e-6)
        XCTAssertLessThan(row[2], 1e-37, "exp(-2000) must vanish")
        XCTAssertGreaterThanOrEqual(row[2], 0)
    }

    // MARK: Activation names

    func testActivationConfigNamesMapToTheImplementedFunctions() {
        XCTAssertEqual(Activation(configName: "gelu"), .gelu)
        XCTAssertEqual(Activation(configName: "gelu_new"), .geluTanh)
        XCTAssertEqual(Activation(configName: "gelu_pytorch_tanh"), .geluTanh)
        XCTAssertEqual(Activation(configName: "gelu_fast"), .geluTanh)
        XCTAssertEqual(Activation(configName: "quick_gelu"), .quickGELU)
        XCTAssertEqual(Activation(configName: "silu"), .silu)
        XCTAssertEqual(Activation(configName: "swish"), .silu)
        XCTAssertEqual(Activation(configName: "relu"), .relu)
    }

    func testUnknownActivationNamesAreRejected() {
        for name in ["", "tanh", "GELU", "gelu_10", "sigmoid", "relu6", "leaky_relu", "mish"] {
            XCTAssertNil(Activation(configName: name), "'\(name)'")
        }
    }
}
