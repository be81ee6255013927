// A client of the coordinator: one DEALER on its own socket thread. `answer` sends a SUBMIT with its deadline
// and blocks the calling thread (never a Swift task's) until the one final answer, handing streamed text to
// `onText` as it arrives, in order and once each. While it awaits answers it heartbeats the coordinator with
// their ids: a restarted coordinator says which it does not hold, and a silent one is given up on, so a
// request lost with a coordinator ends in a typed error (`coordinator_lost`), never a hang.

import ACCMMessages
import Dispatch
import Synchronization
import Transport
import Wire

#if canImport(Glibc)
import Glibc
#endif

/// How a client talks to its coordinator.
public struct ClusterClientOptions: Sendable {
    public var wire: WireLimits
    /// CURVE: this client's key pair and the coordinator's public key; nil: plain TCP.
    public var curve: (keys: CurveKeyPair, coordinatorKey: String)?
    /// How often it heartbeats while awaiting answers.
    public var heartbeatInterval: Duration
    /// Silence from the coordinator, while awaiting answers, after which they fail as `coordinator_lost`.
    public var lostAfter: Duration
    /// How long past a request's deadline it waits for the coordinator's own `deadline_exceeded`.
    public var deadlineGrace: Duration

    public init(wire: WireLimits = WireLimits(), curve: (keys: CurveKeyPair, coordinatorKey: String)? = nil,
                heartbeatInterval: Duration = .seconds(1), lostAfter: Duration = .seconds(10),
                deadlineGrace: Duration = .seconds(2)) {
        self.wire = wire
        self.curve = curve
        self.heartbeatInterval = heartbeatInterval
        self.lostAfter = lostAfter
        self.deadlineGrace = deadlineGrace
    }
}

/// Submits requests to a cluster.
public final class ClusterClient: @unchecked Sendable {
    private let thread: SocketThread
    private let router: ClientRouter
    private let prefix: String
    private let counter = Atomic<Int>(0)
    private let options: ClusterClientOptions

    /// Connects to the coordinator's client endpoint.
    public init(context: ZeroMQContext, coordinator: String, options: ClusterClientOptions = ClusterClientOptions()) throws {
        var bytes = [UInt8](repeating: 0, count: 8)
        for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255) }
        prefix = "c\(getpid())-" + bytes.map { String($0, radix: 16) }.joined()
        self.options = options
        router = ClientRouter(options: options, coordinator: coordinator)
        thread = try SocketThread(context: context, sockets: [
            SocketSpec(kind: .dealer, endpoint: coordinator, bind: false, routingID: prefix, maxFrameBytes: options.wire.maxFrameBytes,
                       curve: options.curve.map { .client($0.keys, serverPublicKey: $0.coordinatorKey) }),
        ], tickInterval: .milliseconds(50), handler: router)
    }

    deinit { thread.stop() }

    /// Closes the connection.
    public func close() { thread.stop() }

    /// Replies that matched no awaited request: a second final answer, or one that came after its caller gave up.
    public var strayReplies: Int { router.strays.load(ordering: .relaxed) }

    private func nextID() -> String { prefix + "-" + String(counter.add(1, ordering: .relaxed).newValue) }

    /// Sends `request` (its image encoded) with `timeout` as its deadline in the cluster and waits for its answer;
    /// `onText` gets the answer's text as it is made. Throws the request's `StageError`: `deadline_exceeded` from
    /// the coordinator (or locally, when nothing final came within the deadline and its grace), `coordinator_lost`,
    /// `unauthenticated`.
    public func answer(_ request: ACCMRequest, timeout: Duration = .seconds(120),
                       onText: (@Sendable (String) -> Void)? = nil) throws -> ACCMAnswer {
        let id = nextID()
        let waiter = Waiter(onText: onText, isRequest: true)
        try router.register(id, waiter)
        defer { router.forget(id) }
        thread.send(WireMessage.submit(request, requestID: id, deadlineMilliseconds: Self.milliseconds(timeout)).frames(), on: 0)
        do {
            return try waiter.wait(timeout: timeout + options.deadlineGrace).answer()
        } catch let error as StageError where error.code == .deadlineExceeded {
            cancel(id)  // nobody waits for it any more: the cluster stops working on it
            throw error
        }
    }

    /// Sends `request` and returns at once; `onFinish` gets its one final outcome (on the client's socket thread:
    /// keep it short), `onText` its streamed text before that. The outcome is `deadline_exceeded` when nothing final
    /// came within `timeout` and its grace; `cancel` on the returned handle stops the request in every stage.
    public func submit(_ request: ACCMRequest, timeout: Duration = .seconds(120),
                       onText: (@Sendable (String) -> Void)? = nil,
                       onFinish: @escaping @Sendable (Result<ACCMAnswer, StageError>) -> Void) -> SubmittedRequest {
        let id = nextID()
        let waiter = Waiter(onText: onText, isRequest: true, expires: .now + timeout + options.deadlineGrace) { [router] outcome in
            router.forget(id)
            onFinish(outcome.flatMap { (message: WireMessage) -> Result<ACCMAnswer, StageError> in
                if let error = message.stageError { return .failure(error) }
                return Result { () throws(StageError) in try message.answer() }
            })
        }
        do {
            try router.register(id, waiter)
        } catch {
            waiter.finish(Result<WireMessage, StageError>.failure(error as? StageError ?? StageError(.internal, "\(error)")))
            return SubmittedRequest(id: id) {}
        }
        thread.send(WireMessage.submit(request, requestID: id, deadlineMilliseconds: Self.milliseconds(timeout)).frames(), on: 0)
        return SubmittedRequest(id: id) { [weak self] in
            let cancelled = StageError(.cancelled, "the client cancelled the request")
            guard waiter.finish(Result<WireMessage, StageError>.failure(cancelled)) else { return }
            self?.cancel(id)
        }
    }

    private static func milliseconds(_ timeout: Duration) -> Int64 {
        max(1, timeout.inMilliseconds)
    }

    /// Tells the coordinator to stop working on request `id` (it answers `cancelled`).
    private func cancel(_ id: String) {
        var e = Envelope.make(requestID: id)
        e.cancel = Accm_V1_Cancel()
        thread.send(WireMessage(e).frames(), on: 0)
    }

    /// The coordinator's view of its workers and queues.
    public func status(timeout: Duration = .seconds(10)) throws -> Accm_V1_Status {
        let id = nextID()
        let waiter = Waiter(onText: nil, isRequest: false)
        try router.register(id, waiter)
        defer { router.forget(id) }
        var e = Envelope.make(requestID: id)
        e.statusRequest = Accm_V1_StatusRequest()
        thread.send(WireMessage(e).frames(), on: 0)
        let reply = try waiter.wait(timeout: timeout)
        guard case .status(let status)? = reply.envelope.body else {
            throw reply.stageError ?? StageError(.invalidMessage, "the coordinator answered a status request with something else")
        }
        return status
    }
}

/// A request sent with `ClusterClient.submit`, still being answered or answered.
public struct SubmittedRequest: Sendable {
    /// Its request id in the cluster (what the coordinator's and workers' logs name).
    public let id: String
    private let stop: @Sendable () -> Void

    init(id: String, stop: @escaping @Sendable () -> Void) {
        self.id = id
        self.stop = stop
    }

    /// Stops it in every stage; its outcome becomes `cancelled` unless it already had one.
    public func cancel() { stop() }
}

/// One pending request: streamed text in order, then the final message.
private final class Waiter: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private let onText: (@Sendable (String) -> Void)?
    /// Called once with the final outcome (`submit`); nil: a caller blocks in `wait`.
    private let onFinish: (@Sendable (Result<WireMessage, StageError>) -> Void)?
    /// A SUBMIT (the coordinator holds it) rather than a status request.
    let isRequest: Bool
    let registered = ContinuousClock.now
    /// When the client gives up waiting on its own (`submit`'s waiters).
    let expires: ContinuousClock.Instant?
    private var nextSequence: UInt64 = 0
    private let final = Mutex<Result<WireMessage, StageError>?>(nil)

    init(onText: (@Sendable (String) -> Void)?, isRequest: Bool, expires: ContinuousClock.Instant? = nil,
         onFinish: (@Sendable (Result<WireMessage, StageError>) -> Void)? = nil) {
        self.onText = onText
        self.isRequest = isRequest
        self.expires = expires
        self.onFinish = onFinish
    }

    var isFinished: Bool { final.withLock { $0 != nil } }

    /// On the socket thread.
    func partial(_ p: Accm_V1_PartialText) {
        guard p.sequence == nextSequence else { return }  // a repeat (or out of order): dropped
        nextSequence += 1
        onText?(p.delta)
    }

    /// On the socket thread (or a canceller's); the first final outcome wins (false for a later one).
    @discardableResult
    func finish(_ outcome: Result<WireMessage, StageError>) -> Bool {
        let first = final.withLock { current in
            guard current == nil else { return false }
            current = outcome
            return true
        }
        guard first else { return false }
        done.signal()
        onFinish?(outcome)
        return true
    }

    func wait(timeout: Duration) throws -> WireMessage {
        let seconds = timeout.inSeconds
        guard done.wait(timeout: .now() + seconds) == .success, let final = final.withLock({ $0 }) else {
            throw StageError(.deadlineExceeded, "no answer from the coordinator within \(timeout)")
        }
        let message = try final.get()
        if let error = message.stageError { throw error }
        return message
    }
}

/// Routes replies to their waiters (on the socket thread; registrations come from callers' threads), and keeps
/// track of whether the coordinator still holds what they wait for.
private final class ClientRouter: SocketHandler, @unchecked Sendable {
    private let waiters = Mutex<[String: Waiter]>([:])
    let strays = Atomic<Int>(0)
    /// Why new requests fail at once: a refused key (for good), or a broken handshake (until the coordinator
    /// is heard from).
    private let refusal = Mutex<StageError?>(nil)
    private let options: ClusterClientOptions
    private let coordinator: String
    private var lastHeard = ContinuousClock.now
    private var lastHeartbeat = ContinuousClock.now
    private var refusedForGood = false

    init(options: ClusterClientOptions, coordinator: String) {
        self.options = options
        self.coordinator = coordinator
    }

    func register(_ id: String, _ waiter: Waiter) throws {
        if let error = refusal.withLock({ $0 }) { throw error }
        waiters.withLock { $0[id] = waiter }
    }

    func forget(_ id: String) { _ = waiters.withLock { $0.removeValue(forKey: id) } }

    private func failAll(_ error: StageError, where predicate: (String, Waiter) -> Bool = { _, _ in true }) {
        let failed = waiters.withLock { $0.filter { predicate($0.key, $0.value) } }
        for waiter in failed.values { waiter.finish(.failure(error)) }
    }

    func received(_ message: ReceivedFrames, loop: SocketLoop) {
        lastHeard = .now
        if !refusedForGood { refusal.withLock { $0 = nil } }
        guard let decoded = try? WireMessage.decode(message.frames, droppedFrames: message.droppedFrames, limits: options.wire)
        else { return }
        if case .heartbeat(let beat)? = decoded.envelope.body {
            let lost = Set(beat.requestIds)
            failAll(StageError(.coordinatorLost, "the coordinator at \(coordinator) does not hold this request (it restarted "
                + "since the request was sent): it was lost before any answer; resubmitting it is safe")) { id, waiter in
                waiter.isRequest && lost.contains(id)
            }
            return
        }
        guard let waiter = waiters.withLock({ $0[decoded.envelope.requestID] }) else {
            strays.add(1, ordering: .relaxed)
            return
        }
        if case .partial(let partial)? = decoded.envelope.body {
            waiter.partial(partial)
        } else {
            if !waiter.finish(.success(decoded)) { strays.add(1, ordering: .relaxed) }
        }
    }

    func tick(loop: SocketLoop) {
        let now = ContinuousClock.now
        let pending = waiters.withLock { $0 }
        guard !pending.isEmpty else {
            lastHeard = now  // silence only counts while something is awaited
            return
        }
        for (id, waiter) in pending {
            if let expires = waiter.expires, now >= expires,
               waiter.finish(.failure(StageError(.deadlineExceeded, "no answer from the coordinator within the request's deadline"))) {
                var e = Envelope.make(requestID: id)
                e.cancel = Accm_V1_Cancel()
                _ = loop.send(WireMessage(e).frames(), on: 0)
            }
        }
        if now - lastHeard > options.lostAfter {
            failAll(StageError(.coordinatorLost, "the coordinator at \(coordinator) has not answered for \(now - lastHeard): "
                + "it is down or unreachable; requests sent to it were not answered"))
            lastHeard = now
            return
        }
        guard now - lastHeartbeat >= options.heartbeatInterval else { return }
        lastHeartbeat = now
        // Only requests sent at least an interval ago: their SUBMIT reached the coordinator before this heartbeat.
        let ids = pending.filter { $0.value.isRequest && now - $0.value.registered >= options.heartbeatInterval }.map(\.key)
        var e = Envelope.make(requestID: "")
        var beat = Accm_V1_Heartbeat()
        beat.requestIds = Array(ids.prefix(4096))
        e.heartbeat = beat
        _ = loop.send(WireMessage(e).frames(), on: 0)
    }

    func handshakeFailed(_ failure: HandshakeFailure, loop: SocketLoop) {
        let error = StageError(.unauthenticated, "\(failure)")
        if case .refused = failure.kind { refusedForGood = true }
        refusal.withLock { $0 = error }
        failAll(error)
    }
}
