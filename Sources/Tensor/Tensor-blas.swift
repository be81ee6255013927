// Matrix products through OpenBLAS (cblas_sgemm), row-major.

import CBLAS
import CKernels

/// The BLAS library's own thread pool.
public enum BLAS {
    /// Sets the number of threads OpenBLAS uses for one call.
    public static func setThreadCount(_ n: Int) { openblas_set_num_threads(Int32(n)) }
    /// Threads OpenBLAS uses for one call.
    public static var threadCount: Int { Int(openblas_get_num_threads()) }
    /// OpenBLAS build description (version, target CPU, threading).
    public static var configuration: String { String(cString: openblas_get_config()) }
    /// The CPU core type OpenBLAS picked its kernels for.
    public static var coreName: String { String(cString: openblas_get_corename()) }

    /// `y[m] = alpha · op(A) · x + beta · y` for a row-major `A[rows, columns]` (op(A) is `A` or `Aᵀ`).
    @inlinable
    public static func gemv(
        transposeA: Bool, rows: Int, columns: Int, alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        x: UnsafePointer<Float>, beta: Float = 0, y: UnsafeMutablePointer<Float>
    ) {
        guard rows > 0, columns > 0 else { return }
        cblas_sgemv(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, blasint(rows), blasint(columns),
                    alpha, a, blasint(lda), x, 1, beta, y, 1)
    }

    /// `C[m×n] = alpha · op(A) · op(B) + beta · C` with explicit leading dimensions (row-major).
    @inlinable
    public static func gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard m > 0, n > 0 else { return }
        cblas_sgemm(
            CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
            blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc)
        )
    }
}

extension Tensor {
    /// `x · Wᵀ (+ bias)` for PyTorch `Linear` weights `W[out, in]`; `x` is `[..., in]`, the result `[..., out]`.
    public func linear(weight: Tensor, bias: Tensor? = nil) -> Tensor {
        precondition(weight.rank == 2 && weight.shape[1] == lastDimension,
                     "linear: input \(shape) does not match weight \(weight.shape)")
        return product(weight, transposed: true, bias: bias)
    }

    /// `x · W (+ bias)` for weights stored `[in, out]` (GPT-2's Conv1D); `x` is `[..., in]`.
    public func matmul(_ weight: Tensor, bias: Tensor? = nil) -> Tensor {
        precondition(weight.rank == 2 && weight.shape[0] == lastDimension,
                     "matmul: input \(shape) does not match weight \(weight.shape)")
        return product(weight, transposed: false, bias: bias)
    }

    private func product(_ weight: Tensor, transposed: Bool, bias: Tensor?) -> Tensor {
        let rows = rowCount
        let k = lastDimension
        let n = transposed ? weight.shape[0] : weight.shape[1]
        if let bias { precondition(bias.count == n, "bias of \(bias.count) for \(n) outputs") }
        var out = Tensor(uninitializedShape: Array(shape.dropLast()) + [n])
        out.withUnsafeMutableBufferPointer { o in
            withUnsafeBufferPointer { a in
                weight.withUnsafeBufferPointer { w in
                    // Output columns are split across the engine's threads, each running a one-thread BLAS call
                    // on its slice of the weights (see BLAS.split).
                    // A product that reads each weight once (a decode step, of one sequence or a batch, over
                    // output-major weights; one row over input-major ones) is bound by reading the weights, not by
                    // arithmetic: weigh it by bytes. The rest is sgemm.
                    let batched = transposed && rows <= WeightMatrix.floatMatrixVectorRowLimit
                    let readsOnce = batched || rows == 1
                    BLAS.split(columns: n, work: readsOnce ? 16 * k * n : 2 * rows * k * n,
                               pieces: readsOnce ? .shrinking : .onePerThread) { columns in
                        let c0 = columns.lowerBound, width = columns.count
                        var beta: Float = 0
                        if let bias {
                            bias.withUnsafeBufferPointer { b in
                                for r in 0..<rows { (o.baseAddress! + r * n + c0).update(from: b.baseAddress! + c0, count: width) }
                            }
                            beta = 1
                        }
                        // Weight slice: rows c0..<c0+width of W[n, k], or columns of W[k, n].
                        let wSlice = transposed ? w.baseAddress! + c0 * k : w.baseAddress! + c0
                        if batched {
                            // A few rows (a decode step) over output-major weights: the engine's kernel reads four
                            // weight rows at once for one input (more streams in flight than sgemv's one), and each
                            // weight once for up to four inputs (where sgemm packs the weights first).
                            accm_gemv_f32_batch(wSlice, k, width, k, a.baseAddress!, k, rows, o.baseAddress! + c0, n,
                                                bias == nil ? 0 : 1)
                        } else if rows == 1 {
                            // One row over input-major weights (GPT-2's Conv1D): sgemv streams them once.
                            BLAS.gemv(transposeA: !transposed, rows: transposed ? width : k, columns: transposed ? k : width,
                                      a: wSlice, lda: transposed ? k : n, x: a.baseAddress!, beta: beta,
                                      y: o.baseAddress! + c0)
                        } else {
                            BLAS.gemm(
                                transposeA: false, transposeB: transposed, m: rows, n: width, k: k,
                                a: a.baseAddress!, lda: k, b: wSlice, ldb: transposed ? k : n,
                                beta: beta, c: o.baseAddress! + c0, ldc: n)
                        }
                    }
                }
            }
        }
        return out
    }
}

extension BLAS {
    /// How `split` cuts a product's output columns.
    public enum Pieces: Sendable {
        /// One equal piece per thread: for compute-bound products (sgemm packs its whole input once a piece).
        case onePerThread
        /// Pieces that shrink as the work runs out, taken by whichever thread is free: for memory-bound
        /// products (decode's matrix-vector products), whose threads share the memory bus and so finish
        /// unevenly; the last pieces are small, so no thread waits long for another.
        case shrinking
    }

    /// Splits `columns` output columns into pieces (multiples of 16 columns but the last) and runs `body` on
    /// each in parallel; small products (`work` FLOPs) run in one piece.
    ///
    /// OpenBLAS itself is kept at one thread: its worker threads spin on `sched_yield` between calls and
    /// fight the engine's own threads for the cores, which cost ~15% of a ViT forward on 2 cores.
    public static func split(columns: Int, work: Int, pieces: Pieces = .onePerThread, _ body: (Range<Int>) -> Void) {
        let threads = min(Parallelism.threadCount, max(1, work / 4_000_000), max(1, columns / 16))
        if threads <= 1 {
            body(0..<columns)
            return
        }
        let bounds = pieceBounds(columns: columns, threads: threads, pieces: pieces)
        Parallelism.forEachTask(count: bounds.count - 1) { i in body(bounds[i]..<bounds[i + 1]) }
    }

    /// The boundaries of `split`'s pieces, from 0 to `columns`. Shrinking pieces: each takes half of what
    /// one thread's share of the rest would be (a quarter of the rest for two threads), rounded up to 16
    /// columns, and at least `smallestShrinkingPiece`.
    static func pieceBounds(columns: Int, threads: Int, pieces: Pieces) -> [Int] {
        var bounds = [0]
        switch pieces {
        case .onePerThread:
            let block = ((columns + threads - 1) / threads + 15) / 16 * 16
            while bounds.last! < columns { bounds.append(min(columns, bounds.last! + block)) }
        case .shrinking:
            while bounds.last! < columns {
                let remaining = columns - bounds.last!
                let size = max(smallestShrinkingPiece, (remaining / (2 * threads) + 15) / 16 * 16)
                bounds.append(bounds.last! + min(remaining, size))
            }
        }
        return bounds
    }

    /// The fewest columns a shrinking piece has (but the last): 64 rows of a 4096-wide int4 matrix are 147 KB,
    /// ~10 µs of streaming, enough to hide the cost of taking a piece.
    static let smallestShrinkingPiece = 64
}
