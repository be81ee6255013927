import ACCM
import Cluster
import Foundation
import Transport
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// `accm cluster up` as a child process of the test: started, waited for until it prints its client
/// endpoint, and stopped (SIGTERM, then SIGKILL after 10 s) when the harness goes.
final class ClusterUnderTest: @unchecked Sendable {
    private let process: BackgroundProcess
    let clients: String

    init(_ arguments: [String] = [], timeout: Double = 60) throws {
        let model = Accm.root.appendingPathComponent("Models/accm-world").path
        process = try BackgroundProcess(["cluster", "up", "--model", model, "--threads", "1"] + arguments)
        let deadline = Date().addingTimeInterval(timeout)
        var endpoint: String?
        while endpoint == nil && Date() < deadline && process.exitStatus == nil {
            usleep(100_000)
            endpoint = process.output.split(separator: "\n").first { $0.hasPrefix("tcp://") }.map(String.init)
        }
        guard let endpoint else {
            process.stop()
            throw NSError(domain: "cluster up", code: 2, userInfo: [NSLocalizedDescriptionKey:
                "no client endpoint within \(timeout) s: " + process.output])
        }
        clients = endpoint
    }

    var pid: pid_t { process.pid }
    var output: String { process.output }

    /// Whether the supervisor is still running.
    var isRunning: Bool { process.exitStatus == nil }
}

/// Requests the cluster tests send, over the shipped model and its committed test split.
enum ClusterWorkload {
    static let model = Accm.root.appendingPathComponent("Models/accm-world").path
    static let split = Accm.root.appendingPathComponent("Training/test")

    /// Requests over the shipped model: every pruner, with and without a caption, several budgets.
    static func requests(count: Int) throws -> [ACCMRequest] {
        let lines = try String(contentsOf: split.appendingPathComponent("test.jsonl"), encoding: .utf8)
            .split(separator: "\n").prefix(count)
        let pruners: [(PruningMethod, Bool)] = [
            (.none, false), (.random(seed: 3), false), (.uniform, false), (.classAttention, false),
            (.textGuided(.mostSimilar), false), (.accm(ranking: .mostSimilar, cap: .byScore, textPicks: nil), false),
            (.accm(ranking: .mostSimilar, cap: .byScore, textPicks: nil), true),
            (.accm(ranking: .leastSimilar, cap: .highestIndex, textPicks: nil), true),
        ]
        return try lines.enumerated().map { i, line in
            let item = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            let image = [UInt8](try Data(contentsOf: split.appendingPathComponent(item["image"] as! String)))
            let (pruning, compensate) = pruners[i % pruners.count]
            return ACCMRequest(image: .encoded(image), question: item["question"] as! String, budget: [4, 8, 16][i % 3],
                               pruning: pruning, compensate: compensate, generation: GenerationOptions(maxNewTokens: 6))
        }
    }
}

/// A long-running `accm` process of a test (a coordinator, a worker), its output in a log file; stopped
/// (SIGTERM, then SIGKILL after 10 s) when it goes.
final class BackgroundProcess: @unchecked Sendable {
    let pid: pid_t
    let log: String
    private let scratch: ScratchDirectory

    /// Starts `executable arguments…` (default: the accm binary), optionally wrapped (`ip netns exec NAME`).
    init(_ arguments: [String], executable: String? = nil) throws {
        scratch = try ScratchDirectory()
        log = scratch.path("process.log")
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let binary = executable ?? Accm.binary
        let argv = ([binary] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        guard posix_spawn(&pid, binary, &actions, nil, argv, environ) == 0 else { throw NSError(domain: "posix_spawn", code: 1) }
        self.pid = pid
    }

    deinit { stop() }

    var output: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

    /// Waits until the output contains `text`; false after `timeout` seconds or once the process exited.
    func waitFor(_ text: String, timeout: Double = 30) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if output.contains(text) { return true }
            if exitStatus != nil { return output.contains(text) }
            usleep(50_000)
        }
        return false
    }

    private var reaped: Int32?
    /// The exit status once it exited (nil while it runs).
    var exitStatus: Int32? {
        if let reaped { return reaped }
        var status: Int32 = 0
        guard waitpid(pid, &status, WNOHANG) == pid else { return nil }
        reaped = status & 0x7F == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        return reaped
    }

    func stop() {
        guard exitStatus == nil else { return }
        kill(pid, SIGTERM)
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if exitStatus != nil { return }
            usleep(20_000)
        }
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        reaped = 137
    }
}

/// A TCP port on 127.0.0.1 that nothing listens on now.
func freeLoopbackPort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}
