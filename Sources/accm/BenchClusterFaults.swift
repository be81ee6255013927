// `accm bench cluster --faults`: the cluster's load with and without workers being killed under it.

import ACCM
import Cluster
import Dispatch
import Foundation
import Transport
import Wire

#if canImport(Glibc)
import Glibc
#endif

extension BenchCluster {
    /// Two workers per stage; for each concurrency, `faultSeconds` of load without faults, then as long with a
    /// SIGKILL every `faultInterval` seconds to a worker of each stage in turn (restarted by the supervisor).
    func loadUnderFaults() throws {
        let levels = try loadLevels()
        let work = try loadWork()
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("accm-bench-faults-\(getpid()).log").path
        let up = try ChildProcess(["cluster", "up", "--model", modelOptions.directory, "--threads", "\(threads)",
                                   "--vision", "2", "--caption", "2", "--selector", "2", "--decoder", "2",
                                   "--heartbeat-ms", "250"], log: log)
        defer { up.stop() }
        let endpoint = try up.waitForLine(prefix: "tcp://", timeout: 120)
        let context = ZeroMQContext()
        let control = try ClusterClient(context: context, coordinator: endpoint)
        defer { control.close() }
        for r in work.prefix(8) { _ = try control.answer(r) }
        print("\n## Load under faults: two workers per stage (\(threads) thread(s) each), \(Int(faultSeconds)) s per run, "
            + "a SIGKILL every \(faultInterval) s to a worker of vision, caption, selector, decoder in turn")
        print("| run | concurrency | requests/s | p50 latency | p99 latency | failed | kills | re-dispatched |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for level in levels {
            for withFaults in [false, true] {
                let before = try control.status()
                let latencies = LockedLatencies()
                let failures = LockedLatencies()
                let stop = Date().addingTimeInterval(faultSeconds)
                let start = ContinuousClock.now
                let kills = LockedLatencies()
                let killer = Thread {
                    guard withFaults else { return }
                    let stages: [Accm_V1_Stage] = [.vision, .caption, .selector, .decoder]
                    var turn = 0
                    while Date().addingTimeInterval(faultInterval) < stop {
                        usleep(useconds_t(faultInterval * 1e6))
                        guard let status = try? control.status(timeout: .seconds(5)),
                              let victim = status.workers.first(where: { $0.stage == stages[turn % 4] }) else { continue }
                        kill(pid_t(victim.processID), SIGKILL)
                        kills.append(1)
                        turn += 1
                    }
                }
                killer.start()
                onThreads(level) { c in
                    guard let client = try? ClusterClient(context: context, coordinator: endpoint) else { return }
                    defer { client.close() }
                    var i = c
                    while Date() < stop {
                        let t = ContinuousClock.now
                        do {
                            _ = try client.answer(work[i % work.count], timeout: .seconds(30))
                            latencies.append(self.seconds(ContinuousClock.now - t))
                        } catch {
                            failures.append(self.seconds(ContinuousClock.now - t))
                        }
                        i += level
                    }
                }
                while !killer.isFinished { usleep(10_000) }
                let wall = seconds(ContinuousClock.now - start)
                let values = latencies.values.sorted()
                let after = try control.status()
                let p50 = values.isEmpty ? 0 : values[values.count / 2]
                let p99 = values.isEmpty ? 0 : values[min(values.count - 1, values.count * 99 / 100)]
                print("| \(withFaults ? "with faults" : "no faults") | \(level) | "
                    + String(format: "%.1f | %.1f ms | %.1f ms | ", Double(values.count) / wall, p50 * 1e3, p99 * 1e3)
                    + "\(failures.values.count) | \(kills.values.count) | \(after.redispatched - before.redispatched) |")
                flushStandardOutput()
                if withFaults { usleep(3_000_000) }  // the last restarted workers register again
            }
        }
    }
}
