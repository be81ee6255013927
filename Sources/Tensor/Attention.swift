// Scaled-dot-product attention over interleaved heads, with grouped-query heads and a causal mask.

import CKernels

/// The shape of a multi-head attention: query heads, key/value heads (fewer with GQA/MQA) and head size.
public struct AttentionShape: Sendable, Equatable {
    public var heads: Int
    public var kvHeads: Int
    public var headDim: Int

    public init(heads: Int, kvHeads: Int? = nil, headDim: Int) {
        precondition(heads > 0 && headDim > 0, "attention needs heads and a head size")
        let kv = kvHeads ?? heads
        precondition(kv > 0 && heads % kv == 0, "\(heads) heads cannot share \(kv) key/value heads")
        self.heads = heads
        self.kvHeads = kv
        self.headDim = headDim
    }

    public var queryWidth: Int { heads * headDim }
    public var kvWidth: Int { kvHeads * headDim }
}

/// Which keys a query may see.
public enum AttentionMask: Sendable, Equatable {
    /// Every query sees every key.
    case none
    /// Query `i` sees keys `0 ... offset + i` (its own position in a sequence whose first `offset`
    /// positions are already in the key/value tensors).
    case causal(offset: Int)
}

extension Tensor {
    /// Multi-head attention of `query [Tq, heads·D]` over `key`/`value [Tk, kvHeads·D]`, heads interleaved
    /// along the last dimension as Hugging Face lays them out; returns `[Tq, heads·D]`.
    /// Only the first `keyCount` rows of `key` and `value` are read (all rows when nil), so a KV cache's
    /// buffers can be passed as they are. `scale` defaults to `1/sqrt(D)`.
    public static func attention(
        query: Tensor, key: Tensor, value: Tensor, keyCount: Int? = nil, shape: AttentionShape,
        mask: AttentionMask, scale: Float? = nil
    ) -> Tensor {
        attention(query: query.block(), key: key.block(), value: value.block(), keyCount: keyCount,
                  shape: shape, mask: mask, scale: scale)
    }

    /// Attention over blocks of tensors (for example one sequence's part of a fused QKV projection).
    public static func attention(
        query: MatrixBlock, key: MatrixBlock, value: MatrixBlock, keyCount: Int? = nil, shape: AttentionShape,
        mask: AttentionMask, scale: Float? = nil
    ) -> Tensor {
        let tk = keyCount ?? key.rowCount
        precondition(key.width == shape.kvWidth && value.width == shape.kvWidth,
                     "key/value widths \(key.width)/\(value.width) do not match \(shape)")
        precondition(key.rowCount >= tk && value.rowCount >= tk, "attention over \(tk) keys, given \(key.rowCount)")
        return attention(query: query, keyBase: key.base, keys: HeadRows(key), valueBase: value.base,
                         values: HeadRows(value), keyCount: tk, shape: shape, mask: mask, scale: scale)
    }

    /// Where each key/value head's rows lie in a buffer: side by side in the rows of a matrix
    /// (`blockWidth` = the matrix's width), or in runs of `blockWidth`-wide rows `blockStride` apart (a KV
    /// cache's layout, head by head).
    struct HeadRows {
        let offset: Int
        let rowStride: Int
        let blockWidth: Int
        let blockStride: Int

        init(_ block: MatrixBlock) {
            (offset, rowStride, blockWidth, blockStride) = (block.offset, block.rowStride, block.width, 0)
        }

        init(_ layout: KVLayerRows.HeadLayout) {
            (offset, rowStride, blockWidth, blockStride) = (0, layout.headDim, layout.headDim, layout.start(ofHead: 1))
        }

        /// The element offset of key/value head `head`'s first row, for heads of `headDim` columns.
        func start(ofHead head: Int, headDim d: Int) -> Int {
            offset + (head * d / blockWidth) * blockStride + (head * d) % blockWidth
        }
    }

    private static func attention(
        query: MatrixBlock, keyBase: Tensor, keys: HeadRows, valueBase: Tensor, values: HeadRows, keyCount tk: Int,
        shape: AttentionShape, mask: AttentionMask, scale: Float?
    ) -> Tensor {
        let tq = query.rowCount
        let d = shape.headDim
        precondition(query.width == shape.queryWidth, "query width \(query.width) does not match \(shape)")
        precondition(keys.blockWidth % d == 0 && values.blockWidth % d == 0, "a head of \(d) columns spans two runs")
        if case .causal(let offset) = mask {
            precondition(offset + tq <= tk, "causal attention needs \(offset + tq) keys, got \(tk)")
        }
        let (qStride, kStride, vStride) = (query.rowStride, keys.rowStride, values.rowStride)
        let alpha = scale ?? 1 / Float(d).squareRoot()
        let group = shape.heads / shape.kvHeads
        var out = Tensor(uninitializedShape: [tq, shape.queryWidth])
        // Heads run in parallel, one score buffer per thread.
        let threads = attentionThreads(heads: shape.heads, work: shape.heads * tq * tk * d)
        var scores = Tensor(uninitializedShape: [threads, tq, tk])
        query.base.withUnsafeBufferPointer { qBase in
            keyBase.withUnsafeBufferPointer { kBase in
                valueBase.withUnsafeBufferPointer { vBase in
                    let q = qBase.baseAddress! + query.offset
                    let k = kBase.baseAddress!, v = vBase.baseAddress!
                    out.withUnsafeMutableBufferPointer { o in
                        scores.withUnsafeMutableBufferPointer { s in
                            Parallelism.forEachChunk(count: threads, grain: 1) { workers in
                                for worker in workers {
                                    let scratch = s.baseAddress! + worker * tq * tk
                                    for h in stride(from: worker, to: shape.heads, by: threads) {
                                        let kvh = h / group
                                        if tq <= WeightMatrix.matrixVectorRowLimit {
                                            // Decode: sgemm would pack the head's keys and values (a second
                                            // pass over them) for a few rows; matrix-vector products stream
                                            // them once.
                                            for r in 0..<tq {
                                                BLAS.gemv(
                                                    transposeA: false, rows: tk, columns: d, alpha: alpha,
                                                    a: k + keys.start(ofHead: kvh, headDim: d), lda: kStride, x: q + r * qStride + h * d,
                                                    y: scratch + r * tk)
                                            }
                                            softmaxRows(scratch, rows: tq, width: tk, mask: mask)
                                            for r in 0..<tq {
                                                BLAS.gemv(
                                                    transposeA: true, rows: tk, columns: d,
                                                    a: v + values.start(ofHead: kvh, headDim: d), lda: vStride, x: scratch + r * tk,
                                                    y: o.baseAddress! + r * shape.queryWidth + h * d)
                                            }
                                            continue
                                        }
                                        BLAS.gemm(
                                            transposeA: false, transposeB: true, m: tq, n: tk, k: d, alpha: alpha,
                                            a: q + h * d, lda: qStride,
                                            b: k + keys.start(ofHead: kvh, headDim: d), ldb: kStride,
                                            c: scratch, ldc: tk)
                                        softmaxRows(scratch, rows: tq, width: tk, mask: mask)
                                        BLAS.gemm(
                                            transposeA: false, transposeB: false, m: tq, n: d, k: tk,
                                            a: scratch, lda: tk,
                                            b: v + values.start(ofHead: kvh, headDim: d), ldb: vStride,
                                            c: o.baseAddress! + h * d, ldc: shape.queryWidth)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    /// Attention of `query [Tq, heads·D]` over every position a KV cache holds for one layer, in the cache's
    /// own storage type. An f16 cache is read directly by decode (at most `WeightMatrix.matrixVectorRowLimit`
    /// query rows: per query row, scores through `accm_gemv_f16` and the weighted sum of values through
    /// `accm_weighted_rows_f16`); longer queries widen each key/value head once into scratch and use sgemm.
    public static func attention(
        query: MatrixBlock, cached: KVLayerRows, shape: AttentionShape, mask: AttentionMask, scale: Float? = nil
    ) -> Tensor {
        switch cached.storage {
        case .f32(let keys, let values):
            precondition(cached.width == shape.kvWidth, "cache width \(cached.width) does not match \(shape)")
            let heads = HeadRows(cached.layout)
            return attention(query: query, keyBase: keys, keys: heads, valueBase: values, values: heads,
                             keyCount: cached.count, shape: shape, mask: mask, scale: scale)
        case .f16(let keys, let values):
            return attentionOverHalfCache(query: query, keys: keys, values: values, count: cached.count,
                                          width: cached.width, layout: cached.layout, shape: shape, mask: mask,
                                          scale: scale)
        }
    }

    private static func attentionOverHalfCache(
        query: MatrixBlock, keys: [UInt16], values: [UInt16], count tk: Int, width: Int,
        layout: KVLayerRows.HeadLayout, shape: AttentionShape, mask: AttentionMask, scale: Float?
    ) -> Tensor {
        let tq = query.rowCount, d = shape.headDim
        precondition(query.width == shape.queryWidth, "query width \(query.width) does not match \(shape)")
        precondition(width == shape.kvWidth, "cache width \(width) does not match \(shape)")
        precondition(keys.count >= tk * width && values.count >= tk * width, "attention over \(tk) cached positions")
        let heads = HeadRows(layout)
        precondition(heads.blockWidth % shape.headDim == 0, "a head of \(shape.headDim) columns spans two runs")
        if case .causal(let offset) = mask {
            precondition(offset + tq <= tk, "causal attention needs \(offset + tq) keys, got \(tk)")
        }
        let alpha = scale ?? 1 / Float(d).squareRoot()
        let group = shape.heads / shape.kvHeads, queryWidth = shape.queryWidth, qStride = query.rowStride
        let direct = tq <= WeightMatrix.matrixVectorRowLimit
        var out = Tensor(uninitializedShape: [tq, queryWidth])
        // Key/value heads run in parallel (each widened once for its group of query heads).
        let threads = min(shape.kvHeads, attentionThreads(heads: shape.heads, work: shape.heads * tq * tk * d))
        let perThread = direct ? tk : tq * tk + 2 * tk * d  // one row of scores at a time, or all and the widened head
        var scratch = Tensor(uninitializedShape: [threads, perThread])
        query.base.withUnsafeBufferPointer { qBase in
            keys.withUnsafeBufferPointer { kBase in
                values.withUnsafeBufferPointer { vBase in
                    let q = qBase.baseAddress! + query.offset, k = kBase.baseAddress!, v = vBase.baseAddress!
                    out.withUnsafeMutableBufferPointer { o in
                        scratch.withUnsafeMutableBufferPointer { s in
                            Parallelism.forEachChunk(count: threads, grain: 1) { workers in
                                for worker in workers {
                                    let scratch = s.baseAddress! + worker * perThread
                                    for kvh in stride(from: worker, to: shape.kvHeads, by: threads) {
                                        let head = HalfCacheHead(
                                            keys: k + heads.start(ofHead: kvh, headDim: d),
                                            values: v + heads.start(ofHead: kvh, headDim: d), stride: heads.rowStride, count: tk,
                                            queryHeads: (kvh * group)..<((kvh + 1) * group), headDim: d)
                                        let output = (o.baseAddress!, queryWidth)
                                        if direct {
                                            head.attendReadingHalves(q, qStride, rows: tq, alpha: alpha, mask: mask,
                                                                     scores: scratch, into: output)
                                        } else {
                                            head.attendWidened(q, qStride, rows: tq, alpha: alpha, mask: mask,
                                                               scratch: scratch, into: output)
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    /// One key/value head of an f16 cache and the query heads that read it.
    private struct HalfCacheHead {
        let keys: UnsafePointer<UInt16>, values: UnsafePointer<UInt16>
        /// Halves from one cached position to the next (the head size in a cache laid out head by head).
        let stride: Int
        let count: Int
        let queryHeads: Range<Int>
        let headDim: Int

        /// Decode: per query row, scores straight from the halves, softmax, then the weighted sum of values.
        func attendReadingHalves(
            _ q: UnsafePointer<Float>, _ qStride: Int, rows: Int, alpha: Float, mask: AttentionMask,
            scores: UnsafeMutablePointer<Float>, into output: (base: UnsafeMutablePointer<Float>, stride: Int)
        ) {
            let d = headDim
            for h in queryHeads {
                for i in 0..<rows {
                    var visible = count
                    if case .causal(let offset) = mask { visible = offset + i + 1 }
                    accm_gemv_f16(keys, stride, visible, d, q + i * qStride + h * d, scores, 0)
                    for j in 0..<visible { scores[j] *= alpha }
                    VectorMath.softmaxInPlace(scores, count: visible)
                    accm_weighted_rows_f16(values, stride, visible, d, scores, output.base + i * output.stride + h * d)
                }
            }
        }

        /// Prefill: the head's keys and values widened once into `scratch` (after `rows · count` scores), then
        /// sgemm for each query head, as the fp32 path does.
        func attendWidened(
            _ q: UnsafePointer<Float>, _ qStride: Int, rows: Int, alpha: Float, mask: AttentionMask,
            scratch: UnsafeMutablePointer<Float>, into output: (base: UnsafeMutablePointer<Float>, stride: Int)
        ) {
            let d = headDim, scores = scratch
            let k = scratch + rows * count, v = k + count * d
            if stride == d {
                accm_f16_to_f32(keys, k, count * d)
                accm_f16_to_f32(values, v, count * d)
            } else {
                for p in 0..<count {
                    accm_f16_to_f32(keys + p * stride, k + p * d, d)
                    accm_f16_to_f32(values + p * stride, v + p * d, d)
                }
            }
            for h in queryHeads {
                BLAS.gemm(transposeA: false, transposeB: true, m: rows, n: count, k: d, alpha: alpha,
                          a: q + h * d, lda: qStride, b: k, ldb: d, c: scores, ldc: count)
                softmaxRows(scores, rows: rows, width: count, mask: mask)
                BLAS.gemm(transposeA: false, transposeB: false, m: rows, n: d, k: count,
                          a: scores, lda: count, b: v, ldb: d, c: output.base + h * d, ldc: output.stride)
            }
        }
    }

    /// Threads for `work` (multiply-adds of scores and values over all heads): one below ~200k, at most one a head.
    private static func attentionThreads(heads: Int, work: Int) -> Int {
        min(Parallelism.threadCount, heads, max(1, work / 200_000))
    }

    /// Row-wise softmax of a score matrix; masked entries become exactly 0.
    private static func softmaxRows(_ s: UnsafeMutablePointer<Float>, rows: Int, width: Int, mask: AttentionMask) {
        for r in 0..<rows {
            let row = s + r * width
            var visible = width
            if case .causal(let offset) = mask {
                visible = offset + r + 1
                (row + visible).update(repeating: 0, count: width - visible)
            }
            VectorMath.softmaxInPlace(row, count: visible)
        }
    }
}
