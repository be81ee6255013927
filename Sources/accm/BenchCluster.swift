// `accm bench cluster`: what the wire costs per hop (tensor frames over TCP loopback) and what the cluster
// serves under load against the embedded pipeline, in one run on the same requests.

import ACCM
import ArgumentParser
import Cluster
import Dispatch
import Foundation
import Tensor
import Transport
import Wire

#if canImport(Glibc)
import Glibc
#endif

struct BenchCluster: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Time tensor hops over ZeroMQ (TCP loopback) and the cluster's throughput and latency under load "
            + "against the embedded pipeline at batch 1 and 8.")

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "Comma list of concurrent clients.")
    var clients = "1,4,16,64"

    @Option(help: "Requests per load level (ACCM at 4 tokens, questions of the committed test split).")
    var requests = 128

    @Option(help: "Round trips per tensor size.")
    var hops = 200

    @Option(help: "Threads per worker (one worker per stage; the machine's cores are shared by all).")
    var threads = 1

    @Option(help: "The model at real shapes for the end-to-end comparison (bench:N: N LLaMA-7B layers), or none.")
    var benchModel = "bench:2"

    @Option(help: "Requests, one at a time, for the end-to-end comparison on the bench model.")
    var endToEnd = 4

    @Flag(help: ArgumentHelp("Instead: the load with two workers per stage, without faults and then while a worker of each "
        + "stage in turn is killed (SIGKILL) every --fault-interval seconds and restarted by the supervisor."))
    var faults = false

    @Option(help: "With --faults: seconds between kills.")
    var faultInterval = 2.0

    @Option(help: "With --faults: seconds of load per run.")
    var faultSeconds = 20.0

    func run() throws {
        print(MachineDescription.current.lines.joined(separator: "\n"))
        if faults { return try loadUnderFaults() }
        try hopLatency()
        try load()
        if benchModel != "none" { try endToEndOnTheBenchModel() }
    }

    // MARK: End to end at real shapes

    /// One request at a time through the embedded pipeline and through the cluster (workers with every core:
    /// one stage runs at a time for a lone request), on the random-weight model at LLaVA-1.5-7B shapes.
    private func endToEndOnTheBenchModel() throws {
        var options = modelOptions
        options.model = benchModel
        guard let bench = try options.bench else { throw ValidationError("--bench-model must be bench:N or none") }
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let image = [UInt8](try Data(contentsOf: URL(fileURLWithPath: DefaultPaths.testSplit + "/images/00000.png")))
        let requests = (0..<endToEnd).map { i in
            ACCMRequest(image: .encoded(image), question: ["What color is the cross?", "How many shapes are there?"][i % 2],
                        budget: 64, pruning: .accm(ranking: .mostSimilar, cap: .byScore, textPicks: nil),
                        generation: GenerationOptions(maxNewTokens: 4))
        }
        print("\n## End to end, one request at a time: \(bench.identity) (random weights; ViT-L/14-336, GPT-2, LongCLIP-L, "
            + "\(bench.decoderLayers) LLaMA-7B layers), ACCM keeping 64 of 576 tokens, \(endToEnd) requests after one warm-up")
        var embedded: [Double] = []
        do {
            Parallelism.threadCount = cores
            BLAS.setThreadCount(1)
            let pipeline = try bench.pipeline()
            _ = try pipeline.answer([requests[0]])
            for r in requests {
                let t = ContinuousClock.now
                _ = try pipeline.answer([r])
                embedded.append(seconds(ContinuousClock.now - t))
            }
        }
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("accm-bench-e2e-\(getpid()).log").path
        let up = try ChildProcess(["cluster", "up", "--model", benchModel, "--threads", "\(cores)", "--max-batch", "1"], log: log)
        defer { up.stop() }
        let endpoint = try up.waitForLine(prefix: "tcp://", timeout: 300)
        let client = try ClusterClient(context: ZeroMQContext(), coordinator: endpoint)
        defer { client.close() }
        _ = try client.answer(requests[0], timeout: .seconds(600))
        var cluster: [Double] = []
        for r in requests {
            let t = ContinuousClock.now
            _ = try client.answer(r, timeout: .seconds(600))
            cluster.append(seconds(ContinuousClock.now - t))
        }
        let e = embedded.reduce(0, +) / Double(embedded.count), c = cluster.reduce(0, +) / Double(cluster.count)
        print("| server | mean | min | max |")
        print("| --- | ---: | ---: | ---: |")
        print(String(format: "| embedded (%d threads) | %.3f s | %.3f s | %.3f s |", cores, e, embedded.min()!, embedded.max()!))
        print(String(format: "| cluster (a worker per stage, %d threads each) | %.3f s | %.3f s | %.3f s |", cores, c,
                     cluster.min()!, cluster.max()!))
        print(String(format: "cluster / embedded: %.3f (%+.1f%%)", c / e, (c / e - 1) * 100))
    }

    // MARK: Per hop

    /// A DEALER sends a tensor message, a ROUTER on another thread echoes it: half a round trip is one hop.
    private func hopLatency() throws {
        print("\n## Per hop: an envelope + one f32 tensor frame, DEALER → ROUTER → DEALER over tcp://127.0.0.1")
        let context = ZeroMQContext()
        let echo = EchoHandler()
        let server = try SocketThread(context: context, sockets: [SocketSpec(kind: .router, endpoint: "tcp://127.0.0.1:*", bind: true)],
                                      tickInterval: .milliseconds(5), handler: echo)
        defer { server.stop() }
        let receiver = Receiver()
        let client = try SocketThread(context: context, sockets: [SocketSpec(kind: .dealer, endpoint: server.boundEndpoints[0],
                                                                              bind: false, routingID: "bench")],
                                      tickInterval: .milliseconds(5), handler: receiver)
        defer { client.stop() }
        print("| tensor | bytes | median hop | p99 hop | GB/s (bytes / median hop) |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for shape in [[36, 1024], [576, 1024]] {
            let tensor = Tensor(shape: shape, values: (0..<(shape[0] * shape[1])).map { Float($0 % 97) })
            var envelope = Envelope.make(requestID: "hop")
            envelope.captionTask = Accm_V1_CaptionTask()
            let message = WireMessage(envelope, payloads: [("pruned_embeddings", .floats(tensor))])
            var times: [Double] = []
            for i in -20..<hops {
                let start = ContinuousClock.now
                client.send(message.frames(), on: 0)
                let back = receiver.next()
                let d = ContinuousClock.now - start
                precondition((try? back.floats("pruned_embeddings", rank: 2).shape) == shape, "the echo lost its tensor")
                if i >= 0 { times.append((Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18) / 2) }
            }
            times.sort()
            let median = times[times.count / 2], p99 = times[min(times.count - 1, times.count * 99 / 100)]
            let bytes = tensor.count * 4
            print("| \(shape[0])×\(shape[1]) f32 | \(bytes) | " + String(format: "%.3f ms | %.3f ms | %.2f |",
                                                                        median * 1e3, p99 * 1e3, Double(bytes) / median / 1e9))
        }
    }

    // MARK: Load

    func loadLevels() throws -> [Int] {
        try clients.split(separator: ",").map { value -> Int in
            guard let n = Int(value), (1...256).contains(n) else { throw ValidationError("client count '\(value)'") }
            return n
        }
    }

    /// The load's requests: ACCM at 4 tokens on the committed test split's questions.
    func loadWork() throws -> [ACCMRequest] {
        let split = URL(fileURLWithPath: DefaultPaths.testSplit)
        let lines = try String(contentsOf: split.appendingPathComponent("test.jsonl"), encoding: .utf8)
            .split(separator: "\n").prefix(requests)
        return try lines.map { line -> ACCMRequest in
            let item = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            let image = [UInt8](try Data(contentsOf: split.appendingPathComponent(item["image"] as! String)))
            return ACCMRequest(image: .encoded(image), question: item["question"] as! String, budget: 4,
                               pruning: .accm(ranking: .mostSimilar, cap: .byScore, textPicks: nil),
                               generation: GenerationOptions(maxNewTokens: 4))
        }
    }

    private func load() throws {
        let levels = try loadLevels()
        let work = try loadWork()
        print("\n## Load: \(work.count) requests (ACCM at 4 tokens, answers of at most 4 tokens), \(modelOptions.directory)")
        print("| server | concurrency | requests/s | p50 latency | p99 latency |")
        print("| --- | ---: | ---: | ---: | ---: |")

        // The embedded pipeline in this process (all cores), at batch 1 and batch 8.
        Parallelism.threadCount = ProcessInfo.processInfo.activeProcessorCount
        BLAS.setThreadCount(1)
        let pipeline = try modelOptions.load()
        for batch in [1, 8] {
            var latencies: [Double] = []
            let start = ContinuousClock.now
            for first in stride(from: 0, to: work.count, by: batch) {
                let t = ContinuousClock.now
                _ = try pipeline.answer(Array(work[first..<min(first + batch, work.count)]))
                let d = seconds(ContinuousClock.now - t)
                latencies += Array(repeating: d, count: min(batch, work.count - first))
            }
            report("embedded, batch \(batch)", batch, work.count, seconds(ContinuousClock.now - start), latencies)
        }

        // The cluster: a coordinator and one worker per stage as child processes.
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("accm-bench-\(getpid()).log")
        let up = try ChildProcess(["cluster", "up", "--model", modelOptions.directory, "--threads", "\(threads)"], log: scratch.path)
        defer { up.stop() }
        let endpoint = try up.waitForLine(prefix: "tcp://", timeout: 120)
        let context = ZeroMQContext()
        let warm = try ClusterClient(context: context, coordinator: endpoint)
        for r in work.prefix(8) { _ = try warm.answer(r) }
        warm.close()
        for level in levels {
            let latencies = LockedLatencies()
            let next = Counter()
            let start = ContinuousClock.now
            onThreads(level) { _ in
                guard let client = try? ClusterClient(context: context, coordinator: endpoint) else { return }
                defer { client.close() }
                while let i = next.take(below: work.count) {
                    let t = ContinuousClock.now
                    if (try? client.answer(work[i], timeout: .seconds(300))) != nil {
                        latencies.append(self.seconds(ContinuousClock.now - t))
                    }
                }
            }
            let values = latencies.values
            report("cluster", level, values.count, seconds(ContinuousClock.now - start), values)
            if values.count < work.count { print("  (\(work.count - values.count) requests failed)") }
        }
    }

    func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18 }

    func report(_ server: String, _ concurrency: Int, _ count: Int, _ wall: Double, _ latencies: [Double]) {
        let sorted = latencies.sorted()
        guard !sorted.isEmpty else { return print("| \(server) | \(concurrency) | – | – | – |") }
        let p50 = sorted[sorted.count / 2], p99 = sorted[min(sorted.count - 1, sorted.count * 99 / 100)]
        print("| \(server) | \(concurrency) | " + String(format: "%.1f | %.1f ms | %.1f ms |", Double(count) / wall,
                                                         p50 * 1e3, p99 * 1e3))
    }
}

/// Runs `body(i)` for i in 0..<count, each on a thread of its own (Dispatch's concurrentPerform would run only
/// as many at once as there are cores), and waits for all.
func onThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let group = DispatchGroup()
    for i in 0..<count {
        group.enter()
        let thread = Thread {
            body(i)
            group.leave()
        }
        thread.stackSize = 1 << 20
        thread.start()
    }
    group.wait()
}

/// Sends every message back to its sender.
private final class EchoHandler: SocketHandler, @unchecked Sendable {
    func received(_ message: ReceivedFrames, loop: SocketLoop) { loop.send(message.frames, on: message.socket) }
    func tick(loop: SocketLoop) {}
}

/// Hands received messages to a waiting thread.
private final class Receiver: SocketHandler, @unchecked Sendable {
    private let lock = NSLock()
    private var queue: [WireMessage] = []
    private let ready = DispatchSemaphore(value: 0)

    func received(_ message: ReceivedFrames, loop: SocketLoop) {
        guard let decoded = try? WireMessage.decode(message.frames) else { return }
        lock.lock()
        queue.append(decoded)
        lock.unlock()
        ready.signal()
    }

    func tick(loop: SocketLoop) {}

    func next() -> WireMessage {
        ready.wait()
        lock.lock()
        defer { lock.unlock() }
        return queue.removeFirst()
    }
}

final class LockedLatencies: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [Double] = []
    func append(_ v: Double) { lock.lock(); storage.append(v); lock.unlock() }
    var values: [Double] { lock.lock(); defer { lock.unlock() }; return storage }
}

private final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func take(below limit: Int) -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard value < limit else { return nil }
        value += 1
        return value - 1
    }
}

/// This binary run as a child with its output in a file; stopped with SIGTERM (SIGKILL after 10 s).
final class ChildProcess {
    let pid: pid_t
    let log: String

    init(_ arguments: [String], log: String) throws {
        self.log = log
        let binary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = ([binary] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        guard posix_spawn(&pid, binary, &actions, nil, argv, environ) == 0 else { throw CommandError("cannot start \(binary)") }
        self.pid = pid
    }

    func waitForLine(prefix: String, timeout: Double) throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            if let line = text.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) { return String(line) }
            usleep(100_000)
        }
        throw CommandError("no line starting with \(prefix) in \(log) within \(Int(timeout)) s")
    }

    func stop() {
        kill(pid, SIGTERM)
        var status: Int32 = 0
        for _ in 0..<500 {
            if waitpid(pid, &status, WNOHANG) == pid { return }
            usleep(20_000)
        }
        kill(pid, SIGKILL)
        waitpid(pid, &status, 0)
    }
}
