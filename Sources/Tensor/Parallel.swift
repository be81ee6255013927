// Splitting the engine's work across cores: matrix products by output columns (`BLAS.split`), element-wise
// kernels and attention by rows or heads. The chunks run on the engine's own thread pool (`accm_parallel_for`),
// whose workers stay awake between the short parallel sections of a decode step.

import CKernels

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
    public static func forEachChunk(count: Int, grain: Int, _ body: (Range<Int>) -> Void) {
        let chunks = min(threadCount, count / max(grain, 1))
        if chunks <= 1 {
            if count > 0 { body(0..<count) }
            return
        }
        let per = (count + chunks - 1) / chunks
        forEachTask(count: chunks) { chunk in
            let lower = chunk * per, upper = min(count, lower + per)
            if lower < upper { body(lower..<upper) }
        }
    }

    /// Calls `body(i)` for every `i` in `0..<count` on up to `threadCount` threads, each thread taking the next
    /// index as it finishes one (so tasks of uneven length balance out). Returns when all have run.
    public static func forEachTask(count: Int, _ body: (Int) -> Void) {
        withoutActuallyEscaping(body) { body in
            var task = body
            withUnsafeMutablePointer(to: &task) { pointer in
                accm_parallel_for(count, Int32(threadCount), { context, index in
                    context!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(index)
                }, pointer)
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
