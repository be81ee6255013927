import ACCM
import Cluster
import Foundation
import Transport
import Wire
import XCTest

/// The cluster (a coordinator and a worker per stage, separate processes on loopback) answers as the
/// embedded pipeline does, token for token, and stays up through malformed messages at its sockets.
final class ClusterTests: XCTestCase {
    private static let model = Accm.root.appendingPathComponent("Models/accm-world").path
    private static let split = Accm.root.appendingPathComponent("Training/test")

    private func requests(count: Int) throws -> [ACCMRequest] { try ClusterWorkload.requests(count: count) }

    func testTheClusterAnswersLikeTheEmbeddedPipelineFromFourConcurrentClients() throws {
        let cluster = try ClusterUnderTest(["--decoder", "2"])
        let requests = try requests(count: 56)
        let pipeline = try ACCMPipeline.load(directory: Self.model)
        let expected = try requests.map { try pipeline.answer([$0])[0] }

        let context = ZeroMQContext()
        let answers = LockedArray<(Int, Result<ACCMAnswer, Error>, String)>()
        let group = DispatchGroup()
        for client in 0..<4 {
            group.enter()
            Thread {
                defer { group.leave() }
                do {
                    let connection = try ClusterClient(context: context, coordinator: cluster.clients)
                    defer { connection.close() }
                    for i in stride(from: client, to: requests.count, by: 4) {
                        let streamed = LockedArray<String>()
                        let result = Result { try connection.answer(requests[i], timeout: .seconds(60)) { streamed.append($0) } }
                        answers.append((i, result, streamed.values.joined()))
                    }
                } catch {
                    answers.append((-1, .failure(error), ""))
                }
            }.start()
        }
        group.wait()
        let all = answers.values
        XCTAssertEqual(all.count, requests.count, "\(all.filter { $0.0 < 0 })")
        var compared = 0
        for (i, result, streamed) in all where i >= 0 {
            guard case .success(let answer) = result else { XCTFail("request \(i): \(result)"); continue }
            let reference = expected[i]
            XCTAssertEqual(answer.tokens, reference.tokens, "request \(i)")
            XCTAssertEqual(answer.text, reference.text, "request \(i)")
            XCTAssertEqual(streamed, answer.text, "request \(i): the streamed text is the answer, once")
            XCTAssertEqual(answer.keptIndices, reference.keptIndices, "request \(i)")
            XCTAssertEqual(answer.caption, reference.caption, "request \(i)")
            XCTAssertEqual(answer.candidates.map(\.text), reference.candidates.map(\.text), "request \(i)")
            XCTAssertEqual(answer.finishReason, reference.finishReason, "request \(i)")
            XCTAssertEqual(answer.promptTokens, reference.promptTokens, "request \(i)")
            XCTAssertEqual(answer.totalFLOPs, reference.totalFLOPs, accuracy: reference.totalFLOPs * 1e-9, "request \(i)")
            XCTAssertEqual(answer.unprunedFLOPs, reference.unprunedFLOPs, accuracy: reference.unprunedFLOPs * 1e-9, "request \(i)")
            XCTAssertEqual(Set(answer.flops.keys), Set(reference.flops.keys), "request \(i)")
            compared += 1
        }
        XCTAssertEqual(compared, 56)

        // Both decoder replicas took work.
        let client = try ClusterClient(context: context, coordinator: cluster.clients)
        defer { client.close() }
        usleep(1_200_000)  // a heartbeat carries the counts
        let status = try client.status()
        XCTAssertEqual(status.workers.count, 5)
        let decoders = status.workers.filter { $0.stage == .decoder }
        XCTAssertEqual(decoders.count, 2)
        XCTAssertTrue(decoders.allSatisfy { $0.completed > 0 }, "\(decoders.map(\.completed))")
        XCTAssertEqual(status.workers.filter { $0.stage == .vision }.map(\.completed), [56])
    }

    func testABadRequestGetsATypedErrorAndTheOthersAreAnswered() throws {
        let cluster = try ClusterUnderTest()
        let client = try ClusterClient(context: ZeroMQContext(), coordinator: cluster.clients)
        defer { client.close() }
        var good = try requests(count: 1)[0]
        good.pruning = .accm(ranking: .mostSimilar, cap: .byScore, textPicks: nil)
        good.compensate = true
        var cases: [(ACCMRequest, StageErrorCode, String)] = []
        var r = good
        r.question = "   "
        cases.append((r, .invalidRequest, "question"))
        r = good
        r.budget = 65
        cases.append((r, .invalidRequest, "budget"))
        r = good
        r.image = .encoded(Array("not an image".utf8))
        cases.append((r, .invalidRequest, "image"))
        r = good
        r.generation.maxNewTokens = 1_000_000
        cases.append((r, .invalidRequest, "max_new_tokens"))
        r = good
        r.question = String(repeating: "red ", count: 40)
        cases.append((r, .invalidRequest, "question"))
        for (request, code, field) in cases {
            XCTAssertThrowsError(try client.answer(request, timeout: .seconds(30))) { error in
                XCTAssertEqual((error as? StageError)?.code, code, "\(error)")
                XCTAssertEqual((error as? StageError)?.field, field, "\(error)")
            }
            XCTAssertFalse(try client.answer(good, timeout: .seconds(30)).text.isEmpty)
        }
    }

    func testMalformedMessagesAtEverySocketAreAnsweredWithTypedErrorsAndNothingElseBreaks() throws {
        let cluster = try ClusterUnderTest()
        let context = ZeroMQContext()
        let client = try ClusterClient(context: context, coordinator: cluster.clients)
        defer { client.close() }
        let good = try requests(count: 1)[0]
        XCTAssertFalse(try client.answer(good, timeout: .seconds(30)).text.isEmpty)
        let workersEndpoint = try XCTUnwrap(
            cluster.output.split(separator: "\n").first { $0.hasPrefix("coordinator:") }?
                .split(separator: " ").dropFirst(3).first.map { String($0).replacingOccurrences(of: ",", with: "") })

        var rng = SystemRandomNumberGenerator()
        func junk(_ n: Int) -> Frame { Frame(copying: (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }) }
        var submit = WireMessage.submit(good, requestID: "probe").frames()
        var oversized = Envelope.make(requestID: "big")
        oversized.submit = Accm_V1_Submit()
        var descriptor = Accm_V1_TensorDescriptor()
        (descriptor.name, descriptor.dtype, descriptor.shape, descriptor.byteLength, descriptor.frame) = ("image", .u8, [4], 4, 1)
        oversized.tensors = [descriptor]
        oversized.schemaVersion = 1
        let mismatched = try Frame(copying: oversized.serializedBytes() as [UInt8])
        var future = Envelope.make(requestID: "future")
        future.schemaVersion = 7
        let malformed: [[Frame]] = [
            [junk(40)],                                       // not an envelope
            [junk(3), junk(10), junk(10)],                    // random frames
            Array(submit.prefix(1)),                          // truncated: the image frame is missing
            submit + [junk(8)],                               // an extra frame
            [mismatched, junk(9)],                            // byte length ≠ the descriptor's
            [try Frame(copying: future.serializedBytes() as [UInt8])],  // unknown schema version
            [Frame(copying: [])],                             // an empty frame
            (0..<40).map { _ in junk(2) },                    // too many frames
        ]
        submit.removeAll()
        let probe = ProbeHandler()
        for endpoint in [cluster.clients, workersEndpoint] {
            let socket = try SocketThread(context: context, sockets: [SocketSpec(kind: .dealer, endpoint: endpoint, bind: false,
                                                                                  routingID: "probe-\(UUID().uuidString)")],
                                          handler: probe)
            for frames in malformed { socket.send(frames, on: 0) }
            let deadline = Date().addingTimeInterval(10)
            while probe.errors.values.count < malformed.count && Date() < deadline { usleep(50_000) }
            socket.stop()
            let codes = probe.errors.values
            XCTAssertEqual(codes.count, malformed.count, "\(endpoint): typed errors for every malformed message: \(codes)")
            XCTAssertTrue(codes.allSatisfy { [.invalidMessage, .unsupportedSchema, .notRegistered].contains($0) }, "\(codes)")
            probe.errors.removeAll()
        }
        // A frame over the coordinator's 64 MiB limit (ZMQ_MAXMSGSIZE) makes libzmq drop that connection; the
        // coordinator stays up.
        let big = try SocketThread(context: context, sockets: [SocketSpec(kind: .dealer, endpoint: cluster.clients, bind: false,
                                                                           routingID: "probe-big", maxFrameBytes: 128 << 20)],
                                   handler: probe)
        big.send([Frame(copying: try Envelope.make(requestID: "big").serializedBytes() as [UInt8]),
                  Frame(copying: [UInt8](repeating: 7, count: 65 << 20))], on: 0)
        usleep(500_000)
        big.stop()
        XCTAssertTrue(cluster.isRunning)
        let status = try client.status()
        XCTAssertEqual(status.workers.count, 4)
        XCTAssertGreaterThanOrEqual(status.droppedMessages, 16, "every malformed message at both sockets is counted")
        XCTAssertFalse(try client.answer(good, timeout: .seconds(30)).text.isEmpty, "the next good request is answered")
    }
}

extension ClusterTests {
    func testAWorkerOfAnotherModelIsRefusedWithAClearError() throws {
        let cluster = try ClusterUnderTest()
        let workers = try XCTUnwrap(
            cluster.output.split(separator: "\n").first { $0.hasPrefix("coordinator:") }?
                .split(separator: " ").dropFirst(3).first.map { String($0).replacingOccurrences(of: ",", with: "") })
        let other = Accm.root.appendingPathComponent("Tests/Fixtures/accm/model").path
        let result = try Accm.run(["worker", "--stage", "caption", "--model", other, "--coordinator", workers, "--threads", "1"],
                                  timeout: 60)
        XCTAssertFalse(result.timedOut)
        XCTAssertEqual(result.status, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains("this cluster serves model"), result.stderr)
        XCTAssertTrue(result.stderr.contains(other), result.stderr)
        let client = try ClusterClient(context: ZeroMQContext(), coordinator: cluster.clients)
        defer { client.close() }
        XCTAssertEqual(try client.status().workers.count, 4, "the refused worker was never registered")
    }
}

extension ClusterTests {
    func testAReplicaInAnotherWeightOrKVCacheFormatThanItsStagesOthersIsRefused() throws {
        let cluster = try ClusterUnderTest(["--vision", "0", "--caption", "0", "--selector", "0"])
        let workers = try XCTUnwrap(
            cluster.output.split(separator: "\n").first { $0.hasPrefix("coordinator:") }?
                .split(separator: " ").dropFirst(3).first.map { String($0).replacingOccurrences(of: ",", with: "") })
        // A decoder replica that computes otherwise than the running one is refused, naming both.
        for (options, computes) in [(["--weights", "llava=int8"], "llava=int8,kv_cache=f32"),
                                    (["--kv-cache", "f16"], "llava=stored,kv_cache=f16")] {
            let result = try Accm.run(["worker", "--stage", "decoder", "--model", ClusterWorkload.model] + options
                                      + ["--coordinator", workers, "--threads", "1"], timeout: 60)
            XCTAssertFalse(result.timedOut)
            XCTAssertEqual(result.status, 1, result.stderr)
            XCTAssertTrue(result.stderr.contains("replicas compute with llava=stored,kv_cache=f32; this worker with \(computes)"),
                          result.stderr)
        }
        // Another stage may use another format: a vision replica in int8 joins beside the stored-weights decoder.
        let vision = try BackgroundProcess(["worker", "--stage", "vision", "--model", ClusterWorkload.model, "--weights",
                                            "vision=int8", "--coordinator", workers, "--threads", "1"])
        defer { vision.stop() }
        let client = try ClusterClient(context: ZeroMQContext(), coordinator: cluster.clients)
        defer { client.close() }
        let deadline = Date().addingTimeInterval(30)
        while (try client.status().workers.count) < 2 && Date() < deadline { usleep(200_000) }
        XCTAssertEqual(try client.status().workers.count, 2, vision.output)
    }
}

/// Collects the error codes a probe socket is sent.
private final class ProbeHandler: SocketHandler, @unchecked Sendable {
    let errors = LockedArray<StageErrorCode>()
    func received(_ message: ReceivedFrames, loop: SocketLoop) {
        if let decoded = try? WireMessage.decode(message.frames), let error = decoded.stageError { errors.append(error.code) }
    }
    func tick(loop: SocketLoop) {}
}

/// An array appended to from several threads.
final class LockedArray<Element>: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [Element] = []
    func append(_ element: Element) { lock.lock(); storage.append(element); lock.unlock() }
    func removeAll() { lock.lock(); storage.removeAll(); lock.unlock() }
    var values: [Element] { lock.lock(); defer { lock.unlock() }; return storage }
}

/// The protocol is language-neutral: a client written in C against libprotobuf-c and libzmq
/// (Tests/ConformancePeer) gets the same answer as the Swift client.
final class ConformancePeerTests: XCTestCase {
    func testTheCPeerStreamsTheSameAnswerAsTheSwiftClient() throws {
        let scratch = try ScratchDirectory()
        let out = scratch.path("peer")
        let build = try Accm.run([Accm.root.appendingPathComponent("Tests/ConformancePeer/build.sh").path, out],
                                 executable: "/bin/bash", timeout: 120)
        XCTAssertEqual(build.status, 0, build.stderr)
        let peer = out + "/accm_client"
        let cluster = try ClusterUnderTest()
        let image = Accm.root.appendingPathComponent("Training/test/images/00003.png").path
        let client = try ClusterClient(context: ZeroMQContext(), coordinator: cluster.clients)
        defer { client.close() }
        for (pruner, pruning, caption) in [("accm", PruningMethod.accm(ranking: .mostSimilar, cap: .byScore, textPicks: nil), true),
                                           ("text-guided", .textGuided(.mostSimilar), false), ("none", .none, false)] {
            for question in ["What color is the cross?", "How many shapes are there?", "Is there a red square?"] {
                var arguments = ["--coordinator", cluster.clients, "--image", image, "--keep", "4", "--pruner", pruner,
                                 "--max-tokens", "8"]
                if !caption { arguments.append("--no-caption") }
                let result = try Accm.run(arguments + [question], executable: peer, timeout: 60)
                XCTAssertEqual(result.status, 0, result.stderr)
                let request = ACCMRequest(image: .encoded([UInt8](try Data(contentsOf: URL(fileURLWithPath: image)))),
                                          question: question, budget: 4, pruning: pruning, compensate: caption,
                                          generation: GenerationOptions(maxNewTokens: 8))
                let swift = try client.answer(request, timeout: .seconds(30))
                XCTAssertEqual(result.stdout, swift.text + "\n", "\(pruner): \(question)")
                XCTAssertTrue(result.stderr.contains("tokens: \(swift.tokens.count)"), result.stderr)
            }
        }
        // A request the cluster refuses: the peer prints the typed error and exits 1.
        let refused = try Accm.run(["--coordinator", cluster.clients, "--image", image, "--keep", "0", "What?"],
                                   executable: peer, timeout: 60)
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("(budget)"), refused.stderr)
    }
}

/// The committed generated code matches the .proto files it was made from (Scripts/generate-protos.sh
/// records their digest; `--check`, run by .ci/run, regenerates and compares the code itself).
final class WireSchemaTests: XCTestCase {
    func testTheGeneratedCodeIsNotStaleAgainstTheProtoFiles() throws {
        let recorded = try String(contentsOf: Accm.root.appendingPathComponent("Sources/Wire/Generated/PROTOS.sha256"),
                                  encoding: .utf8)
        let lines = recorded.split(separator: "\n")
        XCTAssertFalse(lines.isEmpty)
        for line in lines {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            let path = Accm.root.appendingPathComponent("Protos/" + parts[1]).path
            let result = try Accm.run([path], executable: "/usr/bin/sha256sum", timeout: 10)
            XCTAssertEqual(result.stdout.split(separator: " ").first.map(String.init), String(parts[0]),
                           "\(parts[1]) changed since Sources/Wire/Generated was made: run bash Scripts/generate-protos.sh")
        }
        let protos = try FileManager.default.contentsOfDirectory(atPath: Accm.root.appendingPathComponent("Protos/accm/v1").path)
            .filter { $0.hasSuffix(".proto") }
        XCTAssertEqual(protos.count, lines.count, "every .proto file is in the digest")
    }
}
