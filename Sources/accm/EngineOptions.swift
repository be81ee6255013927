// Options every command that runs the engine shares.

import ArgumentParser
import Tensor

struct EngineOptions: ParsableArguments {
    @Option(help: "Threads for BLAS and the engine's own kernels (default: all online cores).")
    var threads: Int?

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    }

    /// Applies the thread setting to OpenBLAS and the element-wise kernels; returns the count in force.
    @discardableResult
    func apply() -> Int {
        let n = threads ?? Parallelism.threadCount
        Parallelism.threadCount = n
        // The engine splits matrix products across its own threads; OpenBLAS runs each piece on one thread.
        BLAS.setThreadCount(1)
        return n
    }
}
