// Scaled-dot-product attention over interleaved heads, with grouped-query heads and a causal mask.

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
        let tq = query.rowCount, tk = keyCount ?? key.rowCount
        let d = shape.headDim
        precondition(query.width == shape.queryWidth, "query width \(query.width) does not match \(shape)")
        precondition(key.width == shape.kvWidth && value.width == shape.kvWidth,
                     "key/value widths \(key.width)/\(value.width) do not match \(shape)")
        precondition(key.rowCount >= tk && value.rowCount >= tk, "attention over \(tk) keys, given \(key.rowCount)")
        if case .causal(let offset) = mask {
            precondition(offset + tq <= tk, "causal attention needs \(offset + tq) keys, got \(tk)")
        }
        let (qStride, kStride, vStride) = (query.rowStride, key.rowStride, value.rowStride)
        let alpha = scale ?? 1 / Float(d).squareRoot()
        let group = shape.heads / shape.kvHeads
        var out = Tensor(uninitializedShape: [tq, shape.queryWidth])
        // Heads run in parallel, one score buffer per thread.
        let threads = min(Parallelism.threadCount, shape.heads, max(1, tq * tk * d / 100_000))
        var scores = Tensor(uninitializedShape: [threads, tq, tk])
        query.base.withUnsafeBufferPointer { qBase in
            key.base.withUnsafeBufferPointer { kBase in
                value.base.withUnsafeBufferPointer { vBase in
                    let q = qBase.baseAddress! + query.offset
                    let k = kBase.baseAddress! + key.offset
                    let v = vBase.baseAddress! + value.offset
                    out.withUnsafeMutableBufferPointer { o in
                        scores.withUnsafeMutableBufferPointer { s in
                            Parallelism.forEachChunk(count: threads, grain: 1) { workers in
                                for worker in workers {
                                    let scratch = s.baseAddress! + worker * tq * tk
                                    for h in stride(from: worker, to: shape.heads, by: threads) {
                                        let kvh = h / group
                                        BLAS.gemm(
                                            transposeA: false, transposeB: true, m: tq, n: tk, k: d, alpha: alpha,
                                            a: q + h * d, lda: qStride,
                                            b: k + kvh * d, ldb: kStride,
                                            c: scratch, ldc: tk)
                                        softmaxRows(scratch, rows: tq, width: tk, mask: mask)
                                        BLAS.gemm(
                                            transposeA: false, transposeB: false, m: tq, n: d, k: tk,
                                            a: scratch, lda: tk,
                                            b: v + kvh * d, ldb: vStride,
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
