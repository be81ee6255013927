import ACCM
import Cluster
import Foundation
import Transport
import Wire
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// CURVE with allow-lists: only keys on the coordinator's lists register or submit, only the coordinator
/// holding the expected key is talked to, and nothing serves plain TCP beyond loopback by accident.
final class SecurityTests: XCTestCase {
    private let model = ClusterWorkload.model

    /// Keys made by `accm keygen` in a scratch folder.
    private struct Keys {
        let folder: ScratchDirectory
        func secret(_ name: String) -> String { folder.path("\(name).key_secret") }
        func publicFile(_ name: String) -> String { folder.path("\(name).key") }
    }

    private func keygen(_ names: [String]) throws -> Keys {
        let folder = try ScratchDirectory()
        for name in names {
            let made = try Accm.run(["keygen", name, "--dir", folder.url.path], timeout: 30)
            XCTAssertEqual(made.status, 0, made.stderr)
            XCTAssertTrue(made.stdout.contains("public key "), made.stdout)
        }
        return Keys(folder: folder)
    }

    func testKeygenWritesAPublicFileAndAPrivateSecretFileInPyzmqsFormat() throws {
        let keys = try keygen(["node"])
        let attributes = try FileManager.default.attributesOfItem(atPath: keys.secret("node"))
        XCTAssertEqual((attributes[.posixPermissions] as? NSNumber)?.intValue, 0o600)
        let pair = try CurveKeyPair.load(secretFile: keys.secret("node"))
        XCTAssertEqual(try CurveKeyPair.publicKey(fromFileOrLiteral: keys.publicFile("node")), pair.publicKey)
        let publicText = try String(contentsOfFile: keys.publicFile("node"), encoding: .utf8)
        XCTAssertTrue(publicText.contains("public-key = \"\(pair.publicKey)\""))
        XCTAssertFalse(publicText.contains("secret-key"))
        let again = try Accm.run(["keygen", "node", "--dir", keys.folder.url.path], timeout: 30)
        XCTAssertEqual(again.status, 1)
        XCTAssertTrue(again.stderr.contains("not overwriting a key"), again.stderr)
    }

    func testTheCoordinatorRefusesPlainTCPBeyondLoopbackUnlessToldInsecure() throws {
        let result = try Accm.run(["coordinator", "--workers", "tcp://0.0.0.0:\(freeLoopbackPort())",
                                   "--clients", "tcp://127.0.0.1:\(freeLoopbackPort())"], timeout: 30)
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("is not a loopback address"), result.stderr)
        XCTAssertTrue(result.stderr.contains("--insecure"), result.stderr)
        XCTAssertTrue(result.stderr.contains("accm keygen"), result.stderr)
        let half = try Accm.run(["coordinator", "--curve-secret", "x.key_secret"], timeout: 30)
        XCTAssertNotEqual(half.status, 0)
        XCTAssertTrue(half.stderr.contains("go together"), half.stderr)
    }

    func testOnlyAllowListedKeysRegisterOrSubmitAndOnlyTheRightCoordinatorIsTalkedTo() throws {
        let keys = try keygen(["coordinator", "worker", "client", "stranger", "impostor"])
        let allowedWorkers = try ScratchDirectory(), allowedClients = try ScratchDirectory()
        try FileManager.default.copyItem(atPath: keys.publicFile("worker"), toPath: allowedWorkers.path("worker.key"))
        try FileManager.default.copyItem(atPath: keys.publicFile("client"), toPath: allowedClients.path("client.key"))
        let workers = "tcp://127.0.0.1:\(freeLoopbackPort())", clients = "tcp://127.0.0.1:\(freeLoopbackPort())"
        let coordinator = try BackgroundProcess([
            "coordinator", "--workers", workers, "--clients", clients, "--curve-secret", keys.secret("coordinator"),
            "--allow-workers", allowedWorkers.url.path, "--allow-clients", allowedClients.url.path,
        ])
        XCTAssertTrue(coordinator.waitFor("CURVE on (1 worker key(s), 1 client key(s) allowed)"), coordinator.output)
        let stages = try Stage.allCases.map { stage in
            try BackgroundProcess(["worker", "--stage", stage.rawValue, "--model", model, "--coordinator", workers,
                                   "--threads", "1", "--curve-secret", keys.secret("worker"),
                                   "--coordinator-key", keys.publicFile("coordinator")])
        }
        defer { stages.forEach { $0.stop() } }
        let context = ZeroMQContext()
        let coordinatorKey = try CurveKeyPair.publicKey(fromFileOrLiteral: keys.publicFile("coordinator"))
        func client(_ name: String, server: String = coordinatorKey) throws -> ClusterClient {
            try ClusterClient(context: context, coordinator: clients, options: ClusterClientOptions(
                curve: (try CurveKeyPair.load(secretFile: keys.secret(name)), server), lostAfter: .seconds(3)))
        }
        let trusted = try client("client")
        defer { trusted.close() }
        let deadline = Date().addingTimeInterval(30)
        var status = try trusted.status()
        while status.workers.count < 4 && Date() < deadline {
            usleep(200_000)
            status = try trusted.status()
        }
        XCTAssertEqual(status.workers.count, 4, coordinator.output)
        XCTAssertTrue(status.curve)
        XCTAssertEqual(Set(status.workers.map(\.keyName)), ["worker"], "each worker is known by its key's name")
        let request = try ClusterWorkload.requests(count: 7)[6]  // ACCM with a caption: every stage
        XCTAssertFalse(try trusted.answer(request, timeout: .seconds(30)).text.isEmpty)

        // A worker whose key is not on the list: refused at the handshake, and it says so and exits.
        let outsider = try Accm.run(["worker", "--stage", "decoder", "--model", model, "--coordinator", workers, "--threads", "1",
                                     "--curve-secret", keys.secret("stranger"), "--coordinator-key", keys.publicFile("coordinator")],
                                    timeout: 60)
        XCTAssertFalse(outsider.timedOut)
        XCTAssertEqual(outsider.status, 1, outsider.stderr)
        XCTAssertTrue(outsider.stderr.contains("refused this key"), outsider.stderr)
        // A client whose key is not on the list cannot submit.
        let stranger = try client("stranger")
        defer { stranger.close() }
        XCTAssertThrowsError(try stranger.answer(request, timeout: .seconds(10))) { error in
            XCTAssertEqual((error as? StageError)?.code, .unauthenticated, "\(error)")
            XCTAssertTrue("\(error)".contains("not on the server's allow-list"), "\(error)")
        }
        // A client expecting another coordinator's key cannot connect (nor be fooled by this one).
        let misled = try client("client", server: try CurveKeyPair.publicKey(fromFileOrLiteral: keys.publicFile("impostor")))
        defer { misled.close() }
        XCTAssertThrowsError(try misled.answer(request, timeout: .seconds(10))) { error in
            XCTAssertEqual((error as? StageError)?.code, .unauthenticated, "\(error)")
            XCTAssertTrue("\(error)".contains("public key is not the one configured"), "\(error)")
        }
        // A plain-TCP client gets nowhere either.
        let plain = try ClusterClient(context: context, coordinator: clients, options: ClusterClientOptions(lostAfter: .seconds(2)))
        defer { plain.close() }
        XCTAssertThrowsError(try plain.answer(request, timeout: .seconds(10))) { error in
            XCTAssertEqual((error as? StageError)?.code, .coordinatorLost, "\(error)")
        }

        let after = try trusted.status()
        XCTAssertEqual(after.workers.count, 4, "the refused worker never registered")
        XCTAssertEqual(after.answered, 1, "only the trusted client's request was answered")
        XCTAssertGreaterThanOrEqual(after.refusedPeers, 2, "the stranger worker and client were refused and counted")
        XCTAssertTrue(coordinator.output.contains("is not on the workers allow-list"), coordinator.output)
        XCTAssertTrue(coordinator.output.contains("is not on the clients allow-list"), coordinator.output)
    }
}
