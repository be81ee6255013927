import CKernels
import Dispatch
import Synchronization
import Tensor
import XCTest

/// The engine's thread pool (`accm_parallel_for`, behind `Parallelism.forEachChunk`): every task of every job
/// runs exactly once, on several threads when there are several, however jobs follow, nest or overlap.
final class ThreadPoolTests: XCTestCase {
    private var savedThreadCount = 0

    override func setUp() {
        savedThreadCount = Parallelism.threadCount
        Parallelism.threadCount = 4  // more threads than this machine's cores: the pool must not depend on their number
    }

    override func tearDown() {
        Parallelism.threadCount = savedThreadCount
    }

    /// Counts per index of `0..<count`, from disjoint writes.
    private final class Visits: @unchecked Sendable {
        var counts: [Int]
        init(_ count: Int) { counts = [Int](repeating: 0, count: count) }
    }

    func testEveryIndexIsVisitedExactlyOnceInThousandsOfBackToBackJobs() {
        for job in 0..<3000 {
            let count = 1 + job % 97
            let visits = Visits(count)
            Parallelism.forEachChunk(count: count, grain: 1) { range in
                for i in range { visits.counts[i] += 1 }
            }
            XCTAssertEqual(visits.counts, [Int](repeating: 1, count: count), "job \(job) of \(count) items")
            if visits.counts.contains(where: { $0 != 1 }) { return }
        }
    }

    func testAJobRunsOnMoreThanOneThread() {
        let threads = Mutex(Set<UInt>())
        // Each chunk waits a little for the others, so the workers are there to take their chunks.
        for _ in 0..<20 {
            Parallelism.forEachChunk(count: 4, grain: 1) { _ in
                threads.withLock { _ = $0.insert(UInt(bitPattern: Int(bitPattern: pthread_self()))) }
                usleep(2000)
            }
        }
        XCTAssertGreaterThan(threads.withLock { $0.count }, 1)
    }

    func testAParallelCallInsideATaskRunsOnThatTask() {
        let visits = Visits(16 * 16)
        Parallelism.forEachChunk(count: 16, grain: 1) { outer in
            for i in outer {
                Parallelism.forEachChunk(count: 16, grain: 1) { inner in
                    for j in inner { visits.counts[i * 16 + j] += 1 }
                }
            }
        }
        XCTAssertEqual(visits.counts, [Int](repeating: 1, count: 256))
    }

    func testCallersOnSeveralThreadsAtOnceEachGetEveryIndexOnce() {
        let callers = 6, jobs = 300
        let failures = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: callers) { caller in
            for job in 0..<jobs {
                let count = 2 + (caller * 31 + job) % 50
                let visits = Visits(count)
                Parallelism.forEachChunk(count: count, grain: 1) { range in
                    for i in range { visits.counts[i] += 1 }
                }
                if visits.counts != [Int](repeating: 1, count: count) { failures.add(1, ordering: .relaxed) }
            }
        }
        XCTAssertEqual(failures.load(ordering: .relaxed), 0)
    }

    func testJobsAfterTheWorkersHaveGoneToSleepStillRun() {
        Parallelism.forEachChunk(count: 8, grain: 1) { _ in }
        usleep(20_000)  // well past the workers' spin
        let visits = Visits(8)
        Parallelism.forEachChunk(count: 8, grain: 1) { range in
            for i in range { visits.counts[i] += 1 }
        }
        XCTAssertEqual(visits.counts, [Int](repeating: 1, count: 8))
    }

    func testTheCFunctionRunsEachTaskOnceAndRunsLargeCountsOnTheCaller() {
        final class Counter: @unchecked Sendable { let total = Atomic<Int>(0) }
        let counter = Counter()
        for count in [0, 1, 2, 3, 7, 65_536] {
            counter.total.store(0, ordering: .relaxed)
            withExtendedLifetime(counter) {
                accm_parallel_for(count, 3, { context, index in
                    let counter = Unmanaged<Counter>.fromOpaque(context!).takeUnretainedValue()
                    counter.total.add(index + 1, ordering: .relaxed)
                }, Unmanaged.passUnretained(counter).toOpaque())
            }
            XCTAssertEqual(counter.total.load(ordering: .relaxed), count * (count + 1) / 2, "\(count) tasks")
        }
    }
}
