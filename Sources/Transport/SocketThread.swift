// The ZeroMQ binding: one thread owns every socket of a role (a socket belongs to one thread), polls them
// with `zmq_poll` together with an eventfd that other threads ring after queueing frames to send, and hands
// every received multipart message and every timer tick to a handler on that thread. Nothing here ever
// blocks the Swift cooperative pool.

import CZeroMQ
import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One libzmq context per process.
public final class ZeroMQContext: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer

    public init() {
        handle = zmq_ctx_new()
    }

    deinit { zmq_ctx_term(handle) }

    /// "major.minor.patch" of the linked libzmq.
    public static var version: String {
        var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
        zmq_version(&major, &minor, &patch)
        return "\(major).\(minor).\(patch)"
    }
}

/// What a socket is and how it is set up.
public struct SocketSpec: Sendable {
    public enum Kind: Sendable { case router, dealer }
    public var kind: Kind
    /// `tcp://host:port` (a port of `*` binds any free one; `boundEndpoint` tells which).
    public var endpoint: String
    public var bind: Bool
    /// The routing id a DEALER announces (unique per incarnation).
    public var routingID: String?
    /// Largest frame accepted; a peer that sends a larger one is disconnected by libzmq.
    public var maxFrameBytes: Int
    /// Messages queued per peer pipe each way (credits keep real queues far below this).
    public var highWaterMark: Int32
    /// CURVE encryption and authentication; nil: plain TCP.
    public var curve: CurveRole?

    public init(kind: Kind, endpoint: String, bind: Bool, routingID: String? = nil, maxFrameBytes: Int = 64 << 20,
                highWaterMark: Int32 = 1000, curve: CurveRole? = nil) {
        self.kind = kind
        self.endpoint = endpoint
        self.bind = bind
        self.routingID = routingID
        self.maxFrameBytes = maxFrameBytes
        self.highWaterMark = highWaterMark
        self.curve = curve
    }
}

/// A peer a CURVE server refused (its key is not on the socket's allow-list).
public struct PeerRefusal: Sendable {
    public var socket: Int
    public var domain: String
    public var address: String
    /// The peer's public key (Z85).
    public var publicKey: String
}

/// A CURVE handshake of a connecting socket that failed, as libzmq's monitor reports it.
public struct HandshakeFailure: Sendable, CustomStringConvertible {
    public enum Kind: Sendable {
        /// The server's ZAP handler refused this socket's key (`code`: 400); libzmq does not retry.
        case refused(code: Int)
        /// The handshake broke: a server key other than the one configured, or a server without CURVE;
        /// libzmq retries.
        case broken(detail: Int)
    }
    public var socket: Int
    public var endpoint: String
    public var kind: Kind

    public var description: String {
        switch kind {
        case .refused(let code):
            "\(endpoint) refused this key (ZAP status \(code)): it is not on the server's allow-list"
        case .broken:
            "the CURVE handshake with \(endpoint) failed: the server's public key is not the one configured, "
                + "or the server does not use CURVE"
        }
    }
}

/// What became of a message given to `SocketLoop.trySend`.
public enum SendOutcome: Sendable {
    case sent
    /// The peer is not connected (a ROUTER's EHOSTUNREACH: it went away, or never was).
    case unreachable
    /// Its pipe is full, or (a DEALER) its connection is not up yet.
    case full
}

/// Why a socket could not be set up.
public struct TransportError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ what: String) {
        description = what + ": " + String(cString: zmq_strerror(zmq_errno()))
    }
}

/// A message received on socket `socket`: for a ROUTER, frame 0 is the sender's routing id.
public struct ReceivedFrames: Sendable {
    public var socket: Int
    public var frames: [Frame]
    /// Frames past `SocketThread.maxFramesPerMessage` that were read and dropped.
    public var droppedFrames: Int
    /// The sender's IP address as libzmq reports it ("Peer-Address"), or "".
    public var peerAddress: String
    /// The allow-list name of the CURVE key the sender authenticated with ("User-Id"), or "" without CURVE.
    public var userID: String = ""
}

/// What a handler can do from the socket thread.
public final class SocketLoop: @unchecked Sendable {
    fileprivate var sockets: [UnsafeMutableRawPointer] = []

    /// Sends a multipart message now, without blocking; false when it could not be queued (the peer is
    /// unknown or its pipe is full), in which case nothing of it was sent.
    @discardableResult
    public func send(_ frames: [Frame], on socket: Int) -> Bool {
        if case .sent = trySend(frames, on: socket) { return true }
        return false
    }

    /// Sends a multipart message now, without blocking, and says what became of it.
    public func trySend(_ frames: [Frame], on socket: Int) -> SendOutcome {
        guard socket < sockets.count, !frames.isEmpty else { return .unreachable }
        for (i, frame) in frames.enumerated() {
            if sendFrame(frame, on: sockets[socket], more: i + 1 < frames.count) != 0 {
                // Only the first frame can fail (a started multipart message is queued whole).
                return zmq_errno() == EHOSTUNREACH ? .unreachable : .full
            }
        }
        return .sent
    }
}

/// Called on the socket thread.
public protocol SocketHandler: AnyObject {
    /// Every complete message received.
    func received(_ message: ReceivedFrames, loop: SocketLoop)
    /// About every `SocketThread.tickInterval`, and after every batch of messages.
    func tick(loop: SocketLoop)
    /// A CURVE server socket refused a peer (default: nothing).
    func refused(_ peer: PeerRefusal, loop: SocketLoop)
    /// A CURVE client socket's handshake failed (default: nothing).
    func handshakeFailed(_ failure: HandshakeFailure, loop: SocketLoop)
}

extension SocketHandler {
    public func refused(_ peer: PeerRefusal, loop: SocketLoop) {}
    public func handshakeFailed(_ failure: HandshakeFailure, loop: SocketLoop) {}
}

/// A thread owning sockets, polling them and a wake-up fd.
public final class SocketThread: @unchecked Sendable {
    /// Frames of one message kept; the rest are read and dropped (a message is buffered until its last frame).
    public static let maxFramesPerMessage = 16
    /// How long a DEALER's message waits for its connection before it is dropped.
    public static let retryWindow = Duration.seconds(30)

    private let context: ZeroMQContext
    private let specs: [SocketSpec]
    private let tickMilliseconds: Int32
    /// A pipe: other threads write a byte to wake the poll; the thread polls the read end.
    private let wakeRead: Int32, wakeWrite: Int32
    private let outbox = Mutex<[(socket: Int, frames: [Frame])]>([])
    private let stopping = Atomic<Bool>(false)
    private var thread: pthread_t?
    private let setup = DispatchSemaphore(value: 0)
    nonisolated(unsafe) private var setupError: TransportError?
    nonisolated(unsafe) private var endpoints: [String] = []
    private let handler: SocketHandler

    /// Starts the thread and sets up (binds or connects) every socket; throws when one cannot be.
    public init(context: ZeroMQContext, sockets: [SocketSpec], tickInterval: Duration = .milliseconds(50),
                handler: SocketHandler) throws {
        self.context = context
        self.specs = sockets
        self.handler = handler
        let ms = tickInterval.components.seconds * 1000 + tickInterval.components.attoseconds / 1_000_000_000_000_000
        tickMilliseconds = Int32(max(1, ms))
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw TransportError("pipe") }
        (wakeRead, wakeWrite) = (fds[0], fds[1])
        for fd in fds { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        let box = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let started = pthread_create(&thread, nil, { argument in
            let me = Unmanaged<SocketThread>.fromOpaque(argument!).takeRetainedValue()
            me.run()
            return nil
        }, box)
        guard started == 0 else {
            Unmanaged<SocketThread>.fromOpaque(box).release()
            throw TransportError("pthread_create")
        }
        self.thread = thread
        setup.wait()
        if let setupError {
            pthread_join(thread, nil)
            self.thread = nil
            throw setupError
        }
    }

    deinit {
        close(wakeRead)
        close(wakeWrite)
    }

    /// The endpoint each socket is bound or connected to (a bound `*` port resolved).
    public var boundEndpoints: [String] { endpoints }

    /// Queues a message for socket `socket` and wakes the thread (callable from any thread).
    public func send(_ frames: [Frame], on socket: Int) {
        outbox.withLock { $0.append((socket, frames)) }
        wake()
    }

    /// Stops the thread (closing its sockets) and waits for it.
    public func stop() {
        guard !stopping.exchange(true, ordering: .acquiringAndReleasing) else { return }
        wake()
        if let thread { pthread_join(thread, nil) }
        thread = nil
    }

    private func wake() {
        var one: UInt8 = 1
        _ = write(wakeWrite, &one, 1)
    }

    private func open(_ spec: SocketSpec) throws -> UnsafeMutableRawPointer {
        guard let socket = zmq_socket(context.handle, spec.kind == .router ? ZMQ_ROUTER : ZMQ_DEALER) else {
            throw TransportError("zmq_socket")
        }
        func set(_ option: Int32, _ value: Int32) { var v = value; zmq_setsockopt(socket, option, &v, 4) }
        set(ZMQ_LINGER, 0)
        set(ZMQ_SNDHWM, spec.highWaterMark)
        set(ZMQ_RCVHWM, spec.highWaterMark)
        var maxSize = Int64(spec.maxFrameBytes)
        zmq_setsockopt(socket, ZMQ_MAXMSGSIZE, &maxSize, 8)
        // ZMTP heartbeats only tear down dead TCP links quickly; liveness is the application's heartbeat.
        set(ZMQ_HEARTBEAT_IVL, 1000)
        set(ZMQ_HEARTBEAT_TIMEOUT, 3000)
        set(ZMQ_HEARTBEAT_TTL, 3000)
        switch spec.kind {
        case .router:
            set(ZMQ_ROUTER_MANDATORY, 1)
        case .dealer:
            set(ZMQ_IMMEDIATE, 1)
            set(ZMQ_RECONNECT_IVL, 250)
            set(ZMQ_RECONNECT_IVL_MAX, 30_000)
            if let id = spec.routingID {
                let bytes = Array(id.utf8.prefix(255))
                zmq_setsockopt(socket, ZMQ_ROUTING_ID, bytes, bytes.count)
            }
        }
        /// A Z85 key option: 40 characters and a NUL (the 41-byte form libzmq reads as text).
        func setString(_ option: Int32, _ value: String) -> Bool {
            let bytes = Array(value.utf8) + [0]
            return zmq_setsockopt(socket, option, bytes, bytes.count) == 0
        }
        switch spec.curve {
        case .server(let keys, let domain, _)?:
            set(ZMQ_CURVE_SERVER, 1)
            // Fail closed: with a domain set and option 93 (ZMQ_ZAP_ENFORCE_DOMAIN, hidden by the public header),
            // a handshake without an answering ZAP handler is refused instead of admitted.
            set(93, 1)
            let domainBytes = Array(domain.utf8)  // a length-counted string: no terminating NUL
            guard setString(ZMQ_CURVE_SECRETKEY, keys.secretKey), !domain.isEmpty,
                  zmq_setsockopt(socket, ZMQ_ZAP_DOMAIN, domainBytes, domainBytes.count) == 0 else {
                zmq_close(socket)
                throw TransportError("CURVE server options on \(spec.endpoint)")
            }
        case .client(let keys, let serverKey)?:
            guard setString(ZMQ_CURVE_SERVERKEY, serverKey), setString(ZMQ_CURVE_PUBLICKEY, keys.publicKey),
                  setString(ZMQ_CURVE_SECRETKEY, keys.secretKey) else {
                zmq_close(socket)
                throw TransportError("CURVE client options for \(spec.endpoint)")
            }
        case nil:
            break
        }
        let status = spec.bind ? zmq_bind(socket, spec.endpoint) : zmq_connect(socket, spec.endpoint)
        guard status == 0 else {
            let error = TransportError("\(spec.bind ? "bind" : "connect") \(spec.endpoint)")
            zmq_close(socket)
            throw error
        }
        return socket
    }

    private func lastEndpoint(_ socket: UnsafeMutableRawPointer, _ fallback: String) -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        var size = buffer.count
        guard zmq_getsockopt(socket, ZMQ_LAST_ENDPOINT, &buffer, &size) == 0 else { return fallback }
        return String(cString: buffer)
    }

    /// The ZAP handler (RFC 27) of this context: a REP socket that every CURVE server socket asks about each
    /// connecting peer. It must be bound before those sockets are.
    private func openAuthenticator() throws -> UnsafeMutableRawPointer {
        guard let socket = zmq_socket(context.handle, ZMQ_REP) else { throw TransportError("zmq_socket (ZAP)") }
        var zero: Int32 = 0
        zmq_setsockopt(socket, ZMQ_LINGER, &zero, 4)
        guard zmq_bind(socket, "inproc://zeromq.zap.01") == 0 else {
            let error = TransportError("bind the ZAP handler (one CURVE server thread per process)")
            zmq_close(socket)
            throw error
        }
        return socket
    }

    /// A PAIR socket receiving the handshake events of `socket` (a CURVE client).
    private func openMonitor(_ socket: UnsafeMutableRawPointer, index: Int) throws -> UnsafeMutableRawPointer {
        let address = "inproc://accm-monitor-\(UInt(bitPattern: Unmanaged.passUnretained(self).toOpaque()))-\(index)"
        let events = ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
            | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
        guard zmq_socket_monitor(socket, address, events) == 0, let pair = zmq_socket(context.handle, ZMQ_PAIR) else {
            throw TransportError("monitor \(specs[index].endpoint)")
        }
        var zero: Int32 = 0
        zmq_setsockopt(pair, ZMQ_LINGER, &zero, 4)
        guard zmq_connect(pair, address) == 0 else {
            zmq_close(pair)
            throw TransportError("connect the monitor of \(specs[index].endpoint)")
        }
        return pair
    }

    private func run() {
        let loop = SocketLoop()
        var authenticator: UnsafeMutableRawPointer?
        var monitors: [(socket: Int, pair: UnsafeMutableRawPointer)] = []
        do {
            if specs.contains(where: { if case .server? = $0.curve { true } else { false } }) {
                authenticator = try openAuthenticator()
            }
            for (index, spec) in specs.enumerated() {
                let socket = try open(spec)
                loop.sockets.append(socket)
                endpoints.append(spec.bind ? lastEndpoint(socket, spec.endpoint) : spec.endpoint)
                if case .client? = spec.curve { monitors.append((index, try openMonitor(socket, index: index))) }
            }
        } catch let error as TransportError {
            setupError = error
        } catch {}
        setup.signal()
        defer {
            for socket in loop.sockets { zmq_close(socket) }
            for monitor in monitors { zmq_close(monitor.pair) }
            if let authenticator { zmq_close(authenticator) }
        }
        guard setupError == nil else { return }

        var items = loop.sockets.map { zmq_pollitem_t(socket: $0, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0) }
        let extras = (authenticator.map { [$0] } ?? []) + monitors.map(\.pair)
        items += extras.map { zmq_pollitem_t(socket: $0, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0) }
        let authenticatorItem = authenticator == nil ? nil : loop.sockets.count
        let firstMonitorItem = loop.sockets.count + (authenticator == nil ? 0 : 1)
        items.append(zmq_pollitem_t(socket: nil, fd: wakeRead, events: Int16(ZMQ_POLLIN), revents: 0))
        var pending: [(socket: Int, frames: [Frame], since: ContinuousClock.Instant)] = []
        while !stopping.load(ordering: .acquiring) {
            let timeout = pending.isEmpty ? Int(tickMilliseconds) : min(Int(tickMilliseconds), 10)
            let ready = zmq_poll(&items, Int32(items.count), timeout)
            if ready < 0 && zmq_errno() != EINTR { break }
            if items[items.count - 1].revents != 0 {
                var scratch = [UInt8](repeating: 0, count: 256)
                while read(wakeRead, &scratch, 256) > 0 {}
            }
            if let item = authenticatorItem, items[item].revents & Int16(ZMQ_POLLIN) != 0, let authenticator {
                authenticate(authenticator, loop: loop)
            }
            for (k, monitor) in monitors.enumerated() where items[firstMonitorItem + k].revents & Int16(ZMQ_POLLIN) != 0 {
                readEvents(monitor.pair, socket: monitor.socket, loop: loop)
            }
            for index in loop.sockets.indices where items[index].revents & Int16(ZMQ_POLLIN) != 0 {
                drain(socket: index, loop: loop)
            }
            let queued = outbox.withLock { queue -> [(socket: Int, frames: [Frame])] in
                defer { queue.removeAll(keepingCapacity: true) }
                return queue
            }
            let now = ContinuousClock.now
            pending += queued.map { ($0.socket, $0.frames, now) }
            // A DEALER refuses messages until its connection is up (ZMQ_IMMEDIATE) or while its pipe is full:
            // those wait here and are tried again, for up to `retryWindow`. A ROUTER's refusal means the peer is
            // unknown or gone: dropped.
            pending = pending.filter { socket, frames, since in
                if loop.send(frames, on: socket) { return false }
                return specs[socket].kind == .dealer && now - since < Self.retryWindow
            }
            handler.tick(loop: loop)
        }
    }

    /// Reads every message waiting on a socket.
    private func drain(socket index: Int, loop: SocketLoop) {
        let socket = loop.sockets[index]
        while true {
            var frames: [Frame] = []
            var dropped = 0
            var address = ""
            var userID = ""
            var more = true
            while more {
                let message = ReceivedMessage()
                guard zmq_msg_recv(message.message, socket, ZMQ_DONTWAIT) >= 0 else {
                    if frames.isEmpty && dropped == 0 { return }  // nothing more waiting
                    more = false  // cannot happen mid-message (multipart is atomic); deliver what came
                    break
                }
                more = zmq_msg_more(message.message) != 0
                if address.isEmpty, let peer = zmq_msg_gets(message.message, "Peer-Address") {
                    address = String(cString: peer)
                }
                // (A ROUTER's routing-id frame carries no metadata: read it off the first frame that does.)
                if userID.isEmpty, specs[index].curve != nil, let user = zmq_msg_gets(message.message, "User-Id") {
                    userID = String(cString: user)
                }
                if frames.count < Self.maxFramesPerMessage + 1 { frames.append(message.frame) } else { dropped += 1 }
            }
            handler.received(ReceivedFrames(socket: index, frames: frames, droppedFrames: dropped, peerAddress: address,
                                            userID: userID), loop: loop)
        }
    }
}

extension SocketThread {
    /// Every whole message waiting on `socket`, as byte arrays (small control sockets only).
    private func receiveAll(_ socket: UnsafeMutableRawPointer, _ body: ([[UInt8]]) -> Void) {
        while true {
            var parts: [[UInt8]] = []
            var more = true
            while more {
                let message = ReceivedMessage()
                guard zmq_msg_recv(message.message, socket, ZMQ_DONTWAIT) >= 0 else { return }
                more = zmq_msg_more(message.message) != 0
                parts.append(message.frame.array)
            }
            body(parts)
        }
    }

    /// Answers ZAP requests: a CURVE peer whose key is on its socket's allow-list is admitted under the key's
    /// name (every message it sends then carries that name as "User-Id"); anything else is refused (400).
    private func authenticate(_ zap: UnsafeMutableRawPointer, loop: SocketLoop) {
        receiveAll(zap) { parts in
            // version, request id, domain, address, identity, mechanism, credentials…
            let text = { (i: Int) -> String in i < parts.count ? String(decoding: parts[i], as: UTF8.self) : "" }
            let server = specs.firstIndex { if case .server(_, let domain, _)? = $0.curve { domain == text(2) } else { false } }
            var name: String?
            if parts.count >= 7, text(0) == "1.0", text(5) == "CURVE", let server,
               case .server(_, _, let allow)? = specs[server].curve {
                name = allow.name(of: parts[6])
            }
            let reply: [[UInt8]] = [Array("1.0".utf8), parts.count > 1 ? parts[1] : [],
                                    Array((name == nil ? "400" : "200").utf8),
                                    Array((name == nil ? "key not on the allow-list" : "OK").utf8),
                                    Array((name ?? "").utf8), []]
            for (i, part) in reply.enumerated() {
                _ = zmq_send(zap, part, part.count, i + 1 < reply.count ? ZMQ_SNDMORE : 0)
            }
            if name == nil {
                var key = [CChar](repeating: 0, count: 41)
                if parts.count >= 7, parts[6].count == 32 { _ = zmq_z85_encode(&key, parts[6], 32) }
                handler.refused(PeerRefusal(socket: server ?? -1, domain: text(2), address: text(3),
                                            publicKey: String(z85: key)), loop: loop)
            }
        }
    }

    /// Hands a CURVE client socket's failed handshakes to the handler.
    private func readEvents(_ pair: UnsafeMutableRawPointer, socket: Int, loop: SocketLoop) {
        receiveAll(pair) { parts in
            guard parts.count == 2, parts[0].count == 6 else { return }
            let event = Int32(UInt16(parts[0][0]) | UInt16(parts[0][1]) << 8)
            let value = Int(UInt32(parts[0][2]) | UInt32(parts[0][3]) << 8 | UInt32(parts[0][4]) << 16 | UInt32(parts[0][5]) << 24)
            let endpoint = String(decoding: parts[1], as: UTF8.self)
            let kind: HandshakeFailure.Kind = event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ? .refused(code: value) : .broken(detail: value)
            handler.handshakeFailed(HandshakeFailure(socket: socket, endpoint: endpoint, kind: kind), loop: loop)
        }
    }
}
