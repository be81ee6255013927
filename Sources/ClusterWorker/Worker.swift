// A stage worker: loads one stage of a model directory, connects out to the coordinator (DEALER → ROUTER),
// registers, heartbeats, and computes the tasks it is sent, a batch at a time, on the thread that called
// `run` while the socket thread keeps talking. Each task's result (or its own typed error) goes back as
// soon as its batch is done; the decoder streams text as it is made.

import ACCM
import Cluster
import Dispatch
import Synchronization
import Tensor
import Transport
import Wire

#if canImport(Glibc)
import Glibc
#endif

/// How a worker runs.
public struct WorkerOptions: Sendable {
    public var stage: Stage
    /// The coordinator's worker endpoint.
    public var coordinator: String
    public var threads: Int
    public var maxBatch: Int
    public var wire: WireLimits
    /// Times a supervisor restarted this worker slot (reported in `accm cluster status`).
    public var restarts: Int
    /// CURVE: this worker's key pair and the coordinator's public key; nil: plain TCP.
    public var curve: (keys: CurveKeyPair, coordinatorKey: String)?
    /// What its stage computes with: the weight formats and, for the caption and decoder stages, the KV cache
    /// format (`WeightFormatChoice.description(of:kvCache:)`); every replica of a stage must agree.
    public var weightFormats: String = ""

    public init(stage: Stage, coordinator: String, threads: Int, maxBatch: Int = 8, wire: WireLimits = WireLimits(),
                restarts: Int = 0, curve: (keys: CurveKeyPair, coordinatorKey: String)? = nil, weightFormats: String = "") {
        self.stage = stage
        self.coordinator = coordinator
        self.threads = threads
        self.maxBatch = maxBatch
        self.wire = wire
        self.restarts = restarts
        self.curve = curve
        self.weightFormats = weightFormats
    }
}

/// The stage a worker serves, loaded.
public enum LoadedStage: Sendable {
    case vision(VisionStage), caption(CaptionStage), selector(SelectorStage), decoder(DecoderStage)

    /// Loads only `stage`'s weights and tokenizers from `model`.
    public static func load(_ stage: Stage, from model: ModelDirectory, limits: RequestLimits = .default) throws -> LoadedStage {
        switch stage {
        case .vision: .vision(try VisionStage.load(model, imageLimits: limits.image))
        case .caption: .caption(try CaptionStage.load(model))
        case .selector: .selector(try SelectorStage.load(model))
        case .decoder: .decoder(try DecoderStage.load(model))
        }
    }

    /// Builds only `stage` of the random-weight bench model.
    public static func load(_ stage: Stage, from bench: BenchModel) throws -> LoadedStage {
        switch stage {
        case .vision: .vision(try bench.vision())
        case .caption: .caption(try bench.caption())
        case .selector: .selector(try bench.selector())
        case .decoder: .decoder(try bench.decoder())
        }
    }

    var stage: Stage {
        switch self {
        case .vision: .vision
        case .caption: .caption
        case .selector: .selector
        case .decoder: .decoder
        }
    }
}

/// Why a worker stopped for good.
public struct WorkerStopped: Error, CustomStringConvertible, Sendable {
    public let description: String
}

/// A running worker.
public final class StageWorker: @unchecked Sendable {
    private let options: WorkerOptions
    private let loaded: LoadedStage
    private let link: WorkerLink
    private let thread: SocketThread

    /// Connects to the coordinator and starts registering (the stage is already loaded).
    public init(context: ZeroMQContext, stage loaded: LoadedStage, modelIdentity: String, modelPath: String,
                options: WorkerOptions) throws {
        self.options = options
        self.loaded = loaded
        var registration = Accm_V1_Register()
        registration.stage = loaded.stage.wire
        registration.modelIdentity = modelIdentity
        registration.modelPath = modelPath
        registration.threads = UInt32(options.threads)
        registration.maxBatch = UInt32(options.maxBatch)
        registration.credits = UInt32(2 * options.maxBatch)  // one batch computing, the next one filling
        registration.maxFrameBytes = UInt64(options.wire.maxFrameBytes)
        registration.processID = UInt32(getpid())
        registration.restarts = UInt32(clamping: options.restarts)
        registration.weightFormats = options.weightFormats
        link = WorkerLink(registration: registration, wire: options.wire)
        var random = [UInt8](repeating: 0, count: 6)
        for i in random.indices { random[i] = UInt8.random(in: 0...255) }
        let routingID = "\(loaded.stage.rawValue)-\(getpid())-" + random.map { String($0, radix: 16) }.joined()
        thread = try SocketThread(context: context, sockets: [
            SocketSpec(kind: .dealer, endpoint: options.coordinator, bind: false, routingID: routingID,
                       maxFrameBytes: options.wire.maxFrameBytes,
                       curve: options.curve.map { .client($0.keys, serverPublicKey: $0.coordinatorKey) }),
        ], tickInterval: .milliseconds(100), handler: link)
    }

    /// Computes tasks until `stop()`, or until the coordinator refuses this worker (thrown).
    public func run() throws {
        if case .decoder(let stage) = loaded {
            runContinuously(stage)
            thread.stop()
            if let fatal = link.fatal { throw WorkerStopped(description: fatal) }
            return
        }
        while let taken = link.tasks.take(upTo: options.maxBatch) {
            let batch = taken.filter { task in
                guard let reason = link.abandonment(of: task) else { return true }
                link.stop(task, reason: reason)
                return false
            }
            guard !batch.isEmpty else { continue }
            let start = ContinuousClock.now
            let outputs = compute(batch.map(\.message))
            let elapsed = ContinuousClock.now - start
            let seconds = elapsed.inSeconds
            for var output in outputs {
                output.envelope.computeSeconds = seconds
                thread.send(output.frames(), on: 0)
            }
            link.finished(batch.count, seconds: seconds)
        }
        thread.stop()
        if let fatal = link.fatal { throw WorkerStopped(description: fatal) }
    }

    /// The decoder batches continuously: between decode steps, tasks that arrived join the running batch (up to
    /// `maxBatch`), and each leaves it, answered, as soon as it finishes; one cancelled, past its deadline, or
    /// taken back by the coordinator leaves it unanswered before the next step.
    private func runContinuously(_ stage: DecoderStage) {
        struct Running {
            let task: QueuedTask
            let joined: ContinuousClock.Instant
            var sequence: UInt64 = 0
            var envelope: Envelope { task.message.envelope }
        }
        var session = stage.session()
        var running: [Int: Running] = [:]
        var nextID = 0
        func seconds(since start: ContinuousClock.Instant) -> Double {
            let d = ContinuousClock.now - start
            return d.inSeconds
        }
        func fail(_ envelope: Envelope, _ error: Error) {
            thread.send(WireMessage.error(StageError(classifying: error), requestID: envelope.requestID, stage: .decoder,
                                          attempt: envelope.attempt).frames(), on: 0)
        }
        while true {
            let incoming = session.isEmpty
                ? link.tasks.take(upTo: options.maxBatch) : link.tasks.poll(upTo: options.maxBatch - session.count)
            guard let incoming else { return }
            for task in incoming {
                if let reason = link.abandonment(of: task) {
                    link.stop(task, reason: reason)
                    continue
                }
                do {
                    try session.join(nextID, try task.message.decodeRequest())
                    running[nextID] = Running(task: task, joined: .now)
                    nextID += 1
                } catch {
                    fail(task.message.envelope, error)
                    link.finished(1, seconds: 0)
                }
            }
            for (id, entry) in running {
                guard let reason = link.abandonment(of: entry.task) else { continue }
                session.leave(id)
                running.removeValue(forKey: id)
                link.stop(entry.task, reason: reason, tokens: entry.sequence)
            }
            guard !session.isEmpty else { continue }
            let start = ContinuousClock.now
            do {
                let finished = try session.step { id, delta in
                    guard let entry = running[id] else { return true }
                    var message = WireMessage.partial(delta, sequence: entry.sequence, requestID: entry.envelope.requestID)
                    message.envelope.stage = entry.envelope.stage
                    message.envelope.attempt = entry.envelope.attempt
                    thread.send(message.frames(), on: 0)
                    running[id]?.sequence += 1
                    return true
                }
                for (id, result) in finished {
                    guard let entry = running.removeValue(forKey: id) else { continue }
                    var output = WireMessage.decoderOutput(result, envelope: Self.replyEnvelope(entry.envelope))
                    output.envelope.computeSeconds = seconds(since: entry.joined)
                    thread.send(output.frames(), on: 0)
                }
                link.finished(finished.count, seconds: seconds(since: start))
            } catch {
                // The step itself failed (non-finite logits): every request in it fails with the error.
                for entry in running.values { fail(entry.envelope, error) }
                link.finished(running.count, seconds: seconds(since: start))
                running.removeAll()
                session = stage.session()
            }
        }
    }

    /// Asks `run` to return after the batch (for the decoder: the step) it is computing.
    public func stop() { link.tasks.close() }

    /// Every task's output or error message, in order (the vision, caption and selector stages).
    private func compute(_ batch: [WireMessage]) -> [WireMessage] {
        func reply<Request, Output>(
            _ decode: (WireMessage) throws(StageError) -> Request, _ run: ([Request]) throws -> [Output],
            _ encode: (Output, Envelope) -> WireMessage
        ) -> [WireMessage] {
            var decoded: [(Int, Request)] = []
            var out = [WireMessage?](repeating: nil, count: batch.count)
            for (i, message) in batch.enumerated() {
                do {
                    decoded.append((i, try decode(message)))
                } catch {
                    out[i] = .error(error, requestID: message.envelope.requestID, stage: loaded.stage, attempt: message.envelope.attempt)
                }
            }
            for ((i, _), result) in zip(decoded, isolating(decoded.map(\.1), run)) {
                let envelope = batch[i].envelope
                out[i] = switch result {
                case .success(let output): encode(output, Self.replyEnvelope(envelope))
                case .failure(let error): .error(error, requestID: envelope.requestID, stage: loaded.stage, attempt: envelope.attempt)
                }
            }
            return out.compactMap { $0 }
        }
        switch loaded {
        case .vision(let stage):
            return reply({ (m: WireMessage) throws(StageError) in try m.visionRequest() }, { try stage($0) }, WireMessage.visionOutput)
        case .caption(let stage):
            return reply({ (m: WireMessage) throws(StageError) in try m.captionRequest() }, { try stage($0) }, WireMessage.captionOutput)
        case .selector(let stage):
            return reply({ (m: WireMessage) throws(StageError) in try m.selectionRequest() }, { try stage($0) },
                         WireMessage.selectorOutput)
        case .decoder:
            preconditionFailure("the decoder batches continuously (runContinuously), never through compute")
        }
    }

    private static func replyEnvelope(_ task: Envelope) -> Envelope {
        Envelope.make(requestID: task.requestID, stage: Stage(wire: task.stage), attempt: task.attempt)
    }
}

/// A task as received: its message, when its deadline passes here (from the milliseconds left it carried),
/// and the registration it arrived under.
struct QueuedTask: Sendable {
    let message: WireMessage
    let deadline: ContinuousClock.Instant?
    let registration: Int
    /// "request#attempt": what a cancel names (made once: the decoder checks it at every step).
    let key: String

    init(message: WireMessage, deadline: ContinuousClock.Instant?, registration: Int) {
        self.message = message
        self.deadline = deadline
        self.registration = registration
        key = Self.key(requestID: message.envelope.requestID, attempt: message.envelope.attempt)
    }

    static func key(requestID: String, attempt: UInt32) -> String { requestID + "#" + String(attempt) }
}

/// The tasks received and not yet computed (filled on the socket thread, drained by `run`).
final class TaskQueue: @unchecked Sendable {
    private let items = Mutex<(queue: [QueuedTask], closed: Bool)>(([], false))
    private let available = DispatchSemaphore(value: 0)

    func put(_ task: QueuedTask) {
        items.withLock { $0.queue.append(task) }
        available.signal()
    }

    func close() {
        items.withLock { $0.closed = true }
        available.signal()
    }

    var count: Int { items.withLock { $0.queue.count } }

    /// Drops queued tasks (their semaphore counts stay: a take that finds nothing waits again); returns them.
    @discardableResult
    func remove(where predicate: (QueuedTask) -> Bool) -> [QueuedTask] {
        items.withLock { state in
            let removed = state.queue.filter(predicate)
            state.queue.removeAll(where: predicate)
            return removed
        }
    }

    /// Takes up to `limit` tasks without waiting; nil once closed.
    func poll(upTo limit: Int) -> [QueuedTask]? {
        guard limit > 0 else { return items.withLock { $0.closed } ? nil : [] }
        return items.withLock { state -> [QueuedTask]? in
            if state.closed { return nil }
            var taken: [QueuedTask] = []
            while taken.count < limit, !state.queue.isEmpty, available.wait(timeout: .now()) == .success {
                taken.append(state.queue.removeFirst())
            }
            return taken
        }
    }

    /// Waits for at least one task and takes up to `limit`; nil once closed.
    func take(upTo limit: Int) -> [QueuedTask]? {
        while true {
            available.wait()
            let batch = items.withLock { state -> [QueuedTask]? in
                if state.closed { return nil }
                let n = min(limit, state.queue.count)
                defer { state.queue.removeFirst(n) }
                return Array(state.queue.prefix(n))
            }
            guard let batch else {
                available.signal()  // let any other waiter see the close too
                return nil
            }
            if !batch.isEmpty {
                // Semaphore counts beyond one per task taken are left for later takes.
                for _ in 1..<batch.count { available.wait() }
                return batch
            }
        }
    }
}

/// The worker's side of the socket: registration, heartbeats, tasks in, cancels.
final class WorkerLink: SocketHandler, @unchecked Sendable {
    let tasks = TaskQueue()
    private let registration: Accm_V1_Register
    private let wire: WireLimits
    private struct Shared {
        var welcomed = false
        /// Bumped each time the coordinator is lost: tasks of an earlier registration were taken back.
        var registration = 0
        var completed: UInt64 = 0
        var stopped: UInt64 = 0
        var busySeconds = 0.0
        var fatal: String?
        /// "request#attempt" of cancelled tasks (dropped from the queue, or stopped at the decoder's next step).
        var cancelled: Set<String> = []
        /// "request#attempt" of tasks received, most recent last: a repeated task is ignored.
        var seen: Set<String> = []
        var seenOrder: [String] = []
    }
    private let state = Mutex(Shared())
    private var lastRegister: ContinuousClock.Instant?
    private var lastHeartbeat = ContinuousClock.now
    /// When the coordinator was last heard; silent for 5 intervals, it is registered with again.
    private var lastHeard = ContinuousClock.now
    private var heartbeatInterval = Duration.seconds(1)
    private var lastHandshakeLog: ContinuousClock.Instant?

    init(registration: Accm_V1_Register, wire: WireLimits) {
        self.registration = registration
        self.wire = wire
    }

    var fatal: String? { state.withLock { $0.fatal } }

    private var stageName: String { Stage(wire: registration.stage)?.rawValue ?? "?" }

    static func log(_ line: String) {
        let bytes = Array("worker: \(line)\n".utf8)
        _ = write(2, bytes, bytes.count)
    }

    func finished(_ count: Int, seconds: Double) {
        state.withLock {
            $0.completed += UInt64(count)
            $0.busySeconds += seconds
        }
    }

    /// Why `task` must not be (or no longer be) computed: cancelled, past its deadline, or given to another
    /// replica when this worker lost the coordinator; nil: compute it.
    func abandonment(of task: QueuedTask) -> String? {
        let (cancelled, registration) = state.withLock { ($0.cancelled.contains(task.key), $0.registration) }
        if cancelled { return "cancelled" }
        if task.registration != registration { return "taken back: this worker lost the coordinator" }
        if let deadline = task.deadline, deadline <= .now { return "its deadline passed" }
        return nil
    }

    /// Counts and logs a task stopped unanswered (the coordinator has answered it, or will send it elsewhere).
    func stop(_ task: QueuedTask, reason: String, tokens: UInt64? = nil) {
        state.withLock {
            $0.stopped += 1
            $0.cancelled.remove(task.key)
        }
        Self.log("\(stageName): stopped request \(task.message.envelope.requestID) attempt \(task.message.envelope.attempt) "
            + "(\(reason))" + (tokens.map { " after \($0) streamed piece(s) of text" } ?? ""))
    }

    /// The coordinator is gone or forgot this worker: it has given every task held here to another replica.
    private func lostCoordinator(_ why: String) {
        let wasWelcomed = state.withLock { s -> Bool in
            defer {
                s.welcomed = false
                s.registration += 1
            }
            return s.welcomed
        }
        let dropped = tasks.remove { _ in true }
        if wasWelcomed {
            Self.log("\(stageName): \(why); registering again (\(dropped.count) queued task(s) dropped: the coordinator "
                + "sends them elsewhere)")
        }
        state.withLock { $0.stopped += UInt64(dropped.count) }
        lastRegister = nil
    }

    func received(_ message: ReceivedFrames, loop: SocketLoop) {
        let decoded: WireMessage
        do {
            decoded = try WireMessage.decode(message.frames, droppedFrames: message.droppedFrames, limits: wire)
        } catch {
            loop.send(WireMessage.error(error, requestID: "").frames(), on: 0)
            return
        }
        let envelope = decoded.envelope
        let now = ContinuousClock.now
        if now - lastHeard > heartbeatInterval * 5, state.withLock({ $0.welcomed }) {
            // Frozen (SIGSTOP) or cut off past the coordinator's liveness window: it has dropped this worker.
            lostCoordinator("the coordinator was not heard for \(now - lastHeard)")
        }
        lastHeard = now
        switch envelope.body {
        case .cancel:
            let key = QueuedTask.key(requestID: envelope.requestID, attempt: envelope.attempt)
            let removed = tasks.remove { $0.key == key }
            for task in removed { stop(task, reason: "cancelled") }
            if removed.isEmpty {  // computing (the decoder stops it at its next step) or already done
                state.withLock {
                    if $0.cancelled.count > 10_000 { $0.cancelled.removeAll() }
                    $0.cancelled.insert(key)
                }
            }
        case .welcome(let welcome):
            state.withLock { $0.welcomed = true }
            heartbeatInterval = .milliseconds(max(50, Int(welcome.heartbeatIntervalMs)))
        case .visionTask, .captionTask, .selectorTask, .decoderTask:
            guard envelope.stage == registration.stage else {
                let error = StageError(.wrongStage, "this worker serves the \(stageName) "
                    + "stage, not \(Stage(wire: envelope.stage)?.rawValue ?? "an unknown one")")
                loop.send(WireMessage.error(error, requestID: envelope.requestID, attempt: envelope.attempt).frames(), on: 0)
                return
            }
            let key = QueuedTask.key(requestID: envelope.requestID, attempt: envelope.attempt)
            let (fresh, current) = state.withLock { s -> (Bool, Int) in
                guard s.seen.insert(key).inserted else { return (false, s.registration) }
                s.seenOrder.append(key)
                if s.seenOrder.count > 4096 { s.seen.remove(s.seenOrder.removeFirst()) }
                return (true, s.registration)
            }
            guard fresh else { return }  // the same task again: it is being computed
            let deadline = envelope.deadlineMs > 0 ? now + .milliseconds(envelope.deadlineMs) : nil
            tasks.put(QueuedTask(message: decoded, deadline: deadline, registration: current))
        case .error(let error):
            let code = StageErrorCode(wire: error.code)
            if code == .modelMismatch || code == .invalidMessage && !state.withLock({ $0.welcomed }) {
                state.withLock { $0.fatal = "the coordinator refused this worker: \(error.message)" }
                tasks.close()
            } else if code == .notRegistered {
                lostCoordinator("the coordinator does not know this worker (it restarted, or dropped it)")
            }
        default:
            break
        }
    }

    func handshakeFailed(_ failure: HandshakeFailure, loop: SocketLoop) {
        if case .refused = failure.kind {
            // libzmq does not retry a refused key: nothing this process can do will get it in.
            state.withLock { $0.fatal = "cannot join the cluster: \(failure)" }
            tasks.close()
            return
        }
        if lastHandshakeLog.map({ ContinuousClock.now - $0 > .seconds(5) }) ?? true {
            Self.log("\(stageName): \(failure); retrying")
            lastHandshakeLog = .now
        }
    }

    func tick(loop: SocketLoop) {
        let now = ContinuousClock.now
        let (welcomed, completed, stopped, busy) = state.withLock { ($0.welcomed, $0.completed, $0.stopped, $0.busySeconds) }
        if !welcomed {
            if lastRegister.map({ now - $0 > .seconds(1) }) ?? true {
                var e = Envelope.make(requestID: "")
                e.register = registration
                _ = loop.send(WireMessage(e).frames(), on: 0)
                lastRegister = now
            }
            return
        }
        if now - lastHeard > heartbeatInterval * 5 {
            lostCoordinator("the coordinator went quiet for \(now - lastHeard)")
            lastHeard = now
            return
        }
        if now - lastHeartbeat >= heartbeatInterval {
            var e = Envelope.make(requestID: "")
            var beat = Accm_V1_Heartbeat()
            beat.completed = completed
            beat.stopped = stopped
            beat.inFlight = UInt32(tasks.count)
            beat.itemsPerSecond = busy > 0 ? Double(completed) / busy : 0
            e.heartbeat = beat
            _ = loop.send(WireMessage(e).frames(), on: 0)
            lastHeartbeat = now
        }
    }
}
