import Tensor
import XCTest

final class TensorOpsTests: XCTestCase {
    /// `x [m, k] · wᵀ` for `w [n, k]` (or `x · w` for `w [k, n]`), plus `bias`, in double precision.
    private func naiveProduct(
        _ x: [Float], _ w: [Float], m: Int, k: Int, n: Int, transposed: Bool, bias: [Float]?
    ) -> [Double] {
        var out = [Double](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var s = bias.map { Double($0[j]) } ?? 0
                for p in 0..<k {
                    let wv = transposed ? w[j * k + p] : w[p * n + j]
                    s += Double(x[i * k + p]) * Double(wv)
                }
                out[i * n + j] = s
            }
        }
        return out
    }

    // MARK: linear / matmul

    func testLinearMatchesANaiveTripleLoopWithoutBias() {
        var rng = SeededGenerator(seed: 1)
        let (m, k, n) = (7, 13, 5)
        let x = rng.floats(m * k), w = rng.floats(n * k)
        let y = Tensor(shape: [m, k], values: x).linear(weight: Tensor(shape: [n, k], values: w))
        XCTAssertEqual(y.shape, [m, n])
        assertClose(y, naiveProduct(x, w, m: m, k: k, n: n, transposed: true, bias: nil), tolerance: 1e-5)
    }

    func testLinearMatchesANaiveTripleLoopWithBias() {
        var rng = SeededGenerator(seed: 2)
        let (m, k, n) = (7, 13, 5)
        let x = rng.floats(m * k), w = rng.floats(n * k), b = rng.floats(n)
        let y = Tensor(shape: [m, k], values: x).linear(
            weight: Tensor(shape: [n, k], values: w), bias: Tensor(shape: [n], values: b))
        XCTAssertEqual(y.shape, [m, n])
        assertClose(y, naiveProduct(x, w, m: m, k: k, n: n, transposed: true, bias: b), tolerance: 1e-5)
    }

    func testLinearKeepsLeadingDimensions() {
        var rng = SeededGenerator(seed: 3)
        let x = rng.floats(2 * 3 * 13), w = rng.floats(5 * 13), b = rng.floats(5)
        let y = Tensor(shape: [2, 3, 13], values: x).linear(
            weight: Tensor(shape: [5, 13], values: w), bias: Tensor(shape: [5], values: b))
        XCTAssertEqual(y.shape, [2, 3, 5])
        assertClose(y, naiveProduct(x, w, m: 6, k: 13, n: 5, transposed: true, bias: b), tolerance: 1e-5)
    }

    func testMatmulMatchesANaiveTripleLoopWithAndWithoutBias() {
        var rng = SeededGenerator(seed: 4)
        let (m, k, n) = (7, 13, 5)
        let x = rng.floats(m * k), w = rng.floats(k * n), b = rng.floats(n)
        let input = Tensor(shape: [m, k], values: x), weight = Tensor(shape: [k, n], values: w)
        let plain = input.matmul(weight)
        XCTAssertEqual(plain.shape, [m, n])
        assertClose(plain, naiveProduct(x, w, m: m, k: k, n: n, transposed: false, bias: nil), tolerance: 1e-5)
        let biased = input.matmul(weight, bias: Tensor(shape: [n], values: b))
        assertClose(biased, naiveProduct(x, w, m: m, k: k, n: n, transposed: false, bias: b), tolerance: 1e-5)
    }

    func testLinearOfASingleRowIsAMatrixVectorProduct() {
        var rng = SeededGenerator(seed: 5)
        let x = rng.floats(33), w = rng.floats(17 * 33), b = rng.floats(17)
        let input = Tensor(shape: [1, 33], values: x), weight = Tensor(shape: [17, 33], values: w)
        let y = input.linear(weight: weight, bias: Tensor(shape: [17], values: b))
        XCTAssertEqual(y.shape, [1, 17])
        assertClose(y, naiveProduct(x, w, m: 1, k: 33, n: 17, transposed: true, bias: b), tolerance: 1e-5)
        assertClose(input.linear(weight: weight), naiveProduct(x, w, m: 1, k: 33, n: 17, transposed: true, bias: nil), tolerance: 1e-5)
    }

    func testMatmulOfASingleRowIsAVectorMatrixProduct() {
        var rng = SeededGenerator(seed: 15)
        let x = rng.floats(33), w = rng.floats(33 * 17), b = rng.floats(17)
        let input = Tensor(shape: [1, 33], values: x), weight = Tensor(shape: [33, 17], values: w)
        assertClose(input.matmul(weight), naiveProduct(x, w, m: 1, k: 33, n: 17, transposed: false, bias: nil), tolerance: 1e-5)
        let biased = input.matmul(weight, bias: Tensor(shape: [17], values: b))
        XCTAssertEqual(biased.shape, [1, 17])
        assertClose(biased, naiveProduct(x, w, m: 1, k: 33, n: 17, transposed: false, bias: b), tolerance: 1e-5)
    }

    func testLinearOfAOneDimensionalInputGivesAOneDimensionalOutput() {
        var rng = SeededGenerator(seed: 16)
        let x = rng.floats(13), w = rng.floats(5 * 13)
        let y = Tensor(shape: [13], values: x).linear(weight: Tensor(shape: [5, 13], values: w))
        XCTAssertEqual(y.shape, [5])
        assertClose(y, naiveProduct(x, w, m: 1, k: 13, n: 5, transposed: true, bias: nil), tolerance: 1e-5)
    }

    // MARK: norms

    func testLayerNormMatchesDoublePrecision() {
        var rng = SeededGenerator(seed: 6)
        let (rows, width) = (9, 37)
        // An offset and a spread so the mean and variance both matter.
        let x = rng.floats(rows * width, in: -3...5), g = rng.floats(width, in: 0.5...1.5), b = rng.floats(width)
        let epsilon: Float = 1e-5
        var expectedWithBias: [Double] = [], expectedWithoutBias: [Double] = []
        for r in 0..<rows {
            let row = x[(r * width)..<((r + 1) * width)].map(Double.init)
            let mean = row.reduce(0, +) / Double(width)
            let variance = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(width)
            let inv = 1 / (variance + Double(epsilon)).squareRoot()
            for i in 0..<width {
                let normal = (row[i] - mean) * inv * Double(g[i])
                expectedWithoutBias.append(normal)
                expectedWithBias.append(normal + Double(b[i]))
            }
        }
        let input = Tensor(shape: [rows, width], values: x)
        let weight = Tensor(shape: [width], values: g)
        let withBias = input.layerNorm(weight: weight, bias: Tensor(shape: [width], values: b), epsilon: epsilon)
        XCTAssertEqual(withBias.shape, [rows, width])
        assertClose(withBias, expectedWithBias, tolerance: 1e-5, "with bias")
        let withoutBias = input.layerNorm(weight: weight, bias: nil, epsilon: epsilon)
        assertClose(withoutBias, expectedWithoutBias, tolerance: 1e-5, "without bias")
    }

    func testLayerNormOfManyRowsMatchesRowByRow() {
        // Enough rows to be split across threads: each row must equal the same row normalised alone.
        var rng = SeededGenerator(seed: 7)
        let (rows, width) = (301, 24)
        let input = rng.tensor([rows, width])
        let weight = rng.tensor([width]), bias = rng.tensor([width])
        let all = input.layerNorm(weight: weight, bias: bias, epsilon: 1e-6)
        for r in [0, 1, 150, 151, 299, 300] {
            let alone = input.rows(r..<(r + 1)).layerNorm(weight: weight, bias: bias, epsilon: 1e-6)
            XCTAssertEqual(all.rows(r..<(r + 1)).scalars, alone.scalars, "row \(r)")
        }
    }

    func testRMSNormMatchesDoublePrecision() {
        var rng = SeededGenerator(seed: 8)
        let (rows, width) = (5, 19)
        let x = rng.floats(rows * width, in: -4...4), g = rng.floats(width, in: 0.5...1.5)
        let epsilon: Float = 1e-6
        var expected: [Double] = []
        for r in 0..<rows {
            let row = x[(r * width)..<((r + 1) * width)].map(Double.init)
            let inv = 1 / (row.map { $0 * $0 }.reduce(0, +) / Double(width) + Double(epsilon)).squareRoot()
            for i in 0..<width { expected.append(Double(g[i]) * row[i] * inv) }
        }
        let y = Tensor(shape: [rows, width], values: x).rmsNorm(weight: Tensor(shape: [width], values: g), epsilon: epsilon)
        XCTAssertEqual(y.shape, [rows, width])
        assertClose(y, expected, tolerance: 1e-5)
    }

    // MARK: element-wise

    func testAddMultiplyScaleAndAddRowVectorAreElementWise() {
        let a = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
        let b = Tensor(shape: [2, 3], values: [10, 20, 30, 40, 50, 60])
        XCTAssertEqual((a + b).scalars, [11, 22, 33, 44, 55, 66])
        var m = a
        m.multiply(b)
        XCTAssertEqual(m.scalars, [10, 40, 90, 160, 250, 360])
        var s = a
        s.scale(by: -2)
        XCTAssertEqual(s.scalars, [-2, -4, -6, -8, -10, -12])
        var r = a
        r.addRowVector(Tensor(shape: [3], values: [100, 200, 300]))
        XCTAssertEqual(r.scalars, [101, 202, 303, 104, 205, 306])
        XCTAssertEqual(a.scalars, [1, 2, 3, 4, 5, 6], "the operands are values, not references")
    }

    // MARK: rows, columns and copies

    private func iota(_ shape: [Int]) -> Tensor {
        Tensor(shape: shape, values: (0..<shape.reduce(1, *)).map(Float.init))
    }

    func testGatherRowsPicksRowsInTheGivenOrderWithRepeats() {
        let table = iota([5, 3])
        let picked = table.gatherRows([4, 0, 4, 2])
        XCTAssertEqual(picked.shape, [4, 3])
        XCTAssertEqual(picked.scalars, [12, 13, 14, 0, 1, 2, 12, 13, 14, 6, 7, 8])
        XCTAssertEqual(table.gatherRows([]).shape, [0, 3])
    }

    func testColumnsCopiesARangeOfEveryRow() {
        let x = iota([2, 2, 5])
        let c = x.columns(1..<4)
        XCTAssertEqual(c.shape, [2, 2, 3])
        XCTAssertEqual(c.scalars, [1, 2, 3, 6, 7, 8, 11, 12, 13, 16, 17, 18])
        XCTAssertEqual(x.columns(0..<5).scalars, x.scalars)
        XCTAssertEqual(x.columns(4..<5).scalars, [4, 9, 14, 19])
    }

    func testRowsCopiesARangeOfTheMatrixView() {
        let x = iota([2, 3, 4])  // 6 rows of 4
        let r = x.rows(2..<5)
        XCTAssertEqual(r.shape, [3, 4])
        XCTAssertEqual(r.scalars, (8..<20).map(Float.init))
        XCTAssertEqual(x.rows(0..<0).shape, [0, 4])
    }

    func testConcatenateRowsJoinsInOrder() {
        let a = iota([2, 3])
        let b = Tensor(shape: [1, 3], values: [-1, -2, -3])
        let empty = Tensor(shape: [0, 3])
        let c = Tensor.concatenateRows([a, empty, b, a])
        XCTAssertEqual(c.shape, [5, 3])
        XCTAssertEqual(c.scalars, [0, 1, 2, 3, 4, 5, -1, -2, -3, 0, 1, 2, 3, 4, 5])
    }

    func testStackAddsALeadingDimensionAndSliceUndoesIt() {
        let a = iota([2, 3])
        var b = iota([2, 3])
        b.scale(by: -1)
        let s = Tensor.stack([a, b, a])
        XCTAssertEqual(s.shape, [3, 2, 3])
        XCTAssertEqual(s[1, 1, 2], -5)
        XCTAssertEqual(s[2, 0, 1], 1)
        XCTAssertEqual(s.slice(0).shape, [2, 3])
        XCTAssertEqual(s.slice(0).scalars, a.scalars)
        XCTAssertEqual(s.slice(1).scalars, b.scalars)
        XCTAssertEqual(s.slice(2).scalars, a.scalars)
    }

    func testSubscriptReadsRowMajor() {
        let x = iota([2, 3, 4])
        XCTAssertEqual(x[0, 0, 0], 0)
        XCTAssertEqual(x[0, 2, 1], 9)
        XCTAssertEqual(x[1, 0, 3], 15)
        XCTAssertEqual(x[1, 2, 3], 23)
    }

    func testReshapedSharesValuesButCopyOnWriteKeepsThemIndependent() {
        let original = iota([2, 6])
        let reshaped = original.reshaped([3, 4])
        XCTAssertEqual(reshaped.shape, [3, 4])
        XCTAssertEqual(reshaped.scalars, original.scalars)
        XCTAssertEqual(reshaped[1, 0], original[0, 4])

        var copy = reshaped
        copy.withUnsafeMutableBufferPointer { buffer in
            for i in buffer.indices { buffer[i] = -1 }
        }
        XCTAssertEqual(copy.scalars, [Float](repeating: -1, count: 12))
        XCTAssertEqual(original.scalars, (0..<12).map(Float.init), "writing a reshaped copy changed the original")
        XCTAssertEqual(reshaped.scalars, (0..<12).map(Float.init), "writing a copy changed the tensor it was copied from")
    }

    func testMutatingAPlainCopyLeavesTheOriginalUnchanged() {
        let original = iota([4])
        var copy = original
        copy.withUnsafeMutableBufferPointer { $0[2] = 100 }
        XCTAssertEqual(copy.scalars, [0, 1, 100, 3])
        XCTAssertEqual(original.scalars, [0, 1, 2, 3])
    }

    func testMaxAbsoluteDifferenceReportsNaNAsInfinite() {
        let a = Tensor(shape: [3], values: [1, 2, 3])
        XCTAssertEqual(a.maxAbsoluteDifference(Tensor(shape: [3], values: [1, 2.5, 2])), 1)
        XCTAssertEqual(a.maxAbsoluteDifference(Tensor(shape: [3], values: [1, .nan, 3])), .infinity)
    }
}
