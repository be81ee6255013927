import ACCM
import Cluster
import Foundation
import Transport
import Wire
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// The cluster under faults, as separate processes on loopback (`accm cluster up`): workers of every stage
/// killed and frozen under load, deadlines, overload, a coordinator that restarts.
final class FaultTests: XCTestCase {
    /// What became of one request.
    struct Outcome {
        var index: Int
        var result: Result<ACCMAnswer, Error>
        var streamed: String
        var seconds: Double
    }

    /// The live workers of a stage, by process id.
    private static func pids(_ stage: Accm_V1_Stage, _ status: Accm_V1_Status) -> [pid_t] {
        status.workers.filter { $0.stage == stage }.map { pid_t($0.processID) }
    }

    /// Peak resident memory (VmHWM) of a live process, in bytes.
    private func peakResident(_ pid: pid_t) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
              let kilobytes = Int(line.split(separator: " ").dropFirst().first ?? "") else { return 0 }
        return kilobytes * 1024
    }

    func testEveryRequestGetsOneCorrectAnswerOrATypedErrorWhileWorkersAreKilledAndFrozen() throws {
        let cluster = try ClusterUnderTest(["--vision", "2", "--caption", "2", "--selector", "2", "--decoder", "2",
                                            "--heartbeat-ms", "250", "--liveness", "4"])
        let distinct = try ClusterWorkload.requests(count: 40)
        let pipeline = try ACCMPipeline.load(directory: ClusterWorkload.model)
        let expected = try distinct.map { try pipeline.answer([$0])[0] }
        let context = ZeroMQContext()
        let control = try ClusterClient(context: context, coordinator: cluster.clients)
        defer { control.close() }
        let clients = 8, perClient = 50, deadline = 20.0

        // The faults, while the clients run: a SIGKILL to a worker of each stage in turn (the supervisor restarts
        // it), and one worker frozen with SIGSTOP for 2.5 s (past the liveness window), then resumed.
        let finished = DispatchSemaphore(value: 0)
        let faults = LockedArray<String>()
        let chaos = Thread {
            let plan: [(Double, Accm_V1_Stage, Int32)] = [
                (0.6, .vision, SIGKILL), (1.2, .decoder, SIGKILL), (1.8, .caption, SIGSTOP), (2.4, .selector, SIGKILL),
                (4.6, .vision, SIGKILL), (5.2, .caption, SIGKILL), (5.8, .decoder, SIGKILL), (6.4, .selector, SIGKILL),
            ]
            let start = Date()
            var frozen: pid_t?
            for (at, stage, signal) in plan {
                while Date().timeIntervalSince(start) < at {
                    if finished.wait(timeout: .now() + 0.05) == .success { finished.signal(); break }
                    if let pid = frozen, Date().timeIntervalSince(start) > 4.3 {
                        kill(pid, SIGCONT)
                        faults.append("SIGCONT \(pid)")
                        frozen = nil
                    }
                }
                guard let status = try? control.status(timeout: .seconds(5)),
                      let pid = Self.pids(stage, status).first(where: { $0 != frozen }) else { continue }
                kill(pid, signal)
                faults.append("\(signal == SIGKILL ? "SIGKILL" : "SIGSTOP") \(stage) \(pid)")
                if signal == SIGSTOP { frozen = pid }
            }
            if let frozen { kill(frozen, SIGCONT) }
        }
        chaos.start()

        let outcomes = LockedArray<Outcome>()
        let strays = LockedArray<Int>()
        let group = DispatchGroup()
        for c in 0..<clients {
            group.enter()
            Thread {
                defer { group.leave() }
                guard let connection = try? ClusterClient(context: context, coordinator: cluster.clients) else { return }
                defer { connection.close() }
                for k in 0..<perClient {
                    let i = (c * 5 + k) % distinct.count
                    let streamed = LockedArray<String>()
                    let start = Date()
                    let result = Result {
                        try connection.answer(distinct[i], timeout: .seconds(deadline)) { streamed.append($0) }
                    }
                    outcomes.append(Outcome(index: i, result: result, streamed: streamed.values.joined(),
                                            seconds: Date().timeIntervalSince(start)))
                }
                usleep(300_000)  // anything stray would have arrived by now
                strays.append(connection.strayReplies)
            }.start()
        }
        group.wait()
        finished.signal()
        while !chaos.isFinished { usleep(20_000) }

        let all = outcomes.values
        XCTAssertEqual(all.count, clients * perClient, "every request came back")
        var correct = 0
        var errors: [StageErrorCode: Int] = [:]
        for outcome in all {
            XCTAssertLessThan(outcome.seconds, deadline + 3, "request \(outcome.index) answered within its deadline")
            switch outcome.result {
            case .success(let answer):
                let reference = expected[outcome.index]
                XCTAssertEqual(answer.tokens, reference.tokens, "request \(outcome.index)")
                XCTAssertEqual(answer.text, reference.text, "request \(outcome.index)")
                XCTAssertEqual(outcome.streamed, answer.text, "request \(outcome.index): streamed once, in order")
                XCTAssertEqual(answer.keptIndices, reference.keptIndices, "request \(outcome.index)")
                XCTAssertEqual(answer.caption, reference.caption, "request \(outcome.index)")
                if answer.tokens == reference.tokens && outcome.streamed == answer.text { correct += 1 }
            case .failure(let error):
                guard let typed = error as? StageError else {
                    XCTFail("request \(outcome.index): an untyped error \(error)")
                    continue
                }
                XCTAssertTrue([.stageUnavailable, .deadlineExceeded].contains(typed.code),
                              "request \(outcome.index): \(typed.code) \(typed)")
                errors[typed.code, default: 0] += 1
            }
        }
        XCTAssertEqual(strays.values.reduce(0, +), 0, "no request was answered twice")
        let status = try control.status()
        let coordinatorPeak = peakResident(pid_t(status.processID))
        print("faults: \(faults.values.joined(separator: ", "))")
        print("faults: \(all.count) requests from \(clients) clients: \(correct) correct answers, errors \(errors); "
            + "\(status.redispatched) task(s) sent to another replica, \(status.answered) answered by the coordinator; "
            + "worker restarts \(status.workers.map(\.restarts).reduce(0, +)); coordinator peak RSS "
            + String(format: "%.1f MiB", Double(coordinatorPeak) / 1_048_576))
        XCTAssertGreaterThanOrEqual(faults.values.filter { $0.hasPrefix("SIGKILL") }.count, 6, "the faults happened")
        XCTAssertGreaterThan(status.redispatched, 0, "the faults hit work in flight")
        XCTAssertGreaterThanOrEqual(Double(correct), 0.9 * Double(all.count), "most requests survive the faults: \(errors)")
        XCTAssertGreaterThan(coordinatorPeak, 0)
        XCTAssertLessThan(coordinatorPeak, 256 << 20, "the coordinator's memory stays bounded")
        XCTAssertTrue(cluster.output.contains("restart"), "the supervisor says it restarted workers")
    }

    func testARequestPastItsDeadlineGetsATimeoutAndTheWorkerHoldingItStops() throws {
        let cluster = try ClusterUnderTest(["--caption", "0", "--selector", "0", "--max-batch", "1"])
        let context = ZeroMQContext()
        let client = try ClusterClient(context: context, coordinator: cluster.clients)
        defer { client.close() }
        var request = try ClusterWorkload.requests(count: 1)[0]
        request.pruning = .uniform
        request.compensate = false
        _ = try client.answer(request, timeout: .seconds(20))

        // A frozen decoder holds the request when its deadline passes: the client gets deadline_exceeded on time,
        // and the worker, once resumed, drops the task instead of computing it.
        let decoder = try XCTUnwrap(Self.pids(.decoder, try client.status()).first)
        kill(decoder, SIGSTOP)
        let start = Date()
        XCTAssertThrowsError(try client.answer(request, timeout: .milliseconds(600))) { error in
            XCTAssertEqual((error as? StageError)?.code, .deadlineExceeded, "\(error)")
            XCTAssertTrue("\(error)".contains("cancelled at worker decoder-"), "\(error)")
        }
        let elapsed = Date().timeIntervalSince(start)
        print("deadlines: a 600 ms deadline answered after \(Int(elapsed * 1000)) ms")
        XCTAssertGreaterThanOrEqual(elapsed, 0.6)
        XCTAssertLessThan(elapsed, 0.6 + 0.5, "within the deadline and 500 ms of slack")
        usleep(800_000)
        kill(decoder, SIGCONT)

        // Long sampled answers with a deadline well inside their work (measured here first): each is answered
        // deadline_exceeded on time, and the decoder stops generating it at its next step.
        // (Near-uniform sampling over the tiny vocabulary: the end token rarely comes, the answer runs long.)
        var sampled = request
        sampled.generation = GenerationOptions(maxNewTokens: 200, sampling: SamplingOptions(temperature: 50, topP: 1, seed: 7))
        let long = sampled
        var works: [Double] = []
        for _ in 0..<3 {
            let t = Date()
            let answer = try client.answer(long, timeout: .seconds(20))
            works.append(Date().timeIntervalSince(t))
            XCTAssertGreaterThanOrEqual(answer.tokens.count, 100, "a long answer")
        }
        let work = works.sorted()[1]
        let limit = max(0.005, work * 0.3)
        var timedOut: [Double] = []
        for _ in 0..<12 {
            let t = Date()
            do {
                _ = try client.answer(long, timeout: .milliseconds(Int(limit * 1000)))
            } catch let error as StageError where error.code == .deadlineExceeded {
                timedOut.append(Date().timeIntervalSince(t))
            }
        }
        XCTAssertFalse(timedOut.isEmpty)
        XCTAssertTrue(timedOut.allSatisfy { $0 < limit + 0.5 }, "every timeout within 500 ms of its deadline: \(timedOut)")
        usleep(1_200_000)  // a heartbeat carries the worker's count
        let status = try client.status()
        let stopped = status.workers.filter { $0.stage == .decoder }.map(\.stopped).reduce(0, +)
        print("deadlines: answers taking \(Int(work * 1000)) ms given \(Int(limit * 1000)) ms: \(timedOut.count) of 12 timed out "
            + "(after \(timedOut.map { Int($0 * 1000) }) ms); the decoder stopped \(stopped) task(s); \(status.expired) expired at "
            + "the coordinator")
        XCTAssertGreaterThanOrEqual(stopped, 2, "the frozen one, and at least one stopped mid-answer or dropped from its queue")
        // (Stopped by the coordinator's CANCEL, or by the decoder itself when it sees the deadline pass first.)
        XCTAssertTrue(cluster.output.contains("(cancelled) after") || cluster.output.contains("(its deadline passed) after"),
                      "the decoder logs answers it stopped mid-way: \(cluster.output)")
        XCTAssertEqual(status.expired, UInt64(timedOut.count + 1))
        XCTAssertFalse(try client.answer(request, timeout: .seconds(20)).text.isEmpty, "the decoder still serves")
    }

    func testOverloadIsRefusedAtOnceWithARetryHintAndTheRestAreAnswered() throws {
        let cluster = try ClusterUnderTest(["--caption", "0", "--selector", "0", "--max-queued", "3", "--max-batch", "1"])
        let context = ZeroMQContext()
        var sampled = try ClusterWorkload.requests(count: 1)[0]
        sampled.pruning = .uniform
        sampled.compensate = false
        sampled.generation = GenerationOptions(maxNewTokens: 100, sampling: SamplingOptions(temperature: 2, topP: 1, seed: 2))
        let request = sampled
        let outcomes = LockedArray<(Result<ACCMAnswer, Error>, Double)>()
        let group = DispatchGroup()
        let go = DispatchSemaphore(value: 0)
        for _ in 0..<24 {
            group.enter()
            Thread {
                defer { group.leave() }
                guard let connection = try? ClusterClient(context: context, coordinator: cluster.clients) else { return }
                defer { connection.close() }
                go.wait()
                let t = Date()
                let result = Result { try connection.answer(request, timeout: .seconds(30)) }
                outcomes.append((result, Date().timeIntervalSince(t)))
            }.start()
        }
        usleep(500_000)
        for _ in 0..<24 { go.signal() }
        group.wait()
        let refused = outcomes.values.compactMap { outcome -> (StageError, Double)? in
            guard case .failure(let error as StageError) = outcome.0, error.code == .overloaded else { return nil }
            return (error, outcome.1)
        }
        let answered = outcomes.values.filter { if case .success = $0.0 { true } else { false } }
        print("overload: 24 at once against a queue of 3: \(answered.count) answered, \(refused.count) refused as overloaded "
            + "(retry after \(refused.compactMap(\.0.retryAfterMilliseconds).sorted()) ms)")
        XCTAssertEqual(answered.count + refused.count, 24, "\(outcomes.values.map(\.0))")
        XCTAssertFalse(refused.isEmpty)
        XCTAssertGreaterThanOrEqual(answered.count, 3)
        XCTAssertTrue(refused.allSatisfy { $0.1 < 1.0 }, "refused at once: \(refused.map(\.1))")
        XCTAssertTrue(refused.allSatisfy { ($0.0.retryAfterMilliseconds ?? 0) >= 50 }, "with a retry-after hint")

        // A stage with no replica at all: refused at once, typed.
        let client = try ClusterClient(context: context, coordinator: cluster.clients)
        defer { client.close() }
        var captioned = request
        captioned.pruning = .accm(ranking: .mostSimilar, cap: .byScore, textPicks: nil)
        captioned.compensate = true
        let t = Date()
        XCTAssertThrowsError(try client.answer(captioned, timeout: .seconds(30))) { error in
            XCTAssertEqual((error as? StageError)?.code, .stageUnavailable, "\(error)")
            XCTAssertTrue("\(error)".contains("no live caption worker"), "\(error)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(t), 1.0)
    }

    func testACoordinatorThatRestartsIsFoundAgainAndItsLostRequestsEndInATypedError() throws {
        let cluster = try ClusterUnderTest(["--caption", "0", "--selector", "0", "--heartbeat-ms", "250"])
        let context = ZeroMQContext()
        let client = try ClusterClient(context: context, coordinator: cluster.clients,
                                       options: ClusterClientOptions(heartbeatInterval: .milliseconds(250)))
        defer { client.close() }
        var plain = try ClusterWorkload.requests(count: 1)[0]
        plain.pruning = .uniform
        plain.compensate = false
        let request = plain
        let reference = try client.answer(request, timeout: .seconds(20))
        let before = try client.status()
        let decoder = try XCTUnwrap(Self.pids(.decoder, before).first)

        // The request is held (its decoder frozen) when the coordinator is killed; the supervisor starts a new one.
        kill(decoder, SIGSTOP)
        let lost = LockedArray<Result<ACCMAnswer, Error>>()
        let waiting = Thread { lost.append(Result { try client.answer(request, timeout: .seconds(60)) }) }
        waiting.start()
        usleep(500_000)
        kill(pid_t(before.processID), SIGKILL)
        usleep(300_000)
        kill(decoder, SIGCONT)
        let start = Date()
        while !waiting.isFinished && Date().timeIntervalSince(start) < 30 { usleep(50_000) }
        guard case .failure(let error as StageError)? = lost.values.first else {
            return XCTFail("the lost request ended in \(lost.values)")
        }
        XCTAssertEqual(error.code, .coordinatorLost, "\(error)")
        print("coordinator restart: the lost request failed after \(String(format: "%.1f", Date().timeIntervalSince(start))) s: \(error)")

        // The workers find the new coordinator by themselves; new requests are answered as before.
        var after: Accm_V1_Status?
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if let s = try? client.status(timeout: .seconds(1)), s.processID != before.processID, s.workers.count == 2 {
                after = s
                break
            }
            usleep(200_000)
        }
        let restarted = try XCTUnwrap(after, "a new coordinator with both workers registered")
        XCTAssertNotEqual(restarted.processID, before.processID)
        XCTAssertEqual(try client.answer(request, timeout: .seconds(20)).tokens, reference.tokens)
        XCTAssertTrue(cluster.output.contains("coordinator (pid \(before.processID)) was killed by signal 9"), cluster.output)
    }
}
