// One frame of a ZeroMQ message: read-only bytes and whatever keeps them alive (an owned buffer, a received
// `zmq_msg_t`, a tensor's storage). Sending a frame hands its owner to libzmq (`zmq_msg_init_data`), so the
// bytes are never copied on the way out; a received frame is viewed in place.

/// Immutable bytes and their owner.
///
/// Invariant: nothing writes the bytes while any `Frame` refers to them, so frames cross threads freely.
public struct Frame: @unchecked Sendable {
    public let bytes: UnsafeRawBufferPointer
    /// Keeps `bytes` alive.
    public let owner: AnyObject

    /// A frame over memory that `owner` keeps alive and nobody writes.
    public init(borrowing bytes: UnsafeRawBufferPointer, owner: AnyObject) {
        self.bytes = bytes
        self.owner = owner
    }

    /// A frame holding a copy of `bytes`.
    public init<Bytes: Sequence>(copying bytes: Bytes) where Bytes.Element == UInt8 {
        let buffer = OwnedBytes(Array(bytes))
        self.init(borrowing: UnsafeRawBufferPointer(start: buffer.base, count: buffer.count), owner: buffer)
    }

    public var count: Int { bytes.count }

    /// The bytes as an array (a copy).
    public var array: [UInt8] { Array(bytes) }
}

/// Bytes in memory of their own (stable address, freed with the object).
final class OwnedBytes: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let count: Int

    init(_ bytes: [UInt8]) {
        count = bytes.count
        base = .allocate(byteCount: max(count, 1), alignment: 16)
        bytes.withUnsafeBytes { if let source = $0.baseAddress { base.copyMemory(from: source, byteCount: count) } }
    }

    deinit { base.deallocate() }
}
