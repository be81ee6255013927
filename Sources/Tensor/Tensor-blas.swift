// Matrix products through OpenBLAS (cblas_sgemm), row-major.

import CBLAS

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
        var out = Tensor(uninitializedShape: Array(shape.dropLast()) + [n])
        var beta: Float = 0
        out.withUnsafeMutableBufferPointer { o in
            if let bias {
                precondition(bias.count == n, "bias of \(bias.count) for \(n) outputs")
                bias.withUnsafeBufferPointer { b in
                    for r in 0..<rows { (o.baseAddress! + r * n).update(from: b.baseAddress!, count: n) }
                }
                beta = 1
            }
            withUnsafeBufferPointer { a in
                weight.withUnsafeBufferPointer { w in
                    BLAS.gemm(
                        transposeA: false, transposeB: transposed, m: rows, n: n, k: k,
                        a: a.baseAddress!, lda: k, b: w.baseAddress!, ldb: transposed ? k : n,
                        beta: beta, c: o.baseAddress!, ldc: n
                    )
                }
            }
        }
        return out
    }
}
