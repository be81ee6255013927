import CKernels
import Foundation
import Tensor
import XCTest

/// The element-wise C kernels (exp, activations, softmax, layer and RMS norms): the dispatching path
/// (AVX2 + FMA on this machine) against the portable path, and both against the formula in Double.
final class ElementwiseKernelTests: XCTestCase {
    private typealias Kernel = (UnsafeMutablePointer<Float>, Int) -> Void

    /// 2411 values in [-12, 12] (not a multiple of 8, so the vector body and the tail both run), with 0 and ±1.
    private func inputs(seed: UInt64) -> [Float] {
        var generator = SeededGenerator(seed: seed)
        return [0, 1, -1, 12, -12] + generator.floats(2406, in: -12...12)
    }

    private func run(_ kernel: Kernel, _ values: [Float]) -> [Float] {
        var out = values
        out.withUnsafeMutableBufferPointer { kernel($0.baseAddress!, $0.count) }
        return out
    }

    /// Both paths against `reference` within `absolute` + `relative`·|reference|, and against each other.
    private func assertBothPaths(_ name: String, fast: Kernel, portable: Kernel, reference: (Double) -> Double,
                                 absolute: Double = 1e-6, relative: Double = 0x1p-22) {
        let xs = inputs(seed: UInt64(name.utf8.count))
        let (a, b) = (run(fast, xs), run(portable, xs))
        for (i, x) in xs.enumerated() {
            let expected = reference(Double(x))
            let bound = absolute + relative * abs(expected)
            XCTAssertEqual(Double(a[i]), expected, accuracy: bound, "\(name)(\(x)), dispatching path")
            XCTAssertEqual(Double(b[i]), expected, accuracy: bound, "\(name)(\(x)), portable path")
            XCTAssertEqual(a[i], b[i], accuracy: Float(bound), "\(name)(\(x)): the paths disagree")
        }
    }

    func testExpAndTheActivationsAgreeOnBothPathsWithTheFormulas() {
        assertBothPaths("exp", fast: { accm_exp($0, $1) }, portable: { accm_exp_portable($0, $1) },
                        reference: { exp($0) }, absolute: 0, relative: 3e-7)
        for alpha: Float in [1, 1.702] {
            assertBothPaths("sigmoid gate \(alpha)", fast: { accm_sigmoid_gate($0, $1, alpha) },
                            portable: { accm_sigmoid_gate_portable($0, $1, alpha) },
                            reference: { $0 / (1 + exp(-Double(alpha) * $0)) })
        }
        let c = (2 / Double.pi).squareRoot()
        assertBothPaths("tanh GELU", fast: { accm_gelu_tanh($0, $1) }, portable: { accm_gelu_tanh_portable($0, $1) },
                        reference: { 0.5 * $0 * (1 + tanh(c * ($0 + 0.044715 * $0 * $0 * $0))) })
        assertBothPaths("erf GELU", fast: { accm_gelu_erf($0, $1) }, portable: { accm_gelu_erf_portable($0, $1) },
                        reference: { 0.5 * $0 * (1 + erf($0 / 2.0.squareRoot())) })
    }

    func testNaNStaysNaNAndHugeNegativesGiveTinyExponentials() {
        let xs: [Float] = [.nan, -.infinity, -1e30, -100, .nan, 0, 1, 2, -.infinity]  // 8 lanes and a tail
        for exponentials in [run({ accm_exp($0, $1) }, xs), run({ accm_exp_portable($0, $1) }, xs)] {
            XCTAssertTrue(exponentials[0].isNaN && exponentials[4].isNaN)
            for i in [1, 2, 3, 8] { XCTAssertTrue(exponentials[i] >= 0 && exponentials[i] <= 1.2e-38, "exp(\(xs[i])) = \(exponentials[i])") }
            XCTAssertEqual(exponentials[5], 1)
        }
    }

    func testSoftmaxAgreesOnBothPathsWithTheFormula() {
        var generator = SeededGenerator(seed: 31)
        for length in [1, 7, 8, 9, 64, 577, 1001] {
            let xs = generator.floats(length, in: -30...30)
            let peak = Double(xs.max()!)
            let weights = xs.map { exp(Double($0) - peak) }
            let total = weights.reduce(0, +)
            for (path, ys) in [("dispatching", run({ accm_softmax($0, $1) }, xs)), ("portable", run({ accm_softmax_portable($0, $1) }, xs))] {
                XCTAssertEqual(ys.reduce(0, +), 1, accuracy: 2e-6, "\(path), length \(length)")
                for (y, w) in zip(ys, weights) {
                    XCTAssertEqual(Double(y), w / total, accuracy: 1e-9 + 1e-6 * w / total, "\(path), length \(length)")
                }
            }
        }
        var empty: [Float] = []
        accm_softmax(&empty, 0)  // nothing to do, nothing read
    }

    func testLayerAndRMSNormsAgreeOnBothPathsWithTheFormulas() {
        var generator = SeededGenerator(seed: 41)
        for width in [1, 7, 8, 33, 1024, 4099] {
            let rows = 3
            // An offset far from zero: the two-pass variance must not lose it.
            let x = generator.floats(rows * width, in: -2...2).map { $0 + 40 }
            let weight = generator.floats(width, in: 0.5...1.5), bias = generator.floats(width, in: -1...1)
            let epsilon: Float = 1e-5
            for withBias in [true, false] {
                var fast = [Float](repeating: 0, count: x.count), portable = fast
                bias.withUnsafeBufferPointer { b in
                    let beta = withBias ? b.baseAddress : nil
                    accm_layer_norm(x, &fast, rows, width, weight, beta, epsilon)
                    accm_layer_norm_portable(x, &portable, rows, width, weight, beta, epsilon)
                }
                for r in 0..<rows {
                    let row = x[(r * width)..<((r + 1) * width)].map(Double.init)
                    let mean = row.reduce(0, +) / Double(width)
                    let variance = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(width)
                    for i in 0..<width {
                        let expected = (row[i] - mean) / (variance + Double(epsilon)).squareRoot() * Double(weight[i])
                            + (withBias ? Double(bias[i]) : 0)
                        // The inputs carry an offset of 40: their fp32 rounding (2.4e-6 · 40) sets the scale of the error.
                        let bound = 2e-4 * max(1, abs(expected))
                        XCTAssertEqual(Double(fast[r * width + i]), expected, accuracy: bound, "layer norm width \(width)")
                        XCTAssertEqual(Double(portable[r * width + i]), expected, accuracy: bound, "layer norm width \(width), portable")
                    }
                }
            }
            var fast = [Float](repeating: 0, count: x.count), portable = fast
            accm_rms_norm(x, &fast, rows, width, weight, epsilon)
            accm_rms_norm_portable(x, &portable, rows, width, weight, epsilon)
            for r in 0..<rows {
                let row = x[(r * width)..<((r + 1) * width)].map(Double.init)
                let inverse = 1 / (row.map { $0 * $0 }.reduce(0, +) / Double(width) + Double(epsilon)).squareRoot()
                for i in 0..<width {
                    let expected = Double(weight[i]) * row[i] * inverse
                    XCTAssertEqual(Double(fast[r * width + i]), expected, accuracy: 1e-5 * max(1, abs(expected)), "RMS norm width \(width)")
                    XCTAssertEqual(Double(portable[r * width + i]), expected, accuracy: 1e-5 * max(1, abs(expected)), "RMS norm width \(width), portable")
                }
            }
        }
    }

    func testNormsMayWriteOverTheirInput() {
        var generator = SeededGenerator(seed: 43)
        let x = generator.floats(2 * 100, in: -3...3), weight = generator.floats(100, in: 0.5...1.5)
        var separate = [Float](repeating: 0, count: x.count), inPlace = x
        accm_layer_norm(x, &separate, 2, 100, weight, nil, 1e-5)
        inPlace.withUnsafeMutableBufferPointer { accm_layer_norm($0.baseAddress!, $0.baseAddress!, 2, 100, weight, nil, 1e-5) }
        XCTAssertEqual(inPlace, separate)
        inPlace = x
        accm_rms_norm(x, &separate, 2, 100, weight, 1e-6)
        inPlace.withUnsafeMutableBufferPointer { accm_rms_norm($0.baseAddress!, $0.baseAddress!, 2, 100, weight, 1e-6) }
        XCTAssertEqual(inPlace, separate)
    }
}
