import Tensor
import XCTest

final class RotaryEmbeddingTests: XCTestCase {
    /// Hugging Face's `apply_rotary_pos_emb` in double precision:
    /// `q · cos + rotate_half(q) · sin` with `cos, sin = cat(freqs, freqs)` and `rotate_half(q) = cat(-q2, q1)`.
    private func reference(
        _ x: [Float], rows: Int, heads: Int, headDim d: Int, theta: Double, startPosition: Int
    ) -> [Double] {
        let half = d / 2
        let inverse = (0..<half).map { 1 / pow(theta, Double(2 * $0) / Double(d)) }
        var out = [Double](repeating: 0, count: x.count)
        for t in 0..<rows {
            let freqs = inverse.map { Double(startPosition + t) * $0 }
            let emb = freqs + freqs
            for h in 0..<heads {
                let base = t * heads * d + h * d
                let q = (0..<d).map { Double(x[base + $0]) }
                let rotated = (0..<d).map { $0 < half ? -q[$0 + half] : q[$0 - half] }
                for i in 0..<d { out[base + i] = q[i] * cos(emb[i]) + rotated[i] * sin(emb[i]) }
            }
        }
        return out
    }

    private func check(
        rows: Int, heads: Int, headDim: Int, theta: Float, startPosition: Int, seed: UInt64,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        var rng = SeededGenerator(seed: seed)
        let values = rng.floats(rows * heads * headDim)
        var x = Tensor(shape: [rows, heads * headDim], values: values)
        RotaryEmbedding(headDim: headDim, theta: theta).apply(to: &x, heads: heads, startPosition: startPosition)
        XCTAssertEqual(x.shape, [rows, heads * headDim], file: file, line: line)
        let expected = reference(
            values, rows: rows, heads: heads, headDim: headDim, theta: Double(theta), startPosition: startPosition)
        assertClose(x, expected, tolerance: 2e-5, "start \(startPosition)", file: file, line: line)
    }

    func testRotationMatchesRotateHalfFromPositionZero() {
        check(rows: 6, heads: 2, headDim: 8, theta: 10_000, startPosition: 0, seed: 1)
    }

    func testRotationMatchesRotateHalfFromALaterStartPosition() {
        check(rows: 6, heads: 2, headDim: 8, theta: 10_000, startPosition: 37, seed: 2)
        check(rows: 1, heads: 2, headDim: 8, theta: 10_000, startPosition: 37, seed: 3)
    }

    func testRotationMatchesRotateHalfForOtherThetasAndHeadSizes() {
        check(rows: 4, heads: 3, headDim: 16, theta: 500_000, startPosition: 5, seed: 4)
        check(rows: 3, heads: 1, headDim: 2, theta: 10_000, startPosition: 2, seed: 5)
    }

    func testStartPositionContinuesWhereAnEarlierChunkStopped() {
        // Rotating rows 0..<8 at once equals rotating 0..<3 and then 3..<8 with startPosition 3.
        var rng = SeededGenerator(seed: 6)
        let all = rng.tensor([8, 16])
        let rope = RotaryEmbedding(headDim: 8, theta: 10_000)
        var whole = all
        rope.apply(to: &whole, heads: 2, startPosition: 0)
        var first = all.rows(0..<3), second = all.rows(3..<8)
        rope.apply(to: &first, heads: 2, startPosition: 0)
        rope.apply(to: &second, heads: 2, startPosition: 3)
        XCTAssertEqual(Tensor.concatenateRows([first, second]).scalars, whole.scalars)
    }

    func testPositionZeroLeavesTheVectorUnchanged() {
        var rng = SeededGenerator(seed: 7)
        let values = rng.floats(2 * 8)
        var x = Tensor(shape: [1, 16], values: values)
        RotaryEmbedding(headDim: 8, theta: 10_000).apply(to: &x, heads: 2, startPosition: 0)
        XCTAssertEqual(x.scalars, values)
    }

    func testRotationPreservesEachPairsLength() {
        var rng = SeededGenerator(seed: 8)
        let values = rng.floats(5 * 16)
        var x = Tensor(shape: [5, 16], values: values)
        RotaryEmbedding(headDim: 8, theta: 10_000).apply(to: &x, heads: 2, startPosition: 11)
        let out = x.scalars
        for head in stride(from: 0, to: values.count, by: 8) {
            for i in 0..<4 {
                let a = head + i, b = head + i + 4
                let before = Double(values[a] * values[a] + values[b] * values[b])
                let after = Double(out[a] * out[a] + out[b] * out[b])
                XCTAssertEqual(after, before, accuracy: 1e-5, "pair (\(a), \(b))")
            }
        }
    }

    func testRotationDoesNotChangeACopyOfTheInput() {
        var rng = SeededGenerator(seed: 9)
        let original = rng.tensor([3, 16])
        var rotated = original
        RotaryEmbedding(headDim: 8, theta: 10_000).apply(to: &rotated, heads: 2, startPosition: 4)
        XCTAssertGreaterThan(rotated.maxAbsoluteDifference(original), 1e-3)
        var again = SeededGenerator(seed: 9)
        XCTAssertEqual(original.scalars, again.floats(48), "rotating a copy changed the original")
    }
}
