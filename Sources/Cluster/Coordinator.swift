// The coordinator: two ROUTERs (workers, clients) on one socket thread, which also runs the whole state
// machine, so nothing here needs a lock. Workers register (stage, model identity, capacity) and grant credit;
// each request's `RequestProgress` says which stage it needs next; a stage's waiting requests are dispatched
// in bursts up to a worker's batch size, to the replica expected to finish them first (its in-flight work
// over its measured throughput). Every queue is bounded: a SUBMIT beyond it is answered "overloaded" at once.

import ACCMMessages
import Transport
import Wire

/// How a coordinator is set up.
public struct CoordinatorOptions: Sendable {
    /// Where workers connect (`tcp://host:port`; port `*` picks a free one).
    public var workersEndpoint: String
    /// Where clients connect.
    public var clientsEndpoint: String
    /// How often workers heartbeat; a worker silent for `livenessIntervals` of them is dropped.
    public var heartbeatIntervalMilliseconds: Int
    public var livenessIntervals: Int
    /// Requests waiting for one stage; beyond it a SUBMIT is refused with `overloaded`.
    public var maxQueuedPerStage: Int
    /// Requests in the cluster at once.
    public var maxInFlight: Int
    public var wire: WireLimits
    public var requests: RequestLimits

    public init(workersEndpoint: String, clientsEndpoint: String, heartbeatIntervalMilliseconds: Int = 1000,
                livenessIntervals: Int = 5, maxQueuedPerStage: Int = 256, maxInFlight: Int = 1024,
                wire: WireLimits = WireLimits(), requests: RequestLimits = .default) {
        self.workersEndpoint = workersEndpoint
        self.clientsEndpoint = clientsEndpoint
        self.heartbeatIntervalMilliseconds = heartbeatIntervalMilliseconds
        self.livenessIntervals = livenessIntervals
        self.maxQueuedPerStage = maxQueuedPerStage
        self.maxInFlight = maxInFlight
        self.wire = wire
        self.requests = requests
    }
}

/// A running coordinator.
public final class Coordinator: @unchecked Sendable {
    private let thread: SocketThread
    private let state: CoordinatorState

    /// Binds both sockets and starts serving.
    public init(context: ZeroMQContext, options: CoordinatorOptions) throws {
        state = CoordinatorState(options: options)
        thread = try SocketThread(context: context, sockets: [
            SocketSpec(kind: .router, endpoint: options.workersEndpoint, bind: true, maxFrameBytes: options.wire.maxFrameBytes),
            SocketSpec(kind: .router, endpoint: options.clientsEndpoint, bind: true, maxFrameBytes: options.wire.maxFrameBytes),
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
    var window: Int
    /// Request keys dispatched to it and not yet answered.
    var inFlight: Set<String> = []
    var completed: UInt64 = 0
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
    var attempt: UInt32 = 0
    /// The worker holding its current stage, if dispatched.
    var worker: String?
    var partialsSent: UInt64 = 0
}

final class CoordinatorState: SocketHandler {
    let options: CoordinatorOptions
    var workers: [String: WorkerRecord] = [:]
    var flights: [String: Flight] = [:]
    var queues: [Stage: [String]] = [:]
    var modelIdentity: String?
    var droppedMessages = 0
    private var lastHeartbeat = ContinuousClock.now

    init(options: CoordinatorOptions) {
        self.options = options
    }

    private static func key(_ id: [UInt8]) -> String { id.map { String($0, radix: 16) }.joined(separator: ".") }

    private func send(_ message: WireMessage, to peer: [UInt8], on socket: Int, loop: SocketLoop) {
        if !loop.send([Frame(copying: peer)] + message.frames(), on: socket) { droppedMessages += 1 }
    }

    // MARK: Events

    func received(_ message: ReceivedFrames, loop: SocketLoop) {
        guard let identity = message.frames.first?.array else { return }
        let body = Array(message.frames.dropFirst())
        let decoded: WireMessage
        do {
            decoded = try WireMessage.decode(body, droppedFrames: message.droppedFrames, limits: options.wire)
        } catch {
            droppedMessages += 1
            send(.error(error, requestID: ""), to: identity, on: message.socket, loop: loop)
            return
        }
        if message.socket == workerSocket {
            workerMessage(decoded, from: identity, address: message.peerAddress, loop: loop)
        } else {
            clientMessage(decoded, from: identity, loop: loop)
        }
        dispatch(loop: loop)
    }

    func tick(loop: SocketLoop) {
        let now = ContinuousClock.now
        let liveness = Duration.milliseconds(options.heartbeatIntervalMilliseconds * options.livenessIntervals)
        for (key, worker) in workers where now - worker.lastHeard > liveness {
            dropWorker(key, reason: "missed heartbeats for \(liveness)", loop: loop)
        }
        // Heartbeats run both ways: a worker that stops hearing the coordinator registers again.
        if now - lastHeartbeat >= .milliseconds(options.heartbeatIntervalMilliseconds) {
            var e = Envelope.make(requestID: "")
            e.heartbeat = Accm_V1_Heartbeat()
            let frames = WireMessage(e).frames()
            for worker in workers.values { loop.send([Frame(copying: worker.routingID)] + frames, on: workerSocket) }
            lastHeartbeat = now
        }
        dispatch(loop: loop)
    }

    // MARK: Workers

    private func workerMessage(_ message: WireMessage, from identity: [UInt8], address: String, loop: SocketLoop) {
        let key = Self.key(identity)
        let envelope = message.envelope
        if case .register(let registration)? = envelope.body {
            register(registration, key: key, identity: identity, address: address, loop: loop)
            return
        }
        guard var worker = workers[key] else {
            droppedMessages += 1
            send(.error(StageError(.notRegistered, "this worker has not registered (send REGISTER first)"),
                        requestID: envelope.requestID), to: identity, on: workerSocket, loop: loop)
            return
        }
        worker.lastHeard = .now
        workers[key] = worker
        switch envelope.body {
        case .heartbeat(let beat):
            workers[key]?.completed = beat.completed
            if beat.itemsPerSecond > 0 { workers[key]?.itemsPerSecond = beat.itemsPerSecond }
        case .partial(let partial):
            guard var flight = flights[envelope.requestID], flight.worker == key, flight.attempt == envelope.attempt else {
                droppedMessages += 1
                return
            }
            guard partial.sequence == flight.partialsSent else { return }  // a repeat: already forwarded
            flight.partialsSent += 1
            flights[envelope.requestID] = flight
            send(.partial(partial.delta, sequence: partial.sequence, requestID: flight.clientRequestID),
                 to: flight.client, on: clientSocket, loop: loop)
        case .visionOutput, .captionOutput, .selectorOutput, .decoderOutput, .error:
            stageOutput(message, worker: key, loop: loop)
        default:
            droppedMessages += 1
        }
    }

    private func register(_ r: Accm_V1_Register, key: String, identity: [UInt8], address: String, loop: SocketLoop) {
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
        modelIdentity = r.modelIdentity
        if workers[key] != nil { dropWorker(key, reason: "registered again", loop: loop) }
        workers[key] = WorkerRecord(
            routingID: identity, stage: stage, registration: r, address: address,
            window: Int(max(1, min(r.credits, 4096))), itemsPerSecond: Double(max(r.threads, 1)), lastHeard: .now)
        var e = Envelope.make(requestID: "")
        var welcome = Accm_V1_Welcome()
        welcome.heartbeatIntervalMs = UInt32(options.heartbeatIntervalMilliseconds)
        e.welcome = welcome
        send(WireMessage(e), to: identity, on: workerSocket, loop: loop)
    }

    /// Forgets a worker; the requests it held go back to the front of their queue (their stage had not
    /// finished), except a decoder's that already streamed text, which fail (re-running it is the fault
    /// issue's: the client would see tokens twice).
    private func dropWorker(_ key: String, reason: String, loop: SocketLoop) {
        guard let worker = workers.removeValue(forKey: key) else { return }
        for requestKey in worker.inFlight {
            guard var flight = flights[requestKey] else { continue }
            flight.worker = nil
            flight.attempt += 1
            if flight.partialsSent > 0 {
                flights[requestKey] = flight
                finish(requestKey, StageError(.stageUnavailable, "the decoder worker answering it was lost (\(reason))"),
                       loop: loop)
            } else {
                flights[requestKey] = flight
                queues[worker.stage, default: []].insert(requestKey, at: 0)
            }
        }
    }

    private func stageOutput(_ message: WireMessage, worker key: String, loop: SocketLoop) {
        let envelope = message.envelope
        let requestKey = envelope.requestID
        workers[key]?.inFlight.remove(requestKey)
        guard var flight = flights[requestKey], flight.worker == key, flight.attempt == envelope.attempt else {
            droppedMessages += 1  // late or stale: its request was answered or moved on
            return
        }
        flight.worker = nil
        if let error = message.stageError {
            flights[requestKey] = flight
            finish(requestKey, error, loop: loop)
            return
        }
        do {
            let seconds = envelope.computeSeconds
            switch envelope.body {
            case .visionOutput: try flight.progress.record(message.visionResult(), seconds: seconds)
            case .captionOutput: try flight.progress.record(message.captionResult(), seconds: seconds)
            case .selectorOutput: try flight.progress.record(message.selectionResult(), seconds: seconds)
            case .decoderOutput: try flight.progress.record(message.decodeResult(), seconds: seconds)
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
            cancel(Self.key(identity) + "/" + envelope.requestID, loop: loop)
        case .statusRequest:
            var e = Envelope.make(requestID: envelope.requestID)
            e.status = status()
            send(WireMessage(e), to: identity, on: clientSocket, loop: loop)
        default:
            droppedMessages += 1
            send(.error(StageError(.invalidMessage, "clients may send SUBMIT or STATUS_REQUEST"),
                        requestID: envelope.requestID), to: identity, on: clientSocket, loop: loop)
        }
    }

    private func submit(_ message: WireMessage, from identity: [UInt8], loop: SocketLoop) {
        let requestID = message.envelope.requestID
        func refuse(_ error: StageError) { send(.error(error, requestID: requestID), to: identity, on: clientSocket, loop: loop) }
        let key = Self.key(identity) + "/" + requestID
        guard !requestID.isEmpty, requestID.utf8.count <= 256 else {
            return refuse(StageError(.invalidMessage, "a SUBMIT needs a request_id of 1 to 256 bytes"))
        }
        guard flights[key] == nil else { return }  // a repeated SUBMIT: the first one is being answered
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
        let needed: [Stage] = request.compensate && request.pruning != .none
            ? Stage.allCases : [.vision, .decoder]
        if let missing = needed.first(where: { stage in !workers.values.contains { $0.stage == stage } }) {
            return refuse(StageError(.stageUnavailable, "no live \(missing.rawValue) worker is registered"))
        }
        guard flights.count < options.maxInFlight, queues[.vision, default: []].count < options.maxQueuedPerStage else {
            return refuse(StageError(.overloaded, "the cluster holds \(flights.count) requests; try again shortly",
                                     retryAfterMilliseconds: 200))
        }
        flights[key] = Flight(progress: RequestProgress(request), client: identity, clientRequestID: requestID)
        queues[.vision, default: []].append(key)
    }

    /// A client's CANCEL: the request is answered `cancelled` now; the worker holding it is told (a queued task
    /// is dropped, a decoding one stops at its next step) and whatever it still sends is dropped as stale.
    private func cancel(_ key: String, loop: SocketLoop) {
        guard let flight = flights[key] else { return }
        if let workerKey = flight.worker, let worker = workers[workerKey] {
            var e = Envelope.make(requestID: key, stage: worker.stage, attempt: flight.attempt)
            e.cancel = Accm_V1_Cancel()
            loop.send([Frame(copying: worker.routingID)] + WireMessage(e).frames(), on: workerSocket)
            workers[workerKey]?.inFlight.remove(key)
        }
        finish(key, StageError(.cancelled, "the client cancelled the request"), loop: loop)
    }

    // MARK: Progress

    /// Queues the request for its next stage, or answers it.
    private func advance(_ key: String, loop: SocketLoop) {
        guard let flight = flights[key] else { return }
        if let next = flight.progress.next {
            queues[next, default: []].append(key)
        } else if let outcome = flight.progress.outcome {
            switch outcome {
            case .success(let answer):
                flights.removeValue(forKey: key)
                send(.answer(answer, requestID: flight.clientRequestID), to: flight.client, on: clientSocket, loop: loop)
            case .failure(let error):
                finish(key, error, loop: loop)
            }
        }
    }

    /// Answers the request with `error` and forgets it.
    private func finish(_ key: String, _ error: StageError, loop: SocketLoop) {
        guard let flight = flights.removeValue(forKey: key) else { return }
        for stage in Stage.allCases { queues[stage]?.removeAll { $0 == key } }
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
        let envelope = Envelope.make(requestID: key, stage: stage, attempt: flight.attempt)
        let progress = flight.progress
        let message: WireMessage = switch stage {
        case .vision: .visionTask(progress.visionRequest(), envelope: envelope)
        case .caption: .captionTask(progress.captionRequest(), envelope: envelope)
        case .selector: .selectorTask(progress.selectionRequest(), envelope: envelope)
        case .decoder: .decoderTask(progress.decodeRequest(), envelope: envelope)
        }
        guard loop.send([Frame(copying: worker.routingID)] + message.frames(), on: workerSocket) else {
            // Not queued (the worker's pipe is full or it is gone): back to the front, no attempt counted.
            queues[stage, default: []].insert(key, at: 0)
            return
        }
        flight.worker = workerKey
        flights[key] = flight
        worker.inFlight.insert(key)
        workers[workerKey] = worker
    }

    // MARK: Status

    private func status() -> Accm_V1_Status {
        var status = Accm_V1_Status()
        status.modelIdentity = modelIdentity ?? ""
        status.droppedMessages = UInt64(droppedMessages)
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
            s.lastHeartbeatMsAgo = silence.components.seconds * 1000 + silence.components.attoseconds / 1_000_000_000_000_000
            s.itemsPerSecond = w.itemsPerSecond
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
