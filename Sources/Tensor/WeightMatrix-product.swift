// `x · Wᵀ` for a weight matrix in any format: decode (a few rows) reads the stored weights directly in
// matrix-vector kernels; prefill over int8/int4 weights runs in integers (the rows quantized to 8-bit blocks, as
// decode's); prefill over bf16/f16 converts a block of weight rows at a time into a per-thread fp32
// scratch buffer (reused from call to call) and multiplies it with OpenBLAS's sgemm.

import CKernels

extension WeightMatrix {
    /// int8/int4 inputs with at most this many rows (a decode step, of one sequence or a batch) run through the
    /// matrix-vector kernels (int4 reads each weight once for all the rows; int8 runs one product a row); more go
    /// through the integer matrix products, which are faster from 5 rows on (`Scripts/bench_batch_kernels.c`,
    /// one Zen 3 core, 16384×4096 int8, two runs: 5 rows 11.5 / 12.1 ms against 21.1 / 19.2 row by row, 8 rows
    /// 14.4 / 14.9 against 25.8 / 30.0). Attention reads an f16 KV cache directly up to as many query rows.
    public static let matrixVectorRowLimit = 4

    /// f32/bf16/f16 inputs with at most this many rows run through the batch matrix-vector kernels (4 rows a
    /// pass over the weights); more go through sgemm (f32) or block conversion + sgemm (bf16/f16), which pack the
    /// weights first and are slower at every count up to 8 (`Scripts/bench_batch_kernels.c`, one Zen 3 core,
    /// 16384×4096, two runs, 8 rows: f32 36.3 / 36.8 ms against sgemm's 49.5 / 56.4, bf16 20.5 / 22.9 against
    /// 37.8 / 45.7).
    public static let floatMatrixVectorRowLimit = 8

    /// The most input rows this matrix's products take through the matrix-vector kernels.
    public var matrixVectorRowLimit: Int {
        format.isBlockQuantized ? Self.matrixVectorRowLimit : Self.floatMatrixVectorRowLimit
    }

    /// fp32 floats of weight rows converted per sgemm call for a short input (fewer than
    /// `longPrefillRows` rows): small enough that the converted block stays in the last-level cache.
    public static let prefillBlockFloats = 1 << 21

    /// Inputs with at least this many rows convert 4× larger blocks: sgemm packs the whole input again on
    /// every call, and at 640 rows that costs more than the block falling out of the cache (a LLaMA-7B layer
    /// in bf16 at 640 tokens: 5 of 5 alternating rounds faster, by 4–7%; at 100 tokens the small block is
    /// faster, 2 of 2 rounds).
    public static let longPrefillRows = 256

    /// The fp32 floats converted per sgemm call for an input of `rows` rows.
    public static func prefillBlockFloats(rows: Int) -> Int {
        rows >= longPrefillRows ? 4 * prefillBlockFloats : prefillBlockFloats
    }
}

extension Tensor {
    /// `x · Wᵀ (+ bias)`: `x` is `[..., columns]`, the result `[..., rows]`.
    public func linear(_ weight: WeightMatrix, bias: Tensor? = nil) -> Tensor {
        switch weight.payload {
        case .f32(let t): return linear(weight: t, bias: bias)
        case .f32InputMajor(let t): return matmul(t, bias: bias)
        case .half, .quantized: break
        }
        precondition(lastDimension == weight.columns, "linear: input \(shape) does not match weight \(weight.shape)")
        let rows = rowCount, n = weight.rows
        if let bias { precondition(bias.count == n, "bias of \(bias.count) for \(n) outputs") }
        var out = Tensor(uninitializedShape: Array(shape.dropLast()) + [n])
        guard rows > 0 else { return out }
        out.withUnsafeMutableBufferPointer { o in
            withUnsafeBufferPointer { a in
                let x = a.baseAddress!, y = o.baseAddress!
                if let bias {
                    bias.withUnsafeBufferPointer { b in
                        for r in 0..<rows { (y + r * n).update(from: b.baseAddress!, count: n) }
                    }
                }
                if rows <= weight.matrixVectorRowLimit {
                    weight.matrixVector(x, rows: rows, into: y, accumulate: bias != nil)
                } else if weight.format == .int4 || weight.format == .int8 {
                    weight.integerProduct(x, rows: rows, into: y, accumulate: bias != nil)
                } else {
                    weight.blockedProduct(x, rows: rows, into: y, accumulate: bias != nil)
                }
            }
        }
        return out
    }
}

extension Tensor {
    /// `x · Wᵢᵀ (+ biasᵢ)` for several weight matrices over the same input `x [..., columns]` (a layer's query,
    /// key and value projections, or its gate and up projections). At decode (at most
    /// the matrices' `matrixVectorRowLimit` rows), when every matrix is bf16/f16 or every one int8/int4 over the
    /// same columns, the products run as one parallel job over all their output rows (int8/int4 quantize the
    /// input once), so the threads meet once rather than once a matrix; otherwise each is `linear(_:bias:)`.
    public func linear(_ maps: [(weight: WeightMatrix, bias: Tensor?)]) -> [Tensor] {
        guard let first = maps.first?.weight, rowCount <= first.matrixVectorRowLimit, rowCount > 0,
              maps.allSatisfy({ $0.weight.columns == first.columns && $0.weight.readsDirectly(like: first) })
        else { return maps.map { linear($0.weight, bias: $0.bias) } }
        precondition(lastDimension == first.columns, "linear: input \(shape) does not match weight \(first.shape)")
        let rows = rowCount, weights = maps.map(\.weight)
        let starts = weights.reduce(into: [0]) { $0.append($0.last! + $1.rows) }, total = starts.last!
        // One [rows, total] buffer for every product (each bias written first), then each product's columns.
        var all = Tensor(uninitializedShape: [rows, total])
        all.withUnsafeMutableBufferPointer { o in
            for (i, map) in maps.enumerated() {
                guard let bias = map.bias else { continue }
                precondition(bias.count == map.weight.rows, "bias of \(bias.count) for \(map.weight.rows) outputs")
                bias.withUnsafeBufferPointer { b in
                    for r in 0..<rows { (o.baseAddress! + r * total + starts[i]).update(from: b.baseAddress!, count: bias.count) }
                }
            }
            withUnsafeBufferPointer { a in
                WeightMatrix.matrixVector(weights, a.baseAddress!, rows: rows, into: o.baseAddress!, ldy: total,
                                          accumulate: maps.map { $0.bias != nil })
            }
        }
        return maps.indices.map { i in
            all.columns(starts[i]..<starts[i + 1]).reshaped(Array(shape.dropLast()) + [weights[i].rows])
        }
    }
}

extension WeightMatrix {
    /// Whether this matrix's decode product reads its stored values with the same kind of kernel input as
    /// `other`'s: both 16-bit floats (fp32 input), or both 8-/4-bit blocks (one quantized input).
    func readsDirectly(like other: WeightMatrix) -> Bool {
        switch (payload, other.payload) {
        case (.half, .half), (.quantized, .quantized): return true
        default: return false
        }
    }

    /// `y[r, :] (+)= x[r, :] · Wᵀ` for each of `rows` input rows, output rows split across the engine's threads
    /// (in shrinking pieces, so that the threads finish together although they share the memory bus).
    func matrixVector(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        Self.matrixVector([self], x, rows: rows, into: y, ldy: self.rows, accumulate: [accumulate])
    }

    /// The matrix-vector products of several matrices over one input, as one parallel job, side by side in
    /// `y` (row r of the input gives `y[r · ldy ..<]`, matrix after matrix): the pieces run over the matrices'
    /// output rows end to end, each piece calling the kernel on its part of each matrix it spans. The matrices
    /// are bf16/f16 or int8/int4 alike (`readsDirectly(like:)`) and share their column count.
    static func matrixVector(
        _ matrices: [WeightMatrix], _ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>, ldy: Int,
        accumulate: [Bool]
    ) {
        let k = matrices[0].columns
        let starts = matrices.reduce(into: [0]) { $0.append($0.last! + $1.rows) }, total = starts.last!
        let quantized = matrices[0].format.isBlockQuantized
        let activation = quantized ? QuantizedRows(x, rows: rows, columns: k) : nil  // quantized once, shared by every thread
        defer { activation?.deallocate() }
        BLAS.split(columns: total, work: 8 * k * total, pieces: .shrinking) { piece in
            for (i, matrix) in matrices.enumerated() {
                let lower = max(piece.lowerBound, starts[i]), upper = min(piece.upperBound, starts[i + 1])
                guard lower < upper else { continue }
                matrix.matrixVectorRows((lower - starts[i])..<(upper - starts[i]), x, activation, rows: rows,
                                        into: y + starts[i], ldy: ldy, accumulate: accumulate[i])
            }
        }
    }

    /// Output rows `outputs` of the product: `y[r · ldy + o] (+)= x[r, :] · W[o, :]`.
    private func matrixVectorRows(
        _ outputs: Range<Int>, _ x: UnsafePointer<Float>, _ activation: QuantizedRows?, rows: Int,
        into y: UnsafeMutablePointer<Float>, ldy n: Int, accumulate: Bool
    ) {
        let k = columns, o = outputs.lowerBound
        let add: Int32 = accumulate ? 1 : 0
        switch payload {
        case .half(let bytes):
            // Every input row in one pass over the weights (a batch's decode step).
            let w = bytes.base.assumingMemoryBound(to: UInt16.self) + o * k
            if format == .bf16 {
                accm_gemv_bf16_batch(w, k, outputs.count, k, x, k, rows, y + o, n, add)
            } else {
                accm_gemv_f16_batch(w, k, outputs.count, k, x, k, rows, y + o, n, add)
            }
        case .quantized(let bytes, let scales):
            guard let activation else { preconditionFailure("an int8/int4 product needs its quantized input") }
            let blocks = k / WeightFormat.quantBlock
            let s = scales.base.assumingMemoryBound(to: UInt16.self)
            // Every input row in one pass over the weights (a batch's decode step).
            if format == .int4 {
                accm_gemm_q4_0x8(bytes.base.assumingMemoryBound(to: UInt8.self), s, k, o, outputs.count, activation.values,
                                 activation.scales, rows, y + o, n, add)
            } else {
                accm_gemm_q8_0(bytes.base.assumingMemoryBound(to: Int8.self) + o * k, s + o * blocks, outputs.count, k,
                               activation.values, activation.scales, rows, y + o, n, add)
            }
        case .f32, .f32InputMajor:
            preconditionFailure("fp32 weights go through BLAS directly")
        }
    }

    /// `y (+)= x · Wᵀ` for `rows` input rows: each thread takes a slice of the output columns and converts
    /// its weight rows a block at a time into its scratch buffer, then runs sgemm on the block.
    func blockedProduct(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        let k = columns, n = self.rows
        let blockRows = max(16, Self.prefillBlockFloats(rows: rows) / k / 16 * 16)
        let (xs, ys) = (UnsafeSendableBox(x), UnsafeSendableBox(y))
        BLAS.split(columns: n, work: 2 * rows * k * n) { outputs in
            let scratch = accm_thread_scratch(min(blockRows, outputs.count) * k)!
            for start in stride(from: outputs.lowerBound, to: outputs.upperBound, by: blockRows) {
                let block = start..<min(outputs.upperBound, start + blockRows)
                self.writeRows(block, into: scratch)
                BLAS.gemm(
                    transposeA: false, transposeB: true, m: rows, n: block.count, k: k,
                    a: xs.value, lda: k, b: scratch, ldb: k,
                    beta: accumulate ? 1 : 0, c: ys.value + block.lowerBound, ldc: n)
            }
        }
    }

    /// `y (+)= x · Wᵀ` for `rows` input rows of an int8 or int4 matrix, in integers: the rows are quantized to
    /// 8-bit blocks as decode quantizes one (so a prompt's position gets the sums its decode step would), then
    /// each thread takes a slice of the output columns through `accm_gemm_q4_0x8` / `accm_gemm_q8_0` (8 weight
    /// rows at a time, unpacked or repacked so that one instruction multiplies 4 (int4) or 2 (int8) weights of
    /// each of 8 rows; on one Zen 3 core 1.7× and 1.2× sgemm's rate).
    func integerProduct(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        guard case .quantized(let bytes, let scales) = payload else {
            preconditionFailure("integer products take int8 and int4 matrices")
        }
        let k = columns, n = self.rows, blocks = k / WeightFormat.quantBlock
        let activation = QuantizedRows(x, rows: rows, columns: k)
        defer { activation.deallocate() }
        let (q, qs) = (UnsafeSendableBox(UnsafePointer(activation.values)), UnsafeSendableBox(UnsafePointer(activation.scales)))
        let w = UnsafeSendableBox(UnsafeRawPointer(bytes.base))
        let s = UnsafeSendableBox(scales.base.assumingMemoryBound(to: UInt16.self))
        let ys = UnsafeSendableBox(y)
        let isInt8 = format == .int8
        BLAS.split(columns: n, work: 2 * rows * k * n) { outputs in
            let o = outputs.lowerBound
            if isInt8 {
                accm_gemm_q8_0(w.value.assumingMemoryBound(to: Int8.self) + o * k, s.value + o * blocks, outputs.count,
                               k, q.value, qs.value, rows, ys.value + o, n, accumulate ? 1 : 0)
            } else {
                accm_gemm_q4_0x8(w.value.assumingMemoryBound(to: UInt8.self), s.value, k, o, outputs.count,
                                 q.value, qs.value, rows, ys.value + o, n, accumulate ? 1 : 0)
            }
        }
    }
}

/// Rows of an activation quantized to 8-bit blocks (`accm_quantize_activation`): the other operand of the
/// integer products. Owns its buffers until `deallocate()`.
struct QuantizedRows {
    let values: UnsafeMutablePointer<Int8>
    let scales: UnsafeMutablePointer<Float>

    init(_ x: UnsafePointer<Float>, rows: Int, columns: Int) {
        let blocks = columns / WeightFormat.quantBlock
        values = .allocate(capacity: rows * columns)
        scales = .allocate(capacity: rows * blocks)
        let (v, s, source) = (UnsafeSendableBox(values), UnsafeSendableBox(scales), UnsafeSendableBox(x))
        Parallelism.forEachChunk(count: rows, grain: 64) { range in
            for r in range {
                accm_quantize_activation(source.value + r * columns, columns, v.value + r * columns, s.value + r * blocks)
            }
        }
    }

    func deallocate() {
        values.deallocate()
        scales.deallocate()
    }
}
