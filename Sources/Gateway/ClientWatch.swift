// Noticing a client that goes away while its request is answered, without reading the connection's request
// stream. Hummingbird's `consumeWithInboundCloseHandler` finds out by reading that stream in a child task, and
// cancelling that read (as it does when the handler returns) terminates the stream: the connection was then
// closed after every chat completion's response, with no `Connection: close`, so a client that reused the idle
// connection for its next request could find it closed under that request ("Server disconnected without
// sending a response"). Here a channel handler on each connection watches its inbound side (closed by the
// client, or the connection gone) and tells the request being answered; the connection stays open for the next.

import Hummingbird
import NIOCore
import Synchronization

/// The gateway's request context: Hummingbird's basic one, and the connection the request came on.
public struct GatewayRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}

/// Whether a connection's client has gone away, and what to do when it does.
final class ClientWatch: Sendable {
    private struct State {
        var gone = false
        var onGone: (@Sendable () -> Void)?
    }
    private let state = Mutex(State())

    /// Runs `action` once when the client goes away (at once if it has gone), unless `stop` comes first.
    func onGone(_ action: @escaping @Sendable () -> Void) {
        let goneAlready = state.withLock { state -> Bool in
            if state.gone { return true }
            state.onGone = action
            return false
        }
        if goneAlready { action() }
    }

    /// Forgets the action (the request it was for is over); the connection may carry the next request.
    func stop() {
        state.withLock { $0.onGone = nil }
    }

    fileprivate func clientWentAway() {
        let action = state.withLock { state -> (@Sendable () -> Void)? in
            state.gone = true
            defer { state.onGone = nil }
            return state.onGone
        }
        action?()
    }

    /// The watch of `channel`'s client; nil where the channel has none (a request that came without a socket).
    static func of(_ channel: any Channel) async -> ClientWatch? {
        try? await channel.eventLoop.submit {
            try channel.pipeline.syncOperations.handler(type: ClientWatchHandler.self).watch
        }.get()
    }
}

/// In each connection's pipeline, after HTTP decoding: tells the connection's watch when the client closes its
/// side (Hummingbird allows half-closure, so a client's close arrives as `inputClosed`) or the connection ends.
final class ClientWatchHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    let watch = ClientWatch()

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed { watch.clientWentAway() }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        watch.clientWentAway()
        context.fireChannelInactive()
    }
}
