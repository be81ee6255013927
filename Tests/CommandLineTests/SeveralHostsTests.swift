import ACCM
import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// The cluster across hosts: every process in its own network namespace with its own address on a bridge
/// (veth pairs into a hub namespace), CURVE on because the coordinator binds a non-loopback address. Traffic
/// goes only to the namespaces' own 10.201.0.0/24 addresses. Needs root (CI runs as root); skipped, saying
/// why, where namespaces cannot be made.
final class SeveralHostsTests: XCTestCase {
    /// Network namespaces made for one test, deleted (with their links) when it goes.
    final class Network {
        let prefix = "accm\(getpid() % 100_000)"
        private(set) var namespaces: [String] = []
        let hub: String

        init() throws {
            hub = prefix + "hub"
            try add(hub)
            try ip(["-n", hub, "link", "add", "br0", "type", "bridge"])
            try ip(["-n", hub, "link", "set", "br0", "up"])
        }

        deinit { for name in namespaces.reversed() { _ = try? Accm.run(["netns", "del", name], executable: "/usr/sbin/ip", timeout: 10) } }

        @discardableResult
        func ip(_ arguments: [String]) throws -> String {
            let result = try Accm.run(arguments, executable: "/usr/sbin/ip", timeout: 10)
            guard result.status == 0 else {
                throw NSError(domain: "ip", code: 1, userInfo: [NSLocalizedDescriptionKey:
                    "ip \(arguments.joined(separator: " ")): \(result.stderr)"])
            }
            return result.stdout
        }

        private func add(_ name: String) throws {
            try ip(["netns", "add", name])
            namespaces.append(name)
            try ip(["-n", name, "link", "set", "lo", "up"])
        }

        /// A host: a namespace whose `eth0` is one end of a veth pair bridged in the hub, at 10.201.0.`octet`.
        func host(_ role: String, octet: Int) throws -> String {
            let name = prefix + role
            try add(name)
            let outside = "v\(prefix.suffix(5))\(octet)"
            try ip(["link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", name])
            try ip(["link", "set", outside, "netns", hub])
            try ip(["-n", hub, "link", "set", outside, "master", "br0"])
            try ip(["-n", hub, "link", "set", outside, "up"])
            try ip(["-n", name, "addr", "add", "10.201.0.\(octet)/24", "dev", "eth0"])
            try ip(["-n", name, "link", "set", "eth0", "up"])
            return name
        }
    }

    func testStagesOnSeparateHostsAnswerOverCURVEAndALinkThatGoesDownAndUpActsLikeAFrozenWorker() throws {
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip"),
              (try? Accm.run(["netns", "add", "accmprobe\(getpid())"], executable: "/usr/sbin/ip", timeout: 10))?.status == 0
        else {
            throw XCTSkip("network namespaces cannot be made here (needs root and iproute2): the several-hosts test is skipped")
        }
        _ = try Accm.run(["netns", "del", "accmprobe\(getpid())"], executable: "/usr/sbin/ip", timeout: 10)
        let network = try Network()
        let roles: [(String, Int)] = [("coord", 1), ("vision", 2), ("caption", 3), ("selector", 4), ("dec1", 5), ("dec2", 6),
                                      ("client", 9)]
        var hosts: [String: String] = [:]
        for (role, octet) in roles { hosts[role] = try network.host(role, octet: octet) }

        let keys = try ScratchDirectory()
        for name in ["coordinator", "worker", "client"] {
            XCTAssertEqual(try Accm.run(["keygen", name, "--dir", keys.url.path], timeout: 30).status, 0)
        }
        let workersAllowed = keys.path("worker.key"), clientsAllowed = keys.path("client.key")
        func inside(_ role: String, _ arguments: [String]) -> [String] { ["netns", "exec", hosts[role]!, Accm.binary] + arguments }
        let workers = "tcp://10.201.0.1:5555", clients = "tcp://10.201.0.1:5556"
        let coordinator = try BackgroundProcess(inside("coord", [
            "coordinator", "--workers", workers, "--clients", clients, "--heartbeat-ms", "250", "--liveness", "4",
            "--curve-secret", keys.path("coordinator.key_secret"), "--allow-workers", workersAllowed,
            "--allow-clients", clientsAllowed,
        ]), executable: "/usr/sbin/ip")
        defer { coordinator.stop() }
        XCTAssertTrue(coordinator.waitFor("CURVE on"), coordinator.output)
        let curve = ["--curve-secret", keys.path("worker.key_secret"), "--coordinator-key", keys.path("coordinator.key")]
        let placement: [(String, String)] = [("vision", "vision"), ("caption", "caption"), ("selector", "selector"),
                                             ("dec1", "decoder"), ("dec2", "decoder")]
        let stageWorkers = try placement.map { role, stage in
            try BackgroundProcess(inside(role, ["worker", "--stage", stage, "--model", ClusterWorkload.model,
                                                "--coordinator", workers, "--threads", "1"] + curve), executable: "/usr/sbin/ip")
        }
        defer { stageWorkers.forEach { $0.stop() } }
        let clientCurve = ["--curve-secret", keys.path("client.key_secret"), "--coordinator-key", keys.path("coordinator.key")]

        func status() throws -> String {
            try Accm.run(inside("client", ["cluster", "status", "--coordinator", clients] + clientCurve),
                         executable: "/usr/sbin/ip", timeout: 30).stdout
        }
        func workerLines(_ text: String) -> [Substring] {
            text.split(separator: "\n").filter { line in ["vision ", "caption ", "selector ", "decoder "].contains { line.hasPrefix($0) } }
        }
        func waitForWorkers(_ count: Int, timeout: Double) throws -> String {
            let deadline = Date().addingTimeInterval(timeout)
            var text = try status()
            while workerLines(text).count != count && Date() < deadline {
                usleep(250_000)
                text = try status()
            }
            return text
        }
        let ready = try waitForWorkers(5, timeout: 60)
        XCTAssertEqual(workerLines(ready).count, 5, ready + coordinator.output)
        for octet in 2...6 { XCTAssertTrue(ready.contains("10.201.0.\(octet) "), "a worker at 10.201.0.\(octet): \(ready)") }

        let pipeline = try ACCMPipeline.load(directory: ClusterWorkload.model)
        let image = ClusterWorkload.split.appendingPathComponent("images/00003.png").path
        let questions = ["What color is the cross?", "How many shapes are there?", "Is there a red square?"]
        func ask(_ question: String) throws -> String? {
            let result = try Accm.run(inside("client", ["ask", "--coordinator", clients, "--image", image, "--keep", "4",
                                                        "--max-tokens", "6", "--json", question] + clientCurve),
                                      executable: "/usr/sbin/ip", timeout: 60)
            guard result.status == 0, let object = try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
            else { XCTFail("ask \(question): \(result.stdout) \(result.stderr)"); return nil }
            return object["answer"] as? String
        }
        func expected(_ question: String) throws -> String {
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: image)))
            return try pipeline.answer([ACCMRequest(image: .encoded(bytes), question: question, budget: 4,
                                                    pruning: .accm(ranking: .mostSimilar, cap: .byScore, textPicks: nil),
                                                    generation: GenerationOptions(maxNewTokens: 6))])[0].text
        }
        for question in questions { XCTAssertEqual(try ask(question), try expected(question), question) }

        // dec1's link goes down: its heartbeats stop, the coordinator drops it after the liveness window and the
        // other decoder answers; when the link comes back the worker registers again by itself.
        try network.ip(["-n", hosts["dec1"]!, "link", "set", "eth0", "down"])
        let dropped = try waitForWorkers(4, timeout: 15)
        XCTAssertEqual(workerLines(dropped).count, 4, dropped)
        XCTAssertFalse(dropped.contains("10.201.0.5 "), dropped)
        for question in questions { XCTAssertEqual(try ask(question), try expected(question), "during the outage: \(question)") }
        usleep(1_500_000)
        try network.ip(["-n", hosts["dec1"]!, "link", "set", "eth0", "up"])
        let back = try waitForWorkers(5, timeout: 45)
        XCTAssertEqual(workerLines(back).count, 5, back + stageWorkers[3].output)
        XCTAssertTrue(back.contains("10.201.0.5 "), back)
        XCTAssertTrue(coordinator.output.contains("dropped decoder worker"), coordinator.output)
        for question in questions { XCTAssertEqual(try ask(question), try expected(question), "after the outage: \(question)") }
        print("several hosts: 7 namespaces on a bridge, CURVE on; 9 answers equal to the embedded pipeline's; dec1's link "
            + "down and up: dropped, then registered again")
    }
}
