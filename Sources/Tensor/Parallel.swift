// Splitting element-wise work across cores. Matrix work goes to OpenBLAS, which has its own threads.

import Dispatch

/// How many threads the engine's own kernels (not BLAS) may use.
public enum Parallelism {
    /// Threads for element-wise kernels; set once at start-up (defaults to the number of online cores).
    nonisolated(unsafe) public static var threadCount: Int = defaultThreadCount()

    private static func defaultThreadCount() -> Int {
        let online = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        return max(1, online)
    }

    /// Calls `body` on disjoint sub-ranges covering `0..<count`, in parallel when the work is large enough.
    /// `grain` is the smallest number of items worth a thread of its own.
    @inlinable
    public static func forEachChunk(count: Int, grain: Int, _ body: (Range<Int>) -> Void) {
        let chunks = min(threadCount, count / max(grain, 1))
        if chunks <= 1 {
            if count > 0 { body(0..<count) }
            return
        }
        let per = (count + chunks - 1) / chunks
        withoutActuallyEscaping(body) { body in
            let task = UnsafeSendableBox(body)
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                let lower = c * per
                let upper = min(count, lower + per)
                if lower < upper { task.value(lower..<upper) }
            }
        }
    }
}

/// Carries a value across a concurrency boundary whose safety the caller guarantees (disjoint writes).
@usableFromInline
struct UnsafeSendableBox<T>: @unchecked Sendable {
    @usableFromInline let value: T
    @usableFromInline init(_ value: T) { self.value = value }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
