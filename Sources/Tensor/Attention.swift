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
        let tq = query.rowCount, tk = keyCount ?? key.rowCount
        let d = shape.headDim
        precondition(query.lastDimension == shape.queryWidth, "query \(query.shape) does not match \(shape)")
        precondition(key.lastDimension == shape.kvWidth && value.lastDimension == shape.kvWidth,
                     "key/value \(key.shape) do not match \(shape)")
        precondition(key.rowCount >= tk && value.rowCount >= tk, "attention over \(tk) keys, given \(key.rowCount)")
        if case .causal(let offset) = mask {
            precondition(offset + tq <= tk, "causal attention needs \(offset + tq) keys, got \(tk)")
        }
        let alpha = scale ?? 1 / Float(d).squareRoot()
        let group = shape.heads / shape.kvHeads
        var out = Tensor(uninitializedShape: [tq, shape.queryWidth])
        var scores = Tensor(uninitializedShape: [tq, tk])
        query.withUnsafeBufferPointer { q in
            key.withUnsafeBufferPointer { k in
                value.withUnsafeBufferPointer { v in
                    out.withUnsafeMutableBufferPointer { o in
                        scores.withUnsafeMutableBufferPointer { s in
                            for h in 0..<shape.heads {
                                let kvh = h / group
                                BLAS.gemm(
                                    transposeA: false, transposeB: true, m: tq, n: tk, k: d, alpha: alpha,
                                    a: q.baseAddress! + h * d, lda: shape.queryWidth,
                                    b: k.baseAddress! + kvh * d, ldb: shape.kvWidth,
                                    c: s.baseAddress!, ldc: tk)
                                softmaxRows(s.baseAddress!, rows: tq, width: tk, mask: mask)
                                BLAS.gemm(
                                    transposeA: false, transposeB: false, m: tq, n: d, k: tk,
                                    a: s.baseAddress!, lda: tk,
                                    b: v.baseAddress! + kvh * d, ldb: shape.kvWidth,
                                    c: o.baseAddress! + h * d, ldc: shape.queryWidth)
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
        Parallelism.forEachChunk(count: rows, grain: 32) { range in
            for r in range {
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
}
