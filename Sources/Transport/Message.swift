// Heap-held `zmq_msg_t`s: a Swift move of the struct would invalidate the data pointer of a small message
// (its bytes live inside the struct), so a message is only ever touched through a pointer that never moves.

import CZeroMQ

/// A received frame's `zmq_msg_t`, closed when the last `Frame` viewing it goes.
final class ReceivedMessage: @unchecked Sendable {
    let message: UnsafeMutablePointer<zmq_msg_t>

    init() {
        message = .allocate(capacity: 1)
        zmq_msg_init(message)
    }

    deinit {
        zmq_msg_close(message)
        message.deallocate()
    }

    var frame: Frame {
        Frame(borrowing: UnsafeRawBufferPointer(start: zmq_msg_data(message), count: zmq_msg_size(message)), owner: self)
    }
}

/// libzmq's free callback for zero-copy sends: releases the owner passed as the hint. It runs on a libzmq
/// I/O thread (or whichever thread drops the last reference); a release is all it does.
private let releaseOwner: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Void = { _, hint in
    if let hint { Unmanaged<AnyObject>.fromOpaque(hint).release() }
}

/// Sends `frame` on `socket` without copying its bytes (`more`: another frame follows).
func sendFrame(_ frame: Frame, on socket: UnsafeMutableRawPointer, more: Bool) -> Int32 {
    let message = UnsafeMutablePointer<zmq_msg_t>.allocate(capacity: 1)
    defer { message.deallocate() }
    if frame.count == 0 {
        zmq_msg_init(message)
    } else {
        let hint = Unmanaged<AnyObject>.passRetained(frame.owner).toOpaque()
        let status = zmq_msg_init_data(message, UnsafeMutableRawPointer(mutating: frame.bytes.baseAddress!), frame.count,
                                       releaseOwner, hint)
        if status != 0 {
            Unmanaged<AnyObject>.fromOpaque(hint).release()
            return status
        }
    }
    let sent = zmq_msg_send(message, socket, (more ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT)
    if sent < 0 { zmq_msg_close(message) }  // not queued: ours to close (which releases the owner)
    return sent < 0 ? -1 : 0
}
