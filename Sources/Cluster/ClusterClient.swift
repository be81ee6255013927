// A client of the coordinator: one DEALER on its own socket thread. `answer` sends a SUBMIT and blocks the
// calling thread (never a Swift task's) until the one final answer, handing streamed text to `onText` as it
// arrives, in order and once each.

import ACCMMessages
import Dispatch
import Synchronization
import Transport
import Wire

#if canImport(Glibc)
import Glibc
#endif

/// Submits requests to a cluster.
public final class ClusterClient: @unchecked Sendable {
    private let thread: SocketThread
    private let router: ClientRouter
    private let prefix: String
    private let counter = Atomic<Int>(0)

    /// Connects to the coordinator's client endpoint.
    public init(context: ZeroMQContext, coordinator: String, wire: WireLimits = WireLimits()) throws {
        var bytes = [UInt8](repeating: 0, count: 8)
        for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255) }
        prefix = "c\(getpid())-" + bytes.map { String($0, radix: 16) }.joined()
        router = ClientRouter(wire: wire)
        thread = try SocketThread(context: context, sockets: [
            SocketSpec(kind: .dealer, endpoint: coordinator, bind: false, routingID: prefix, maxFrameBytes: wire.maxFrameBytes),
        ], handler: router)
    }

    deinit { thread.stop() }

    /// Closes the connection.
    public func close() { thread.stop() }

    private func nextID() -> String { prefix + "-" + String(counter.add(1, ordering: .relaxed).newValue) }

    /// Sends `request` (its image encoded) and waits for its answer; `onText` gets the answer's text as it is
    /// made. Throws the request's `StageError`, or `deadlineExceeded` when nothing final came within `timeout`.
    public func answer(_ request: ACCMRequest, timeout: Duration = .seconds(120),
                       onText: (@Sendable (String) -> Void)? = nil) throws -> ACCMAnswer {
        let id = nextID()
        let waiter = Waiter(onText: onText)
        router.register(id, waiter)
        defer { router.forget(id) }
        thread.send(WireMessage.submit(request, requestID: id).frames(), on: 0)
        do {
            return try waiter.wait(timeout: timeout).answer()
        } catch let error as StageError where error.code == .deadlineExceeded {
            cancel(id)  // nobody waits for it any more: the cluster stops working on it
            throw error
        }
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
        let waiter = Waiter(onText: nil)
        router.register(id, waiter)
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

/// One pending request: streamed text in order, then the final message.
private final class Waiter: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private let onText: (@Sendable (String) -> Void)?
    private var nextSequence: UInt64 = 0
    private var final: WireMessage?

    init(onText: (@Sendable (String) -> Void)?) {
        self.onText = onText
    }

    /// On the socket thread.
    func partial(_ p: Accm_V1_PartialText) {
        guard p.sequence == nextSequence else { return }  // a repeat (or out of order): dropped
        nextSequence += 1
        onText?(p.delta)
    }

    /// On the socket thread.
    func finish(_ message: WireMessage) {
        final = message
        done.signal()
    }

    func wait(timeout: Duration) throws -> WireMessage {
        let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) * 1e-18
        guard done.wait(timeout: .now() + seconds) == .success, let final else {
            throw StageError(.deadlineExceeded, "no answer from the coordinator within \(timeout)")
        }
        if let error = final.stageError { throw error }
        return final
    }
}

/// Routes replies to their waiters (on the socket thread; registrations come from callers' threads).
private final class ClientRouter: SocketHandler, @unchecked Sendable {
    private let waiters = Mutex<[String: Waiter]>([:])
    private let wire: WireLimits

    init(wire: WireLimits) {
        self.wire = wire
    }

    func register(_ id: String, _ waiter: Waiter) { waiters.withLock { $0[id] = waiter } }
    func forget(_ id: String) { _ = waiters.withLock { $0.removeValue(forKey: id) } }

    func received(_ message: ReceivedFrames, loop: SocketLoop) {
        guard let decoded = try? WireMessage.decode(message.frames, droppedFrames: message.droppedFrames, limits: wire),
              let waiter = waiters.withLock({ $0[decoded.envelope.requestID] }) else { return }
        if case .partial(let partial)? = decoded.envelope.body {
            waiter.partial(partial)
        } else {
            waiter.finish(decoded)
        }
    }

    func tick(loop: SocketLoop) {}
}
