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

    public init(stage: Stage, coordinator: String, threads: Int, maxBatch: Int = 8, wire: WireLimits = WireLimits()) {
        self.stage = stage
        self.coordinator = coordinator
        self.threads = threads
        self.maxBatch = maxBatch
        self.wire = wire
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
        link = WorkerLink(registration: registration, wire: options.wire)
        var random = [UInt8](repeating: 0, count: 6)
        for i in random.indices { random[i] = UInt8.random(in: 0...255) }
        let routingID = "\(loaded.stage.rawValue)-\(getpid())-" + random.map { String($0, radix: 16) }.joined()
        thread = try SocketThread(context: context, sockets: [
            SocketSpec(kind: .dealer, endpoint: options.coordinator, bind: false, routingID: routingID,
                       maxFrameBytes: options.wire.maxFrameBytes),
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
        while let batch = link.tasks.take(upTo: options.maxBatch) {
            let start = ContinuousClock.now
            let outputs = compute(batch)
            let elapsed = ContinuousClock.now - start
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
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
    /// `maxBatch`), and each leaves it, answered, as soon as it finishes.
    private func runContinuously(_ stage: DecoderStage) {
        struct Task {
            let envelope: Envelope
            let joined: ContinuousClock.Instant
            var sequence: UInt64 = 0
        }
        var session = stage.session()
        var tasks: [Int: Task] = [:]
        var nextID = 0
        func seconds(since start: ContinuousClock.Instant) -> Double {
            let d = ContinuousClock.now - start
            return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
        }
        func fail(_ envelope: Envelope, _ error: Error) {
            thread.send(WireMessage.error(StageError(classifying: error), requestID: envelope.requestID, stage: .decoder,
                                          attempt: envelope.attempt).frames(), on: 0)
        }
        while true {
            let incoming = session.isEmpty
                ? link.tasks.take(upTo: options.maxBatch) : link.tasks.poll(upTo: options.maxBatch - session.count)
            guard let incoming else { return }
            for message in incoming {
                do {
                    try session.join(nextID, try message.decodeRequest())
                    tasks[nextID] = Task(envelope: message.envelope, joined: .now)
                    nextID += 1
                } catch {
                    fail(message.envelope, error)
                    link.finished(1, seconds: 0)
                }
            }
            guard !session.isEmpty else { continue }
            let start = ContinuousClock.now
            do {
                let finished = try session.step { id, delta in
                    guard let task = tasks[id] else { return true }
                    if link.cancelled.withLock({ $0.contains(task.envelope.requestID) }) { return false }
                    var message = WireMessage.partial(delta, sequence: task.sequence, requestID: task.envelope.requestID)
                    message.envelope.stage = task.envelope.stage
                    message.envelope.attempt = task.envelope.attempt
                    thread.send(message.frames(), on: 0)
                    tasks[id]?.sequence += 1
                    return true
                }
                for (id, result) in finished {
                    guard let task = tasks.removeValue(forKey: id) else { continue }
                    link.cancelled.withLock { _ = $0.remove(task.envelope.requestID) }
                    var output = WireMessage.decoderOutput(result, envelope: Self.replyEnvelope(task.envelope))
                    output.envelope.computeSeconds = seconds(since: task.joined)
                    thread.send(output.frames(), on: 0)
                }
                link.finished(finished.count, seconds: seconds(since: start))
            } catch {
                // The step itself failed (non-finite logits): every request in it fails with the error.
                for task in tasks.values { fail(task.envelope, error) }
                link.finished(tasks.count, seconds: seconds(since: start))
                tasks.removeAll()
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

/// The tasks received and not yet computed (filled on the socket thread, drained by `run`).
final class TaskQueue: @unchecked Sendable {
    private let items = Mutex<(queue: [WireMessage], closed: Bool)>(([], false))
    private let available = DispatchSemaphore(value: 0)

    func put(_ message: WireMessage) {
        items.withLock { $0.queue.append(message) }
        available.signal()
    }

    func close() {
        items.withLock { $0.closed = true }
        available.signal()
    }

    var count: Int { items.withLock { $0.queue.count } }

    /// Drops a queued task (its semaphore count stays: a take that finds nothing waits again).
    func remove(requestID: String) {
        items.withLock { $0.queue.removeAll { $0.envelope.requestID == requestID } }
    }

    /// Takes up to `limit` tasks without waiting; nil once closed.
    func poll(upTo limit: Int) -> [WireMessage]? {
        guard limit > 0 else { return items.withLock { $0.closed } ? nil : [] }
        return items.withLock { state -> [WireMessage]? in
            if state.closed { return nil }
            var taken: [WireMessage] = []
            while taken.count < limit, !state.queue.isEmpty, available.wait(timeout: .now()) == .success {
                taken.append(state.queue.removeFirst())
            }
            return taken
        }
    }

    /// Waits for at least one task and takes up to `limit`; nil once closed.
    func take(upTo limit: Int) -> [WireMessage]? {
        while true {
            available.wait()
            let batch = items.withLock { state -> [WireMessage]? in
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

/// The worker's side of the socket: registration, heartbeats, tasks in.
final class WorkerLink: SocketHandler, @unchecked Sendable {
    let tasks = TaskQueue()
    private let registration: Accm_V1_Register
    private let wire: WireLimits
    private let state = Mutex<(welcomed: Bool, completed: UInt64, busySeconds: Double, fatal: String?)>((false, 0, 0, nil))
    private var lastRegister: ContinuousClock.Instant?
    private var lastHeartbeat = ContinuousClock.now
    /// When the coordinator was last heard; silent for 5 intervals, it is registered with again.
    private var lastHeard = ContinuousClock.now
    /// Requests the coordinator cancelled (dropped from the queue, or stopped at the decoder's next step).
    let cancelled = Mutex<Set<String>>([])
    private var heartbeatInterval = Duration.seconds(1)

    init(registration: Accm_V1_Register, wire: WireLimits) {
        self.registration = registration
        self.wire = wire
    }

    var fatal: String? { state.withLock { $0.fatal } }

    func finished(_ count: Int, seconds: Double) {
        state.withLock {
            $0.completed += UInt64(count)
            $0.busySeconds += seconds
        }
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
        lastHeard = .now
        switch envelope.body {
        case .cancel:
            tasks.remove(requestID: envelope.requestID)
            if registration.stage == .decoder {  // a decoding task stops at its next step
                cancelled.withLock {
                    if $0.count > 10_000 { $0.removeAll() }
                    $0.insert(envelope.requestID)
                }
            }
        case .welcome(let welcome):
            state.withLock { $0.welcomed = true }
            heartbeatInterval = .milliseconds(max(100, Int(welcome.heartbeatIntervalMs)))
        case .visionTask, .captionTask, .selectorTask, .decoderTask:
            guard envelope.stage == registration.stage else {
                let error = StageError(.wrongStage, "this worker serves the \(Stage(wire: registration.stage)?.rawValue ?? "?") "
                    + "stage, not \(Stage(wire: envelope.stage)?.rawValue ?? "an unknown one")")
                loop.send(WireMessage.error(error, requestID: envelope.requestID, attempt: envelope.attempt).frames(), on: 0)
                return
            }
            tasks.put(decoded)
        case .error(let error):
            let code = StageErrorCode(wire: error.code)
            if code == .modelMismatch || code == .invalidMessage && !state.withLock({ $0.welcomed }) {
                state.withLock { $0.fatal = "the coordinator refused this worker: \(error.message)" }
                tasks.close()
            } else if code == .notRegistered {
                state.withLock { $0.welcomed = false }  // the coordinator forgot us: register again
            }
        default:
            break
        }
    }

    func tick(loop: SocketLoop) {
        let now = ContinuousClock.now
        let (welcomed, completed, busy) = state.withLock { ($0.welcomed, $0.completed, $0.busySeconds) }
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
            state.withLock { $0.welcomed = false }  // the coordinator went quiet: register again
            lastRegister = nil
            lastHeard = now
            return
        }
        if now - lastHeartbeat >= heartbeatInterval {
            var e = Envelope.make(requestID: "")
            var beat = Accm_V1_Heartbeat()
            beat.completed = completed
            beat.inFlight = UInt32(tasks.count)
            beat.itemsPerSecond = busy > 0 ? Double(completed) / busy : 0
            e.heartbeat = beat
            _ = loop.send(WireMessage(e).frames(), on: 0)
            lastHeartbeat = now
        }
    }
}
