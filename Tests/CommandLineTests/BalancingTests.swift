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

/// The coordinator balances a stage across replicas by their measured throughput: a decoder that finishes
/// twice as many items per second gets about twice the work. (An in-process coordinator with fake workers that
/// take a fixed time per task, so the figure does not depend on this machine's cores.)
final class BalancingTests: XCTestCase {
    /// A worker that registers, heartbeats its measured rate, and answers each task after `secondsPerTask`.
    final class FakeWorker: SocketHandler, @unchecked Sendable {
        let stage: Stage
        let secondsPerTask: Double
        let threads: UInt32
        private(set) var thread: SocketThread!
        private let lock = NSLock()
        private var queue: [WireMessage] = []
        private var done: UInt64 = 0
        private var busy = 0.0
        private var registered = false
        private var lastBeat = ContinuousClock.now
        private var running = true
        var handled: Int { lock.lock(); defer { lock.unlock() }; return Int(done) }

        init(stage: Stage, secondsPerTask: Double, threads: UInt32, context: ZeroMQContext, endpoint: String) throws {
            self.stage = stage
            self.secondsPerTask = secondsPerTask
            self.threads = threads
            thread = try SocketThread(context: context, sockets: [
                SocketSpec(kind: .dealer, endpoint: endpoint, bind: false, routingID: "fake-\(stage.rawValue)-\(threads)-\(UUID())"),
            ], tickInterval: .milliseconds(20), handler: self)
            Thread { self.compute() }.start()
        }

        func stop() {
            lock.lock(); running = false; lock.unlock()
            thread.stop()
        }

        private func compute() {
            while true {
                lock.lock()
                let alive = running
                let task = queue.isEmpty ? nil : queue.removeFirst()
                lock.unlock()
                guard alive else { return }
                guard let task else { usleep(2_000); continue }
                usleep(useconds_t(secondsPerTask * 1e6))
                let reply = Envelope.make(requestID: task.envelope.requestID, stage: stage, attempt: task.envelope.attempt)
                let out: WireMessage
                switch stage {
                case .vision:
                    out = .visionOutput(VisionResult(keptFeatures: Tensor(shape: [2, 4]), keptIndices: [0, 1],
                                                     prunedEmbeddings: Tensor(shape: [2, 3]), patchCount: 4, flops: 1,
                                                     unprunedFLOPs: 1), envelope: reply)
                default:
                    out = .decoderOutput(DecodeResult(text: "yes", tokens: [7], finishReason: .stopToken, promptTokens: 5,
                                                      flops: 1, unprunedFLOPs: 1), envelope: reply)
                }
                thread.send(out.frames(), on: 0)
                lock.lock(); done += 1; busy += secondsPerTask; lock.unlock()
            }
        }

        func received(_ message: ReceivedFrames, loop: SocketLoop) {
            guard let m = try? WireMessage.decode(message.frames) else { return }
            switch m.envelope.body {
            case .welcome: lock.lock(); registered = true; lock.unlock()
            case .visionTask, .decoderTask: lock.lock(); queue.append(m); lock.unlock()
            default: break
            }
        }

        func tick(loop: SocketLoop) {
            lock.lock()
            let (isRegistered, completed, seconds) = (registered, done, busy)
            lock.unlock()
            var e = Envelope.make(requestID: "")
            if !isRegistered {
                var r = Accm_V1_Register()
                (r.stage, r.modelIdentity, r.threads, r.maxBatch, r.credits) = (stage.wire, "fake", threads, 1, 2)
                e.register = r
            } else if ContinuousClock.now - lastBeat > .milliseconds(100) {
                var beat = Accm_V1_Heartbeat()
                beat.completed = completed
                beat.itemsPerSecond = seconds > 0 ? Double(completed) / seconds : 0
                e.heartbeat = beat
                lastBeat = .now
            } else {
                return
            }
            loop.send(WireMessage(e).frames(), on: 0)
        }
    }

    func testAReplicaTwiceAsFastGetsAboutTwiceTheWork() throws {
        let context = ZeroMQContext()
        let coordinator = try Coordinator(context: context, options: CoordinatorOptions(
            workersEndpoint: "tcp://127.0.0.1:*", clientsEndpoint: "tcp://127.0.0.1:*", heartbeatIntervalMilliseconds: 100))
        defer { coordinator.stop() }
        let vision = try FakeWorker(stage: .vision, secondsPerTask: 0.001, threads: 8, context: context,
                                    endpoint: coordinator.workersEndpoint)
        let fast = try FakeWorker(stage: .decoder, secondsPerTask: 0.010, threads: 4, context: context,
                                  endpoint: coordinator.workersEndpoint)
        let slow = try FakeWorker(stage: .decoder, secondsPerTask: 0.020, threads: 2, context: context,
                                  endpoint: coordinator.workersEndpoint)
        defer { [vision, fast, slow].forEach { $0.stop() } }
        usleep(400_000)
        let request = ACCMRequest(image: .encoded([0x89]), question: "q", budget: 2, pruning: .uniform, compensate: false,
                                  generation: GenerationOptions(maxNewTokens: 1))
        let group = DispatchGroup()
        let failures = LockedArray<String>()
        for _ in 0..<8 {
            group.enter()
            Thread {
                defer { group.leave() }
                guard let client = try? ClusterClient(context: context, coordinator: coordinator.clientsEndpoint) else { return }
                defer { client.close() }
                for _ in 0..<30 {
                    do { _ = try client.answer(request, timeout: .seconds(20)) } catch { failures.append("\(error)") }
                }
            }.start()
        }
        group.wait()
        XCTAssertEqual(failures.values, [])
        XCTAssertEqual(fast.handled + slow.handled, 240)
        let ratio = Double(fast.handled) / Double(max(slow.handled, 1))
        print("balancing: fast replica \(fast.handled), slow replica \(slow.handled) (ratio \(ratio))")
        XCTAssertGreaterThan(ratio, 1.5, "fast \(fast.handled), slow \(slow.handled)")
        XCTAssertLessThan(ratio, 2.7, "fast \(fast.handled), slow \(slow.handled)")
    }
}
