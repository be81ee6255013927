// `accm cluster up` and `accm cluster status`.

import ACCM
import ArgumentParser
import Cluster
import Dispatch
import Foundation
import Transport

#if canImport(Glibc)
import Glibc
#endif

struct ClusterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster", abstract: "Run a cluster on this machine, or show a running one.",
        subcommands: [ClusterUp.self, ClusterStatus.self])
}

/// What `accm cluster up` starts (Deploy/cluster.json; flags override).
struct ClusterPlan: Decodable {
    var model: String?
    var workers: [String: Int]?
    var threads: Int?
    var maxBatch: Int?

    enum CodingKeys: String, CodingKey {
        case model, workers, threads
        case maxBatch = "max_batch"
    }
}

struct ClusterUp: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Start a coordinator and workers of every stage as child processes on loopback, supervised; "
            + "prints the client address once every stage has a live worker; Ctrl-C stops them all.")

    @Option(help: "Cluster file: {\"model\", \"workers\": {\"vision\": N, …}, \"threads\", \"max_batch\"}.")
    var config: String?

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "Vision workers.") var vision: Int?
    @Option(help: "Caption workers.") var caption: Int?
    @Option(help: "Selector workers.") var selector: Int?
    @Option(help: "Decoder workers.") var decoder: Int?

    @Option(help: "Threads per worker.") var threads: Int?
    @Option(help: "Most tasks a worker computes together.") var maxBatch: Int?

    @Option(help: "The coordinator's heartbeat interval, in milliseconds.") var heartbeatMs = 1000
    @Option(help: "Heartbeat intervals a worker may stay silent before its work goes to another replica.") var liveness = 4
    @Option(help: "Requests waiting for one stage before new ones are refused as overloaded.") var maxQueued = 256
    @Option(help: "Deadline of a request that sets none, in milliseconds.") var defaultDeadlineMs = 120_000

    @Option(help: "Port the workers connect to (0: a free one).") var workersPort = 0
    @Option(help: "Port the clients connect to (0: a free one).") var clientsPort = 0

    func run() throws {
        var plan = ClusterPlan()
        if let config {
            plan = try JSONDecoder().decode(ClusterPlan.self, from: Data(contentsOf: URL(fileURLWithPath: config)))
        }
        var counts: [Stage: Int] = [:]
        for stage in Stage.allCases {
            let flag = [Stage.vision: vision, .caption: caption, .selector: selector, .decoder: decoder][stage] ?? nil
            counts[stage] = flag ?? plan.workers?[stage.rawValue] ?? 1
            guard (0...64).contains(counts[stage]!) else { throw ValidationError("\(stage.rawValue) workers must be in 0...64") }
        }
        let model = modelOptions.model ?? plan.model ?? DefaultPaths.model
        let threads = threads ?? plan.threads ?? 1
        let maxBatch = maxBatch ?? plan.maxBatch ?? 8
        let workersEndpoint = "tcp://127.0.0.1:\(workersPort == 0 ? try freePort() : workersPort)"
        let clientsEndpoint = "tcp://127.0.0.1:\(clientsPort == 0 ? try freePort() : clientsPort)"
        let me = getpid()

        let supervisor = Supervisor()
        supervisor.start(name: "coordinator", arguments: [
            "coordinator", "--workers", workersEndpoint, "--clients", clientsEndpoint, "--parent-pid", "\(me)",
            "--heartbeat-ms", "\(heartbeatMs)", "--liveness", "\(liveness)", "--max-queued", "\(maxQueued)",
            "--default-deadline-ms", "\(defaultDeadlineMs)",
        ])
        for stage in Stage.allCases {
            for i in 0..<counts[stage]! {
                var arguments = ["worker", "--stage", stage.rawValue, "--model", model, "--coordinator", workersEndpoint,
                                 "--threads", "\(threads)", "--max-batch", "\(maxBatch)", "--parent-pid", "\(me)"]
                if modelOptions.parseSpecial { arguments.append("--parse-special") }
                for setting in modelOptions.weights { arguments += ["--weights", setting] }
                if let kvCache = modelOptions.kvCache { arguments += ["--kv-cache", kvCache.rawValue] }
                supervisor.start(name: "\(stage.rawValue)-\(i)", arguments: arguments)
            }
        }
        let done = DispatchSemaphore(value: 0)
        let lifetime = ProcessLifetime.onTermination(parent: nil) { done.signal() }
        defer { withExtendedLifetime(lifetime) {} }

        // Ready once every stage that has workers has a live one.
        let client = try ClusterClient(context: ZeroMQContext(), coordinator: clientsEndpoint)
        let wanted = Set(Stage.allCases.filter { counts[$0]! > 0 })
        var announced = false
        while done.wait(timeout: .now() + 0.25) == .timedOut {
            supervisor.reapAndRestart()
            if !announced, let status = try? client.status(timeout: .seconds(1)) {
                let live = Set(status.workers.compactMap { Stage(wire: $0.stage) })
                if wanted.isSubset(of: live) {
                    print("cluster: ready; clients connect to \(clientsEndpoint)")
                    print(clientsEndpoint)
                    flushStandardOutput()
                    announced = true
                }
            }
        }
        client.close()
        supervisor.stopAll()
    }

    /// A TCP port on 127.0.0.1 that nothing listens on now.
    private func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Bool in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else { throw CommandError("cannot find a free port on 127.0.0.1") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// Child processes, restarted with backoff when they exit.
final class Supervisor {
    struct Child {
        var name: String
        var arguments: [String]
        var pid: pid_t
        var started: Date
        var restarts: Int
        /// Exits in a row that came soon after a start (they set the backoff).
        var quickExits: Int
        var nextStart: Date?
    }
    private var children: [Child] = []
    private let binary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
    /// A child that ran this long before exiting is restarted after the shortest delay again.
    private let steadyRun: TimeInterval = 10

    func start(name: String, arguments: [String]) {
        children.append(Child(name: name, arguments: arguments, pid: spawn(arguments), started: Date(), restarts: 0,
                              quickExits: 0, nextStart: nil))
    }

    private func spawn(_ arguments: [String]) -> pid_t {
        let argv = ([binary] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        return posix_spawn(&pid, binary, nil, nil, argv, environ) == 0 ? pid : -1
    }

    /// Notices children that exited and starts them again: after 0.5 s, then 1, 2, 4, … up to 30 s while they
    /// keep exiting soon after starting (the count starts over once one runs for 10 s). A worker is told how
    /// many times its slot was restarted (`accm cluster status` shows it).
    func reapAndRestart() {
        for i in children.indices {
            if children[i].pid > 0 {
                var status: Int32 = 0
                guard waitpid(children[i].pid, &status, WNOHANG) == children[i].pid else { continue }
                let ran = Date().timeIntervalSince(children[i].started)
                children[i].quickExits = ran >= steadyRun ? 0 : children[i].quickExits + 1
                let delay = min(30.0, 0.5 * pow(2.0, Double(max(0, children[i].quickExits - 1))))
                let how = status & 0x7F == 0 ? "exited with status \((status >> 8) & 0xFF)" : "was killed by signal \(status & 0x7F)"
                printError("cluster: \(children[i].name) (pid \(children[i].pid)) \(how) after \(String(format: "%.1f", ran)) s; "
                    + "restart \(children[i].restarts + 1) in \(String(format: "%.1f", delay)) s")
                children[i].pid = 0
                children[i].nextStart = Date().addingTimeInterval(delay)
            } else if let next = children[i].nextStart, next <= Date() {
                children[i].restarts += 1
                var arguments = children[i].arguments
                if arguments.first == "worker" { arguments += ["--restarts", "\(children[i].restarts)"] }
                children[i].pid = spawn(arguments)
                children[i].started = Date()
                children[i].nextStart = nil
                printError("cluster: restarted \(children[i].name) as pid \(children[i].pid)")
            }
        }
    }

    /// SIGTERM to every child, then SIGKILL to any still there after 5 s.
    func stopAll() {
        let live = children.map(\.pid).filter { $0 > 0 }
        for pid in live { kill(pid, SIGTERM) }
        let deadline = Date().addingTimeInterval(5)
        var waiting = Set(live)
        while !waiting.isEmpty && Date() < deadline {
            for pid in waiting {
                var status: Int32 = 0
                if waitpid(pid, &status, WNOHANG) == pid { waiting.remove(pid) }
            }
            usleep(20_000)
        }
        for pid in waiting {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
    }
}

struct ClusterStatus: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show every worker of a running cluster and the queue of each stage.")

    @Option(help: "The coordinator's client endpoint.")
    var coordinator = "tcp://127.0.0.1:5556"

    @OptionGroup var curve: CurveClientOptions

    func run() throws {
        let client = try ClusterClient(context: ZeroMQContext(), coordinator: coordinator, options: try curve.clientOptions())
        defer { client.close() }
        let status = try client.status()
        print("model \(status.modelIdentity.isEmpty ? "(none registered)" : status.modelIdentity)")
        print("coordinator pid \(status.processID), CURVE \(status.curve ? "on" : "off"); requests: \(status.inFlight) in flight, "
            + "\(status.answered) answered, \(status.failed) failed (\(status.expired) past their deadline); "
            + "\(status.redispatched) task(s) sent to another replica")
        print("stage     worker                        address          threads batch credits in-flight   done stopped restarts  items/s  heartbeat")
        for w in status.workers {
            let stage = (Stage(wire: w.stage)?.rawValue ?? "?").padding(toLength: 9, withPad: " ", startingAt: 0)
            let id = w.workerID.padding(toLength: 29, withPad: " ", startingAt: 0)
            let address = w.address.padding(toLength: 16, withPad: " ", startingAt: 0)
            print("\(stage) \(id) \(address) " + String(format: "%7d %5d %7d %9d %6llu %7llu %8d %8.1f  %d ms ago", w.threads,
                                                         w.maxBatch, w.credits, w.inFlight, w.completed, w.stopped, w.restarts,
                                                         w.itemsPerSecond, Int(w.lastHeartbeatMsAgo)))
            print("          pid \(w.processID), model \(w.modelPath)" + (w.keyName.isEmpty ? "" : ", key \(w.keyName)"))
        }
        print("dropped messages (malformed, stale or unroutable): \(status.droppedMessages); refused peers (CURVE): \(status.refusedPeers)")
        print("queues: " + status.queues.map { "\(Stage(wire: $0.stage)?.rawValue ?? "?") \($0.waiting)" }.joined(separator: ", "))
    }
}
