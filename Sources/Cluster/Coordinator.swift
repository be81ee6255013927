// The coordinator: two ROUTERs (workers, clients) on one socket thread, which also runs the whole state
// machine, so nothing here needs a lock. Workers register (stage, model identity, capacity) and grant credit;
// each request's `RequestProgress` says which stage it needs next; a stage's waiting requests are dispatched
// in bursts up to a worker's batch size, to the replica expected to finish them first (its in-flight work
// over its measured throughput). Every queue is bounded: a SUBMIT beyond it is answered "overloaded" at once.
//
// Faults: a worker whose connection is gone (a send to it is unreachable) or that stays silent past the
// liveness window is dropped, and every task it held goes to another replica under the next attempt number;
// whatever the old attempt still sends is dropped as stale. A request past its deadline is answered
// `deadline_exceeded` and cancelled at the worker holding it. Every request gets exactly one final message.

import ACCMMessages
import Transport
import Wire

#if canImport(Glibc)
import Glibc
#endif

/// A running coordinator.
public final class Coordinator: @unchecked Sendable {
    private let thread: SocketThread
    private let state: CoordinatorState

    /// Binds both sockets and starts serving; throws for a set-up `CoordinatorOptions.validate` refuses.
    public init(context: ZeroMQContext, options: CoordinatorOptions) throws {
        try options.validate()
        state = CoordinatorState(options: options)
        let security = options.security
        thread = try SocketThread(context: context, sockets: [
            SocketSpec(kind: .router, endpoint: options.workersEndpoint, bind: true, maxFrameBytes: options.wire.maxFrameBytes,
                       curve: security.map { .server($0.keys, domain: "workers", allow: $0.workers) }),
            SocketSpec(kind: .router, endpoint: options.clientsEndpoint, bind: true, maxFrameBytes: options.wire.maxFrameBytes,
                       curve: security.map { .server($0.keys, domain: "clients", allow: $0.clients) }),
        ], tickInterval: .milliseconds(20), handler: state)
    }

    /// The bound worker endpoint (a `*` port resolved).
    public var workersEndpoint: String { thread.boundEndpoints[0] }
    /// The bound client endpoint.
    public var clientsEndpoint: String { thread.boundEndpoints[1] }

    /// Stops serving and closes the sockets.
    public func stop() { thread.stop() }
}

private let workerSocket = 0, clientSocket = 1

/// A registered worker, as the coordinator sees it.
struct WorkerRecord {
    let routingID: [UInt8]
    let stage: Stage
    let registration: Accm_V1_Register
    let address: String
    /// The allow-list name of its CURVE key ("" without CURVE); every message it sends must carry it.
    let keyName: String
    var window: Int
    /// Request keys dispatched to it and not yet answered.
    var inFlight: Set<String> = []
    var completed: UInt64 = 0
    var stopped: UInt64 = 0
    var itemsPerSecond: Double
    var lastHeard: ContinuousClock.Instant

    var freeCredit: Int { max(0, window - inFlight.count) }
    /// Seconds until it would finish one more item.
    var expectedFinish: Double { Double(inFlight.count + 1) / max(itemsPerSecond, 1e-3) }
}

/// A request in the cluster.
struct Flight {
    var progress: RequestProgress
    let client: [UInt8]
    let clientRequestID: String
    let deadline: ContinuousClock.Instant
    /// Tasks of this request sent so far (the task id's attempt number; a new one each time it is re-sent).
    var attempt: UInt32 = 0
    /// Workers lost in a row while holding it.
    var losses = 0
    /// The worker holding its current stage, if dispatched.
    var worker: String?
    var stream = RelayedStream()
    /// When it last joined a stage's queue (what its wait for that stage is counted from).
    var queuedAt = ContinuousClock.now
}

final class CoordinatorState: SocketHandler {
    let options: CoordinatorOptions
    var workers: [String: WorkerRecord] = [:]
    var flights: [String: Flight] = [:]
    var queues: [Stage: [String]] = [:]
    var modelIdentity: String?
    var counts = (dropped: 0, answered: 0, failed: 0, redispatched: 0, expired: 0, refused: 0)
    private var lastHeartbeat = ContinuousClock.now
    private var lastDeadlineSweep = ContinuousClock.now
    private var lastRefusalLog: [String: ContinuousClock.Instant] = [:]

    init(options: CoordinatorOptions) {
        self.options = options
    }

    private static func key(_ id: [UInt8]) -> String { id.map { String($0, radix: 16) }.joined(separator: ".") }

    private func send(_ message: WireMessage, to peer: [UInt8], on socket: Int, loop: SocketLoop) {
        if !loop.send([Frame(copying: peer)] + message.frames(), on: socket) { counts.dropped += 1 }
    }

    private static func log(_ line: String) {
        let bytes = Array("coordinator: \(line)\n".utf8)
        _ = write(2, bytes, bytes.count)
    }

    // MARK: Events

    func received(_ message: ReceivedFrames, loop: SocketLoop) {
        guard let identity = message.frames.first?.array else { return }
        let body = Array(message.frames.dropFirst())
        let decoded: WireMessage
        do {
            decoded = try WireMessage.decode(body, droppedFrames: message.droppedFrames, limits: options.wire)
        } catch {
            counts.dropped += 1
            send(.error(error, requestID: ""), to: identity, on: message.socket, loop: loop)
            return
        }
        if message.socket == workerSocket {
            workerMessage(decoded, from: identity, address: message.peerAddress, keyName: message.userID, loop: loop)
        } else {
            clientMessage(decoded, from: identity, loop: loop)
        }
        dispatch(loop: loop)
    }

    func tick(loop: SocketLoop) {
        let now = ContinuousClock.now
        let liveness = Duration.milliseconds(options.heartbeatIntervalMilliseconds * options.livenessIntervals)
        for (key, worker) in workers where now - worker.lastHeard > liveness {
            dropWorker(key, reason: "silent for \(liveness)", loop: loop)
        }
        // Heartbeats run both ways: a worker that stops hearing the coordinator registers again. A worker whose
        // connection is gone (killed: the kernel closed its socket) is unreachable at once: dropped now rather
        // than after the liveness window.
        if now - lastHeartbeat >= .milliseconds(options.heartbeatIntervalMilliseconds) {
            var e = Envelope.make(requestID: "")
            e.heartbeat = Accm_V1_Heartbeat()
            let frames = WireMessage(e).frames()
            for (key, worker) in workers {
                if case .unreachable = loop.trySend([Frame(copying: worker.routingID)] + frames, on: workerSocket) {
                    dropWorker(key, reason: "its connection is gone", loop: loop)
                }
            }
            lastHeartbeat = now
        }
        if now - lastDeadlineSweep >= .milliseconds(10) {
            for (key, flight) in flights where flight.deadline <= now { expire(key, loop: loop) }
            lastDeadlineSweep = now
        }
        dispatch(loop: loop)
    }

    func refused(_ peer: PeerRefusal, loop: SocketLoop) {
        counts.refused += 1
        // A refused peer may retry; say so once a second per socket at most.
        if lastRefusalLog[peer.domain].map({ ContinuousClock.now - $0 > .seconds(1) }) ?? true {
            Self.log("refused a \(peer.domain == "workers" ? "worker" : "client") at \(peer.address): its key \(peer.publicKey) "
                + "is not on the \(peer.domain) allow-list (\(counts.refused) refused so far)")
            lastRefusalLog[peer.domain] = .now
        }
    }

    // MARK: Workers

    private func workerMessage(_ message: WireMessage, from identity: [UInt8], address: String, keyName: String,
                               loop: SocketLoop) {
        let key = Self.key(identity)
        let envelope = message.envelope
        if case .register(let registration)? = envelope.body {
            register(registration, key: key, identity: identity, address: address, keyName: keyName, loop: loop)
            return
        }
        guard var worker = workers[key], worker.keyName == keyName else {
            counts.dropped += 1
            send(.error(StageError(.notRegistered, "this worker has not registered (send REGISTER first)"),
                        requestID: envelope.requestID), to: identity, on: workerSocket, loop: loop)
            return
        }
        worker.lastHeard = .now
        workers[key] = worker
        switch envelope.body {
        case .heartbeat(let beat):
            workers[key]?.completed = beat.completed
            workers[key]?.stopped = beat.stopped
            if beat.itemsPerSecond > 0 { workers[key]?.itemsPerSecond = beat.itemsPerSecond }
        case .partial(let partial):
            relay(partial, requestKey: envelope.requestID, worker: key, attempt: envelope.attempt, loop: loop)
        case .visionOutput, .captionOutput, .selectorOutput, .decoderOutput, .error:
            stageOutput(message, worker: key, loop: loop)
        default:
            counts.dropped += 1
        }
    }

    private func register(_ r: Accm_V1_Register, key: String, identity: [UInt8], address: String, keyName: String,
                          loop: SocketLoop) {
        guard let stage = Stage(wire: r.stage) else {
            send(.error(StageError(.invalidMessage, "REGISTER names no stage"), requestID: ""), to: identity, on: workerSocket,
                 loop: loop)
            return
        }
        if let modelIdentity, modelIdentity != r.modelIdentity {
            send(.error(StageError(.modelMismatch, "this cluster serves model \(modelIdentity); the worker's model "
                    + "\(r.modelPath) is \(r.modelIdentity)"), requestID: ""), to: identity, on: workerSocket, loop: loop)
            return
        }
        if let other = workers.values.first(where: { $0.stage == stage && $0.routingID != identity }),
           other.registration.weightFormats != r.weightFormats {
            send(.error(StageError(.modelMismatch, "this cluster's \(stage.rawValue) replicas compute with "
                    + "\(other.registration.weightFormats.isEmpty ? "stored weights" : other.registration.weightFormats); "
                    + "this worker with \(r.weightFormats.isEmpty ? "stored weights" : r.weightFormats): the replicas of a "
                    + "stage must agree, so that a request taken over by another replica gets the same answer"),
                        requestID: ""), to: identity, on: workerSocket, loop: loop)
            return
        }
        modelIdentity = r.modelIdentity
        if workers[key] != nil { dropWorker(key, reason: "it registered again", loop: loop) }
        workers[key] = WorkerRecord(
            routingID: identity, stage: stage, registration: r, address: address, keyName: keyName,
            window: Int(max(1, min(r.credits, 4096))), itemsPerSecond: Double(max(r.threads, 1)), lastHeard: .now)
        Self.log("\(stage.rawValue) worker \(String(decoding: identity, as: UTF8.self)) registered from \(address)"
            + (keyName.isEmpty ? "" : " with key \(keyName)") + (r.weightFormats.isEmpty ? "" : ", weights \(r.weightFormats)")
            + (r.restarts > 0 ? " (restart \(r.restarts))" : ""))
        var e = Envelope.make(requestID: "")
        var welcome = Accm_V1_Welcome()
        welcome.heartbeatIntervalMs = UInt32(options.heartbeatIntervalMilliseconds)
        e.welcome = welcome
        send(WireMessage(e), to: identity, on: workerSocket, loop: loop)
    }

    /// Forgets a worker; every request it held goes back to the front of its stage's queue under a new attempt
    /// (a decoder's too: the replica that takes it over answers from the start and the text the client has is
    /// skipped), unless it has now lost `maxAttempts` workers in a row.
    private func dropWorker(_ key: String, reason: String, loop: SocketLoop) {
        guard let worker = workers.removeValue(forKey: key) else { return }
        Self.log("dropped \(worker.stage.rawValue) worker \(String(decoding: worker.routingID, as: UTF8.self)): \(reason); "
            + "\(worker.inFlight.count) task(s) go to another replica")
        for requestKey in worker.inFlight {
            guard var flight = flights[requestKey], flight.worker == key else { continue }
            flight.worker = nil
            flight.losses += 1
            flights[requestKey] = flight
            if flight.losses >= options.maxAttempts {
                finish(requestKey, StageError(.stageUnavailable, "the request lost \(flight.losses) \(worker.stage.rawValue) "
                    + "workers in a row (the last: \(reason)); it is not sent to another one"), loop: loop)
            } else {
                counts.redispatched += 1
                queues[worker.stage, default: []].insert(requestKey, at: 0)
            }
        }
    }

    /// Streams a decoder's text to the client: only the current attempt's, in order, each character once.
    private func relay(_ partial: Accm_V1_PartialText, requestKey: String, worker key: String, attempt: UInt32,
                       loop: SocketLoop) {
        guard var flight = flights[requestKey], flight.worker == key, flight.attempt == attempt else {
            counts.dropped += 1  // a stale attempt's, or a finished request's
            return
        }
        let relay = flight.stream.receive(partial.delta, sequence: partial.sequence)
        flights[requestKey] = flight
        switch relay {
        case .forward(let delta, let sequence):
            send(.partial(delta, sequence: sequence, requestID: flight.clientRequestID), to: flight.client, on: clientSocket,
                 loop: loop)
        case .nothing:
            break
        case .diverged:
            cancelTask(of: requestKey, loop: loop)
            finish(requestKey, StageError(.internal, "the decoder replica that took the answer over wrote other text than "
                + "the one lost mid-answer (its arithmetic differs); the request fails rather than splice two answers"),
                   loop: loop)
        }
    }

    private func stageOutput(_ message: WireMessage, worker key: String, loop: SocketLoop) {
        let envelope = message.envelope
        let requestKey = envelope.requestID
        guard var flight = flights[requestKey], flight.worker == key, flight.attempt == envelope.attempt else {
            counts.dropped += 1  // late or stale: its request was answered, or moved on to another attempt
            return
        }
        workers[key]?.inFlight.remove(requestKey)
        flight.worker = nil
        flight.losses = 0
        if let error = message.stageError {
            flights[requestKey] = flight
            finish(requestKey, error, loop: loop)
            return
        }
        if let stage = flight.progress.next {
            flight.progress.recordWait(stage, seconds: (ContinuousClock.now - flight.queuedAt).inSeconds - envelope.computeSeconds)
        }
        do {
            let seconds = envelope.computeSeconds
            switch envelope.body {
            case .visionOutput: try flight.progress.record(message.visionResult(), seconds: seconds)
            case .captionOutput: try flight.progress.record(message.captionResult(), seconds: seconds)
            case .selectorOutput: try flight.progress.record(message.selectionResult(), seconds: seconds)
            case .decoderOutput:
                let result = try message.decodeResult()
                guard flight.stream.agrees(withFinal: result.text) else {
                    flights[requestKey] = flight
                    finish(requestKey, StageError(.internal, "the decoder's final text departs from the text streamed "
                        + "before its replica was lost"), loop: loop)
                    return
                }
                try flight.progress.record(result, seconds: seconds)
            default: break
            }
        } catch {
            flight.progress.fail(error)
        }
        flights[requestKey] = flight
        advance(requestKey, loop: loop)
    }

    // MARK: Clients

    private func clientMessage(_ message: WireMessage, from identity: [UInt8], loop: SocketLoop) {
        let envelope = message.envelope
        switch envelope.body {
        case .submit:
            submit(message, from: identity, loop: loop)
        case .cancel:
            let key = Self.key(identity) + "/" + envelope.requestID
            guard flights[key] != nil else { return }
            cancelTask(of: key, loop: loop)
            finish(key, StageError(.cancelled, "the client cancelled the request"), loop: loop)
        case .heartbeat(let beat):
            // A client's: which of the requests it awaits this coordinator does not hold (lost with an earlier one).
            var e = Envelope.make(requestID: envelope.requestID)
            var reply = Accm_V1_Heartbeat()
            let prefix = Self.key(identity) + "/"
            reply.requestIds = beat.requestIds.prefix(4096).filter { flights[prefix + $0] == nil }
            e.heartbeat = reply
            send(WireMessage(e), to: identity, on: clientSocket, loop: loop)
        case .statusRequest:
            var e = Envelope.make(requestID: envelope.requestID)
            e.status = status()
            send(WireMessage(e), to: identity, on: clientSocket, loop: loop)
        default:
            counts.dropped += 1
            send(.error(StageError(.invalidMessage, "clients may send SUBMIT, CANCEL, HEARTBEAT or STATUS_REQUEST"),
                        requestID: envelope.requestID), to: identity, on: clientSocket, loop: loop)
        }
    }

    private func submit(_ message: WireMessage, from identity: [UInt8], loop: SocketLoop) {
        let requestID = message.envelope.requestID
        func refuse(_ error: StageError) {
            counts.failed += 1
            send(.error(error, requestID: requestID), to: identity, on: clientSocket, loop: loop)
        }
        let key = Self.key(identity) + "/" + requestID
        guard !requestID.isEmpty, requestID.utf8.count <= 256 else {
            return refuse(StageError(.invalidMessage, "a SUBMIT needs a request_id of 1 to 256 bytes"))
        }
        guard flights[key] == nil else { return }  // a repeated SUBMIT: the first one is being answered
        let deadline = message.envelope.deadlineMs
        guard deadline >= 0, deadline <= options.maxDeadlineMilliseconds else {
            return refuse(StageError(.invalidRequest, "deadline_ms is \(deadline); it must be 0 (the cluster's default, "
                + "\(options.defaultDeadlineMilliseconds) ms) up to \(options.maxDeadlineMilliseconds)", field: "deadline_ms"))
        }
        let request: ACCMRequest
        do {
            request = try message.submittedRequest()
            try options.requests.check(request)
        } catch let error as RequestError {
            return refuse(StageError(error))
        } catch let error as StageError {
            return refuse(error)
        } catch {
            return refuse(StageError(.internal, "\(error)"))
        }
        // Every stage the request may need must have a live worker.
        // (A text-only request needs the decoder alone.)
        let needed: [Stage] = request.image == nil ? [.decoder]
            : request.compensate && request.pruning != .none ? Stage.allCases : [.vision, .decoder]
        if let missing = needed.first(where: { stage in !workers.values.contains { $0.stage == stage } }) {
            return refuse(StageError(.stageUnavailable, "no live \(missing.rawValue) worker is registered"))
        }
        let progress = RequestProgress(request)
        let first = progress.next ?? .vision
        let waiting = queues[first, default: []].count
        guard flights.count < options.maxInFlight, waiting < options.maxQueuedPerStage else {
            return refuse(StageError(.overloaded, "the cluster holds \(flights.count) requests (\(waiting) waiting for the "
                + "\(first.rawValue) stage, at most \(options.maxQueuedPerStage)); try again shortly",
                retryAfterMilliseconds: retryAfterMilliseconds(waiting: waiting)))
        }
        let budget = deadline > 0 ? Int(deadline) : options.defaultDeadlineMilliseconds
        flights[key] = Flight(progress: progress, client: identity, clientRequestID: requestID,
                              deadline: .now + .milliseconds(budget))
        queues[first, default: []].append(key)
    }

    /// When a refused request would likely find room: the time the vision replicas need to take a slot's worth of
    /// the queue, from their measured throughput (50 ms to 10 s).
    private func retryAfterMilliseconds(waiting: Int) -> Int {
        let rate = workers.values.filter { $0.stage == .vision }.map(\.itemsPerSecond).reduce(0, +)
        let seconds = rate > 0 ? Double(max(1, waiting - options.maxQueuedPerStage + 1)) / rate : 1
        return Int(min(10_000, max(50, seconds * 1000)))
    }

    /// Tells the worker holding `key`'s current task to stop (a queued task is dropped, a decoding one stops
    /// at its next step); whatever it still sends for it is dropped as stale.
    private func cancelTask(of key: String, loop: SocketLoop) {
        guard let flight = flights[key], let workerKey = flight.worker, let worker = workers[workerKey] else { return }
        var e = Envelope.make(requestID: key, stage: worker.stage, attempt: flight.attempt)
        e.cancel = Accm_V1_Cancel()
        loop.send([Frame(copying: worker.routingID)] + WireMessage(e).frames(), on: workerSocket)
        workers[workerKey]?.inFlight.remove(key)
        flights[key]?.worker = nil
    }

    /// A request past its deadline: cancelled where it is held, answered `deadline_exceeded`.
    private func expire(_ key: String, loop: SocketLoop) {
        guard let flight = flights[key] else { return }
        let stage = flight.progress.next?.rawValue ?? "its last"
        let held = flight.worker.map { " (cancelled at worker \(String(decoding: workers[$0]?.routingID ?? [], as: UTF8.self)))" }
            ?? " (it was waiting for a worker)"
        cancelTask(of: key, loop: loop)
        counts.expired += 1
        finish(key, StageError(.deadlineExceeded, "the request's deadline passed at the \(stage) stage\(held)"), loop: loop)
    }

    // MARK: Progress

    /// Queues the request for its next stage, or answers it.
    private func advance(_ key: String, loop: SocketLoop) {
        guard let flight = flights[key] else { return }
        if let next = flight.progress.next {
            flights[key]?.queuedAt = .now
            queues[next, default: []].append(key)
        } else if let outcome = flight.progress.outcome {
            switch outcome {
            case .success(let answer):
                flights.removeValue(forKey: key)
                counts.answered += 1
                send(.answer(answer, requestID: flight.clientRequestID), to: flight.client, on: clientSocket, loop: loop)
            case .failure(let error):
                finish(key, error, loop: loop)
            }
        }
    }

    /// Answers the request with `error` and forgets it.
    private func finish(_ key: String, _ error: StageError, loop: SocketLoop) {
        guard let flight = flights.removeValue(forKey: key) else { return }
        if let workerKey = flight.worker { workers[workerKey]?.inFlight.remove(key) }
        for stage in Stage.allCases { queues[stage]?.removeAll { $0 == key } }
        counts.failed += 1
        send(.error(error, requestID: flight.clientRequestID), to: flight.client, on: clientSocket, loop: loop)
    }

    /// Sends waiting requests to workers with credit, a worker's batch at a time.
    private func dispatch(loop: SocketLoop) {
        for stage in Stage.allCases {
            while var queue = queues[stage], !queue.isEmpty {
                let candidates = workers.filter { $0.value.stage == stage && $0.value.freeCredit > 0 }
                guard let (workerKey, worker) = candidates.min(by: { $0.value.expectedFinish < $1.value.expectedFinish })
                else { break }
                let burst = min(queue.count, worker.freeCredit, Int(max(worker.registration.maxBatch, 1)))
                let keys = Array(queue.prefix(burst))
                queue.removeFirst(burst)
                queues[stage] = queue
                for key in keys { send(task: key, stage: stage, worker: workerKey, loop: loop) }
            }
        }
    }

    private func send(task key: String, stage: Stage, worker workerKey: String, loop: SocketLoop) {
        guard var flight = flights[key], var worker = workers[workerKey] else { return }
        let left = flight.deadline - .now
        let leftMilliseconds = max(1, left.inMilliseconds)
        let envelope = Envelope.make(requestID: key, stage: stage, attempt: flight.attempt + 1,
                                     deadlineMilliseconds: leftMilliseconds)
        let progress = flight.progress
        let message: WireMessage = switch stage {
        case .vision: .visionTask(progress.visionRequest(), envelope: envelope)
        case .caption: .captionTask(progress.captionRequest(), envelope: envelope)
        case .selector: .selectorTask(progress.selectionRequest(), envelope: envelope)
        case .decoder: .decoderTask(progress.decodeRequest(), envelope: envelope)
        }
        switch loop.trySend([Frame(copying: worker.routingID)] + message.frames(), on: workerSocket) {
        case .sent:
            flight.attempt += 1
            if stage == .decoder { flight.stream.restart() }
            flight.worker = workerKey
            flights[key] = flight
            worker.inFlight.insert(key)
            workers[workerKey] = worker
        case .full:
            // Not queued: back to the front; the attempt number is not used up.
            queues[stage, default: []].insert(key, at: 0)
        case .unreachable:
            queues[stage, default: []].insert(key, at: 0)
            dropWorker(workerKey, reason: "its connection is gone", loop: loop)
        }
    }

    // MARK: Status

    private func status() -> Accm_V1_Status {
        var status = Accm_V1_Status()
        status.modelIdentity = modelIdentity ?? ""
        status.droppedMessages = UInt64(counts.dropped)
        status.processID = UInt32(getpid())
        status.answered = UInt64(counts.answered)
        status.failed = UInt64(counts.failed)
        status.redispatched = UInt64(counts.redispatched)
        status.expired = UInt64(counts.expired)
        status.refusedPeers = UInt64(counts.refused)
        status.inFlight = UInt32(flights.count)
        status.curve = options.security != nil
        let now = ContinuousClock.now
        status.workers = workers.sorted { ($0.value.stage.rawValue, $0.key) < ($1.value.stage.rawValue, $1.key) }.map { key, w in
            var s = Accm_V1_WorkerStatus()
            s.workerID = String(decoding: w.routingID, as: UTF8.self)
            s.stage = w.stage.wire
            s.address = w.address
            s.modelPath = w.registration.modelPath
            s.threads = w.registration.threads
            s.maxBatch = w.registration.maxBatch
            s.credits = UInt32(w.window)
            s.inFlight = UInt32(w.inFlight.count)
            s.completed = w.completed
            let silence = now - w.lastHeard
            s.lastHeartbeatMsAgo = silence.inMilliseconds
            s.itemsPerSecond = w.itemsPerSecond
            s.processID = w.registration.processID
            s.restarts = w.registration.restarts
            s.stopped = w.stopped
            s.keyName = w.keyName
            return s
        }
        status.queues = Stage.allCases.map { stage in
            var q = Accm_V1_StageQueue()
            q.stage = stage.wire
            q.waiting = UInt32(queues[stage]?.count ?? 0)
            return q
        }
        return status
    }
}
