import ACCM
import Cluster
import Foundation
import Tensor
import Transport
import Wire
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// A decoder lost mid-answer is replaced by another replica, and the client sees every character once: the
/// replica answers from the start and the coordinator skips what the client already has (and refuses to splice
/// in text that departs from it). In-process coordinator, scripted fake decoders, so the timing is exact.
final class TakeoverTests: XCTestCase {
    /// A decoder that streams `pieces` of text, one every `interval`, then answers `final` — or, with
    /// `vanishAfter`, closes its socket (as a killed process's is closed) after that many pieces.
    final class ScriptedDecoder: SocketHandler, @unchecked Sendable {
        let pieces: [String]
        let vanishAfter: Int?
        private(set) var thread: SocketThread!
        private let lock = NSLock()
        private var registered = false
        private var tasks: [Envelope] = []
        private var running = true
        private var cancelled: [String] = []
        private var tasksReceived = 0
        var cancels: [String] { lock.lock(); defer { lock.unlock() }; return cancelled }
        var received: Int { lock.lock(); defer { lock.unlock() }; return tasksReceived }

        init(pieces: [String], vanishAfter: Int?, context: ZeroMQContext, endpoint: String, interval: Double = 0.05) throws {
            self.pieces = pieces
            self.vanishAfter = vanishAfter
            thread = try SocketThread(context: context, sockets: [
                SocketSpec(kind: .dealer, endpoint: endpoint, bind: false, routingID: "scripted-\(UUID())"),
            ], tickInterval: .milliseconds(20), handler: self)
            Thread { self.serve(interval: interval) }.start()
        }

        func stop() {
            lock.lock(); running = false; lock.unlock()
            thread.stop()
        }

        private func serve(interval: Double) {
            while true {
                lock.lock()
                let alive = running
                let task = tasks.isEmpty ? nil : tasks.removeFirst()
                lock.unlock()
                guard alive else { return }
                guard let task else { usleep(2_000); continue }
                for (i, piece) in pieces.enumerated() {
                    if let vanishAfter, i == vanishAfter {
                        stop()
                        return
                    }
                    var partial = WireMessage.partial(piece, sequence: UInt64(i), requestID: task.requestID)
                    partial.envelope.stage = task.stage
                    partial.envelope.attempt = task.attempt
                    thread.send(partial.frames(), on: 0)
                    usleep(useconds_t(interval * 1e6))
                }
                let reply = Envelope.make(requestID: task.requestID, stage: .decoder, attempt: task.attempt)
                let text = pieces.joined()
                thread.send(WireMessage.decoderOutput(DecodeResult(text: text, tokens: Array(0..<pieces.count),
                                                                   finishReason: .stopToken, promptTokens: 5, flops: 1,
                                                                   unprunedFLOPs: 1), envelope: reply).frames(), on: 0)
            }
        }

        func received(_ message: ReceivedFrames, loop: SocketLoop) {
            guard let m = try? WireMessage.decode(message.frames) else { return }
            lock.lock(); defer { lock.unlock() }
            switch m.envelope.body {
            case .welcome: registered = true
            case .decoderTask: tasks.append(m.envelope); tasksReceived += 1
            case .cancel: cancelled.append(m.envelope.requestID)
            default: break
            }
        }

        func tick(loop: SocketLoop) {
            lock.lock()
            let isRegistered = registered
            lock.unlock()
            var e = Envelope.make(requestID: "")
            if !isRegistered {
                var r = Accm_V1_Register()
                (r.stage, r.modelIdentity, r.threads, r.maxBatch, r.credits) = (.decoder, "fake", 1, 1, 1)
                e.register = r
            } else {
                e.heartbeat = Accm_V1_Heartbeat()
            }
            loop.send(WireMessage(e).frames(), on: 0)
        }
    }

    private let request = ACCMRequest(image: .encoded([0x89]), question: "q", budget: 2, pruning: .uniform, compensate: false,
                                      generation: GenerationOptions(maxNewTokens: 8))

    /// An in-process coordinator (heartbeats every 100 ms) with a fake vision worker, stopped after `body`.
    private func withCoordinatorAndVision(_ body: (ZeroMQContext, Coordinator) throws -> Void) throws {
        let context = ZeroMQContext()
        let coordinator = try Coordinator(context: context, options: CoordinatorOptions(
            workersEndpoint: "tcp://127.0.0.1:*", clientsEndpoint: "tcp://127.0.0.1:*", heartbeatIntervalMilliseconds: 100))
        defer { coordinator.stop() }
        let vision = try BalancingTests.FakeWorker(stage: .vision, secondsPerTask: 0.001, threads: 1, context: context,
                                                   endpoint: coordinator.workersEndpoint)
        defer { vision.stop() }
        try body(context, coordinator)
    }

    /// Sends the request while `doomed` is the only decoder; once it holds the task, starts the replica that will
    /// take it over (scripted with `pieces`); returns the request's outcome and that replica.
    private func answerWhileReplacing(_ doomed: ScriptedDecoder, client: ClusterClient, streamed: LockedArray<String>,
                                      with pieces: [String], context: ZeroMQContext,
                                      endpoint: String) throws -> (Result<ACCMAnswer, Error>, ScriptedDecoder) {
        usleep(300_000)  // the doomed one registers
        let outcome = LockedArray<Result<ACCMAnswer, Error>>()
        let request = self.request
        let asking = Thread { outcome.append(Result { try client.answer(request, timeout: .seconds(20)) { streamed.append($0) } }) }
        asking.start()
        let deadline = Date().addingTimeInterval(10)
        while doomed.received == 0 && Date() < deadline { usleep(5_000) }
        let replacement = try ScriptedDecoder(pieces: pieces, vanishAfter: nil, context: context, endpoint: endpoint)
        while !asking.isFinished { usleep(10_000) }
        return (outcome.values[0], replacement)
    }

    func testTheReplicaThatTakesOverSkipsTheTextTheClientAlreadyHas() throws {
        try withCoordinatorAndVision { context, coordinator in
            let pieces = ["The", " cross", " is", " red", " and", " small", "."]
            let doomed = try ScriptedDecoder(pieces: pieces, vanishAfter: 3, context: context, endpoint: coordinator.workersEndpoint,
                                             interval: 0.1)
            defer { doomed.stop() }  // it stops itself mid-answer; this is for a test that fails before
            let client = try ClusterClient(context: context, coordinator: coordinator.clientsEndpoint)
            defer { client.close() }
            let streamed = LockedArray<String>()
            let (result, survivor) = try answerWhileReplacing(doomed, client: client, streamed: streamed, with: pieces, context: context,
                                                              endpoint: coordinator.workersEndpoint)
            defer { survivor.stop() }
            let answer = try result.get()
            XCTAssertEqual(doomed.received + survivor.received, 2, "one task to each replica")
            XCTAssertEqual(answer.text, pieces.joined())
            XCTAssertEqual(streamed.values.joined(), pieces.joined(), "every character once: \(streamed.values)")
            XCTAssertEqual(streamed.values.first, "The", "the first pieces came from the lost replica, as it made them")
            XCTAssertEqual(client.strayReplies, 0)
            let status = try client.status()
            XCTAssertEqual(status.redispatched, 1)
            XCTAssertEqual(status.answered, 1)
        }
    }

    func testAReplicaWhoseTextDepartsFromWhatWasStreamedFailsTheRequestInsteadOfSplicing() throws {
        try withCoordinatorAndVision { context, coordinator in
            let doomed = try ScriptedDecoder(pieces: ["The", " cross", " is", " red"], vanishAfter: 2, context: context,
                                             endpoint: coordinator.workersEndpoint, interval: 0.1)
            defer { doomed.stop() }
            let client = try ClusterClient(context: context, coordinator: coordinator.clientsEndpoint)
            defer { client.close() }
            let streamed = LockedArray<String>()
            let (result, other) = try answerWhileReplacing(doomed, client: client, streamed: streamed,
                                                           with: ["The", " square", " is", " blue"], context: context,
                                                           endpoint: coordinator.workersEndpoint)
            defer { other.stop() }
            XCTAssertThrowsError(try result.get()) { error in
                XCTAssertEqual((error as? StageError)?.code, .internal, "\(error)")
                XCTAssertTrue("\(error)".contains("splice"), "\(error)")
            }
            XCTAssertEqual(streamed.values.joined(), "The cross", "nothing of the other text reached the client")
            usleep(200_000)
            XCTAssertEqual(other.cancels.count, 1, "the diverging replica was told to stop")
        }
    }

    func testARequestThatKeepsLosingItsWorkersFailsAfterTheAttemptLimit() throws {
        try withCoordinatorAndVision { context, coordinator in
            // Every replica dies on this request (a "poison" request): three of them, and the default limit is 3.
            let doomed = try (0..<4).map { _ in
                try ScriptedDecoder(pieces: ["a", "b", "c"], vanishAfter: 1, context: context, endpoint: coordinator.workersEndpoint)
            }
            defer { doomed.forEach { $0.stop() } }
            usleep(400_000)
            let client = try ClusterClient(context: context, coordinator: coordinator.clientsEndpoint)
            defer { client.close() }
            XCTAssertThrowsError(try client.answer(request, timeout: .seconds(20))) { error in
                XCTAssertEqual((error as? StageError)?.code, .stageUnavailable, "\(error)")
                XCTAssertTrue("\(error)".contains("lost 3 decoder workers in a row"), "\(error)")
            }
            XCTAssertEqual(doomed.map(\.received).reduce(0, +), 3, "it reached three replicas, not the fourth")
        }
    }
}
