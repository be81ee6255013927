import Tensor
import XCTest

final class AttentionTests: XCTestCase {
    /// Per-head scaled-dot-product attention in double precision, heads interleaved along the last
    /// dimension; query head `h` reads key/value head `h / (heads / kvHeads)`.
    private func naiveAttention(
        query: [Float], key: [Float], value: [Float], tq: Int, tk: Int,
        heads: Int, kvHeads: Int, headDim d: Int, causalOffset: Int?, scale: Double? = nil
    ) -> [Double] {
        let qWidth = heads * d, kvWidth = kvHeads * d
        let alpha = scale ?? 1 / Double(d).squareRoot()
        var out = [Double](repeating: 0, count: tq * qWidth)
        for h in 0..<heads {
            let kvh = h / (heads / kvHeads)
            for i in 0..<tq {
                let visible = causalOffset.map { $0 + i + 1 } ?? tk
                var scores = [Double](repeating: 0, count: visible)
                for j in 0..<visible {
                    var s = 0.0
                    for c in 0..<d { s += Double(query[i * qWidth + h * d + c]) * Double(key[j * kvWidth + kvh * d + c]) }
                    scores[j] = s * alpha
                }
                let m = scores.max()!
                let e = scores.map { exp($0 - m) }
                let z = e.reduce(0, +)
                for c in 0..<d {
                    var acc = 0.0
                    for j in 0..<visible { acc += e[j] / z * Double(value[j * kvWidth + kvh * d + c]) }
                    out[i * qWidth + h * d + c] = acc
                }
            }
        }
        return out
    }

    /// Runs `Tensor.attention` on random inputs and compares it with `naiveAttention`.
    private func check(
        tq: Int, tk: Int, heads: Int, kvHeads: Int, headDim d: Int, mask: AttentionMask,
        scale: Float? = nil, seed: UInt64, file: StaticString = #filePath, line: UInt = #line
    ) {
        var rng = SeededGenerator(seed: seed)
        let q = rng.floats(tq * heads * d, in: -2...2)
        let k = rng.floats(tk * kvHeads * d, in: -2...2)
        let v = rng.floats(tk * kvHeads * d)
        let out = Tensor.attention(
            query: Tensor(shape: [tq, heads * d], values: q),
            key: Tensor(shape: [tk, kvHeads * d], values: k),
            value: Tensor(shape: [tk, kvHeads * d], values: v),
            shape: AttentionShape(heads: heads, kvHeads: kvHeads, headDim: d), mask: mask, scale: scale)
        XCTAssertEqual(out.shape, [tq, heads * d], file: file, line: line)
        var offset: Int?
        if case .causal(let o) = mask { offset = o }
        let expected = naiveAttention(
            query: q, key: k, value: v, tq: tq, tk: tk, heads: heads, kvHeads: kvHeads, headDim: d,
            causalOffset: offset, scale: scale.map(Double.init))
        assertClose(out, expected, tolerance: 1e-5, "attention", file: file, line: line)
    }

    func testNonCausalAttentionMatchesNaiveAttention() {
        check(tq: 6, tk: 9, heads: 3, kvHeads: 3, headDim: 8, mask: .none, seed: 1)
    }

    func testCausalAttentionWithoutOffsetMatchesNaiveAttention() {
        check(tq: 7, tk: 7, heads: 2, kvHeads: 2, headDim: 5, mask: .causal(offset: 0), seed: 2)
    }

    func testCausalAttentionWithOffsetMatchesNaiveAttentionWhenDecoding() {
        check(tq: 1, tk: 5, heads: 2, kvHeads: 2, headDim: 8, mask: .causal(offset: 4), seed: 3)
    }

    func testCausalAttentionWithOffsetMatchesNaiveAttentionForAChunkOfQueries() {
        check(tq: 3, tk: 8, heads: 2, kvHeads: 1, headDim: 4, mask: .causal(offset: 5), seed: 4)
    }

    func testGroupedQueryAttentionSharesKeyValueHeads() {
        check(tq: 5, tk: 5, heads: 4, kvHeads: 2, headDim: 6, mask: .causal(offset: 0), seed: 5)
        check(tq: 4, tk: 6, heads: 4, kvHeads: 2, headDim: 6, mask: .none, seed: 6)
    }

    func testMultiQueryAttentionSharesOneKeyValueHead() {
        check(tq: 5, tk: 5, heads: 4, kvHeads: 1, headDim: 6, mask: .causal(offset: 0), seed: 7)
        check(tq: 1, tk: 9, heads: 4, kvHeads: 1, headDim: 6, mask: .causal(offset: 8), seed: 8)
    }

    func testCustomScaleReplacesTheInverseSquareRootOfTheHeadSize() {
        check(tq: 4, tk: 6, heads: 2, kvHeads: 2, headDim: 8, mask: .none, scale: 0.9, seed: 9)
        check(tq: 4, tk: 6, heads: 2, kvHeads: 1, headDim: 8, mask: .causal(offset: 2), scale: 1, seed: 10)
    }

    func testCausalAttentionIgnoresFutureKeys() {
        // Changing the keys and values after a query's position must not change that query's output.
        var rng = SeededGenerator(seed: 11)
        let (t, heads, d) = (6, 2, 4)
        let query = rng.tensor([t, heads * d])
        let key = rng.tensor([t, heads * d]), value = rng.tensor([t, heads * d])
        let shape = AttentionShape(heads: heads, headDim: d)
        let before = Tensor.attention(query: query, key: key, value: value, shape: shape, mask: .causal(offset: 0))
        let keep = 3
        let changedKey = Tensor.concatenateRows([key.rows(0..<keep), rng.tensor([t - keep, heads * d], in: 10...20)])
        let changedValue = Tensor.concatenateRows([value.rows(0..<keep), rng.tensor([t - keep, heads * d], in: 10...20)])
        let after = Tensor.attention(query: query, key: changedKey, value: changedValue, shape: shape, mask: .causal(offset: 0))
        XCTAssertEqual(after.rows(0..<keep).scalars, before.rows(0..<keep).scalars)
        XCTAssertGreaterThan(after.rows(keep..<t).maxAbsoluteDifference(before.rows(keep..<t)), 1)
    }

    func testKeyCountIgnoresRowsPastIt() {
        // Key/value buffers of 12 rows of which only 5 are real (a KV cache's capacity): the other rows
        // hold huge values that would dominate the result if they were read.
        var rng = SeededGenerator(seed: 12)
        let (tk, capacity, heads, kvHeads, d) = (5, 12, 4, 2, 8)
        let kvWidth = kvHeads * d
        let q = rng.floats(2 * heads * d)
        let k = rng.floats(tk * kvWidth), v = rng.floats(tk * kvWidth)
        let garbage = [Float](repeating: 3e30, count: (capacity - tk) * kvWidth)
        let shape = AttentionShape(heads: heads, kvHeads: kvHeads, headDim: d)
        for mask in [AttentionMask.none, .causal(offset: tk - 2)] {
            let out = Tensor.attention(
                query: Tensor(shape: [2, heads * d], values: q),
                key: Tensor(shape: [capacity, kvWidth], values: k + garbage),
                value: Tensor(shape: [capacity, kvWidth], values: v + garbage),
                keyCount: tk, shape: shape, mask: mask)
            var offset: Int?
            if case .causal(let o) = mask { offset = o }
            let expected = naiveAttention(
                query: q, key: k, value: v, tq: 2, tk: tk, heads: heads, kvHeads: kvHeads, headDim: d,
                causalOffset: offset)
            assertClose(out, expected, tolerance: 1e-5, "\(mask)")
        }
    }

    func testAttentionOfManyQueriesMatchesNaiveAttention() {
        // Enough query rows for the masked softmax to be split across threads.
        check(tq: 70, tk: 70, heads: 2, kvHeads: 1, headDim: 4, mask: .causal(offset: 0), seed: 13)
    }

    func testAttentionShapeDefaultsToOneKeyValueHeadPerQueryHead() {
        let shape = AttentionShape(heads: 6, headDim: 16)
        XCTAssertEqual(shape.kvHeads, 6)
        XCTAssertEqual(shape.queryWidth, 96)
        XCTAssertEqual(shape.kvWidth, 96)
        let grouped = AttentionShape(heads: 6, kvHeads: 2, headDim: 16)
        XCTAssertEqual(grouped.queryWidth, 96)
        XCTAssertEqual(grouped.kvWidth, 32)
    }

    // MARK: Attention over a KV cache in either format

    /// Fills a cache with `tk` random positions in `format` (in two appends), then attends `tq` new query
    /// rows over it; the f16 cache must equal exact attention over the f16-rounded keys and values.
    private func checkCached(
        format: KVCacheFormat, tq: Int, tk: Int, heads: Int, kvHeads: Int, headDim d: Int, seed: UInt64,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        // The cache laid out head by head (as the models make it) and with its rows stored whole.
        for cacheHeadDim in [d, nil] {
            checkCached(format: format, cacheHeadDim: cacheHeadDim, tq: tq, tk: tk, heads: heads, kvHeads: kvHeads,
                        headDim: d, seed: seed, file: file, line: line)
        }
    }

    private func checkCached(
        format: KVCacheFormat, cacheHeadDim: Int?, tq: Int, tk: Int, heads: Int, kvHeads: Int, headDim d: Int,
        seed: UInt64, file: StaticString, line: UInt
    ) {
        var rng = SeededGenerator(seed: seed)
        let kvWidth = kvHeads * d
        let q = rng.floats(tq * heads * d, in: -2...2)
        let k = rng.floats(tk * kvWidth, in: -2...2)
        let v = rng.floats(tk * kvWidth)
        var cache = KVCache(layers: 1, width: kvWidth, headDim: cacheHeadDim, reservingCapacity: 3, format: format)
        let earlier = tk - tq
        if earlier > 0 {
            _ = cache.append(layer: 0, keys: Tensor(shape: [earlier, kvWidth], values: Array(k[..<(earlier * kvWidth)])),
                             values: Tensor(shape: [earlier, kvWidth], values: Array(v[..<(earlier * kvWidth)])))
            cache.advance(by: earlier)
        }
        let cached = cache.append(
            layer: 0, keys: Tensor(shape: [tq, kvWidth], values: Array(k[(earlier * kvWidth)...])),
            values: Tensor(shape: [tq, kvWidth], values: Array(v[(earlier * kvWidth)...])))
        let out = Tensor.attention(
            query: Tensor(shape: [tq, heads * d], values: q).block(), cached: cached,
            shape: AttentionShape(heads: heads, kvHeads: kvHeads, headDim: d), mask: .causal(offset: earlier))
        let stored = { (x: [Float]) in format == .f16 ? x.map { Float(Float16($0)) } : x }
        let expected = naiveAttention(
            query: q, key: stored(k), value: stored(v), tq: tq, tk: tk, heads: heads, kvHeads: kvHeads, headDim: d,
            causalOffset: earlier)
        assertClose(out.scalars, expected, tolerance: 1e-5, "\(format) cache (head size \(cacheHeadDim.map(String.init) ?? "none")), \(tq) over \(tk)",
                    file: file, line: line)
    }

    func testAttentionOverAnF16CacheIsExactAttentionOverTheRoundedKeysAndValues() {
        // Decode (one and three new rows: read in place) and prefill (widened into scratch), with and without
        // grouped key/value heads, head sizes that are and are not a multiple of the kernels' 32 and 8 columns.
        for format in KVCacheFormat.allCases {
            checkCached(format: format, tq: 1, tk: 37, heads: 4, kvHeads: 4, headDim: 64, seed: 1)
            checkCached(format: format, tq: 3, tk: 20, heads: 6, kvHeads: 2, headDim: 40, seed: 2)
            checkCached(format: format, tq: 1, tk: 1, heads: 2, kvHeads: 1, headDim: 5, seed: 3)
            checkCached(format: format, tq: 9, tk: 9, heads: 4, kvHeads: 2, headDim: 16, seed: 4)
            checkCached(format: format, tq: 12, tk: 30, heads: 3, kvHeads: 3, headDim: 33, seed: 5)
        }
    }

    func testAnF16CacheDiffersFromTheExactOneOnlyByTheRoundingOfItsValues() {
        // The same inputs through both formats: the difference is f16's rounding (2⁻¹¹ relative) at most,
        // and it is not zero (the f16 path really stores halves).
        func run(_ format: KVCacheFormat) -> Tensor {
            var rng = SeededGenerator(seed: 9)
            var cache = KVCache(layers: 1, width: 32, headDim: 32, format: format)
            let cached = cache.append(layer: 0, keys: rng.tensor([50, 32], in: -2...2), values: rng.tensor([50, 32]))
            return Tensor.attention(query: rng.tensor([1, 64], in: -2...2).block(), cached: cached,
                                    shape: AttentionShape(heads: 2, kvHeads: 1, headDim: 32), mask: .causal(offset: 49))
        }
        let exact = run(.f32).scalars, half = run(.f16).scalars
        let largest = zip(exact, half).map { abs($0 - $1) }.max()!
        XCTAssertGreaterThan(largest, 0)
        XCTAssertLessThan(largest, 4e-3)
    }
}
