// A message as it crosses a socket: one protobuf envelope frame and one raw little-endian frame per tensor.
// Decoding checks everything the envelope claims against the frames and the receiver's limits before
// anything is computed from it; every problem is a `StageError` naming it.

import ACCMMessages
import SwiftProtobuf
import TensorCore
import Transport

public typealias Envelope = Accm_V1_Envelope

/// What a receiver accepts.
public struct WireLimits: Sendable, Equatable {
    /// Largest frame (also set as the socket's ZMQ_MAXMSGSIZE).
    public var maxFrameBytes: Int
    /// Largest envelope frame.
    public var maxEnvelopeBytes: Int
    /// Most tensors in one message.
    public var maxTensors: Int

    public init(maxFrameBytes: Int = 64 << 20, maxEnvelopeBytes: Int = 1 << 20, maxTensors: Int = 4) {
        self.maxFrameBytes = maxFrameBytes
        self.maxEnvelopeBytes = maxEnvelopeBytes
        self.maxTensors = maxTensors
    }
}

/// One tensor of a message.
public enum Payload: Sendable {
    /// f32 values of any shape.
    case floats(Tensor)
    /// Raw bytes (u8, one dimension): an encoded image file.
    case bytes(Frame)

    var dtype: Accm_V1_DType {
        switch self {
        case .floats: .f32
        case .bytes: .u8
        }
    }
}

/// An envelope and its tensors by name.
public struct WireMessage: Sendable {
    public var envelope: Envelope
    public var payloads: [(name: String, payload: Payload)]

    public init(_ envelope: Envelope, payloads: [(name: String, payload: Payload)] = []) {
        self.envelope = envelope
        self.payloads = payloads
    }

    /// The envelope frame (schema version and descriptors filled in) and a frame per tensor, sharing the
    /// tensors' memory.
    public func frames() -> [Frame] {
        var envelope = self.envelope
        envelope.schemaVersion = UInt32(Accm_V1_SchemaVersion.current.rawValue)
        envelope.tensors = payloads.enumerated().map { i, entry in
            var d = Accm_V1_TensorDescriptor()
            d.name = entry.name
            d.dtype = entry.payload.dtype
            d.frame = UInt32(i + 1)
            switch entry.payload {
            case .floats(let t):
                d.shape = t.shape.map(UInt64.init)
                d.byteLength = UInt64(t.count * 4)
            case .bytes(let frame):
                d.shape = [UInt64(frame.count)]
                d.byteLength = UInt64(frame.count)
            }
            return d
        }
        // Serializing a message of our own making cannot fail (no required fields, no unknown enums).
        let header = (try? envelope.serializedBytes() as [UInt8]) ?? []
        return [Frame(copying: header)] + payloads.map { entry in
            switch entry.payload {
            case .floats(let t):
                let (bytes, owner) = t.retainedBytes
                return Frame(borrowing: bytes, owner: owner)
            case .bytes(let frame):
                return frame
            }
        }
    }

    /// Parses and checks a received message (without a ROUTER's routing-id frame).
    public static func decode(_ frames: [Frame], droppedFrames: Int = 0, limits: WireLimits = WireLimits()) throws(StageError)
        -> WireMessage
    {
        func invalid(_ what: String) -> StageError { StageError(.invalidMessage, what) }
        guard let head = frames.first else { throw invalid("the message has no frames") }
        guard head.count <= limits.maxEnvelopeBytes else {
            throw invalid("the envelope frame is \(head.count) bytes, over the limit of \(limits.maxEnvelopeBytes)")
        }
        let envelope: Envelope
        do {
            envelope = try Envelope(serializedBytes: head.bytes)
        } catch {
            throw invalid("frame 0 is not an accm.v1.Envelope (\(head.count) bytes)")
        }
        guard envelope.schemaVersion == UInt32(Accm_V1_SchemaVersion.current.rawValue) else {
            throw StageError(.unsupportedSchema,
                             "schema version \(envelope.schemaVersion) is not supported (this peer reads version 1)")
        }
        let descriptors = envelope.tensors
        let frameCount = frames.count + droppedFrames
        guard descriptors.count <= limits.maxTensors else {
            throw invalid("\(descriptors.count) tensors, over the limit of \(limits.maxTensors)")
        }
        guard frameCount == descriptors.count + 1 else {
            throw invalid("the envelope describes \(descriptors.count) tensor frame(s), the message has \(frameCount - 1)")
        }
        var payloads: [(name: String, payload: Payload)] = []
        var seenFrames = Set<UInt32>(), seenNames = Set<String>()
        for d in descriptors {
            guard d.frame >= 1, Int(d.frame) < frames.count, seenFrames.insert(d.frame).inserted else {
                throw invalid("tensor '\(d.name)' names frame \(d.frame), not a tensor frame of its own")
            }
            guard !d.name.isEmpty, seenNames.insert(d.name).inserted else {
                throw invalid("tensor name '\(d.name)' is empty or repeated")
            }
            let frame = frames[Int(d.frame)]
            guard frame.count <= limits.maxFrameBytes else {
                throw invalid("tensor '\(d.name)' is \(frame.count) bytes, over the limit of \(limits.maxFrameBytes)")
            }
            let size: Int
            switch d.dtype {
            case .f32: size = 4
            case .u8: size = 1
            default: throw invalid("tensor '\(d.name)' has an unknown dtype (\(d.dtype.rawValue))")
            }
            guard d.shape.count <= 8, d.shape.allSatisfy({ $0 <= UInt64(limits.maxFrameBytes) }) else {
                throw invalid("tensor '\(d.name)' has shape \(d.shape)")
            }
            var elements = 1
            for dimension in d.shape {
                let (product, overflow) = elements.multipliedReportingOverflow(by: Int(dimension))
                guard !overflow else { throw invalid("tensor '\(d.name)' has shape \(d.shape)") }
                elements = product
            }
            let (bytes, overflow) = elements.multipliedReportingOverflow(by: size)
            guard !overflow, UInt64(bytes) == d.byteLength, bytes == frame.count else {
                throw invalid("tensor '\(d.name)' of shape \(d.shape) × \(size) bytes needs \(overflow ? "too many" : "\(bytes)") "
                    + "bytes; its descriptor says \(d.byteLength) and its frame holds \(frame.count)")
            }
            switch d.dtype {
            case .u8:
                guard d.shape.count == 1 else { throw invalid("byte tensor '\(d.name)' must have one dimension") }
                payloads.append((d.name, .bytes(frame)))
            default:
                payloads.append((d.name, .floats(tensor(frame, shape: d.shape.map { Int($0) }))))
            }
        }
        return WireMessage(envelope, payloads: payloads)
    }

    /// A tensor over a frame's bytes: viewed in place when 4-byte aligned, copied otherwise (small received
    /// frames can sit at any offset of libzmq's receive buffer).
    private static func tensor(_ frame: Frame, shape: [Int]) -> Tensor {
        let count = frame.count / 4
        if let base = frame.bytes.baseAddress, Int(bitPattern: base) % 4 == 0, count > 0 {
            let storage = TensorStorage(borrowing: base.assumingMemoryBound(to: Float.self), count: count, owner: frame.owner)
            return Tensor(shape: shape, storage: storage)
        }
        var t = Tensor(uninitializedShape: shape)
        t.withUnsafeMutableBufferPointer { out in
            if count > 0 { UnsafeMutableRawBufferPointer(out).copyMemory(from: frame.bytes) }
        }
        return t
    }

    /// The f32 tensor `name` of rank `rank` (and last dimension `width`, when given).
    public func floats(_ name: String, rank: Int, width: Int? = nil) throws(StageError) -> Tensor {
        guard let entry = payloads.first(where: { $0.name == name }) else {
            throw StageError(.invalidMessage, "the message has no tensor '\(name)'")
        }
        guard case .floats(let t) = entry.payload else { throw StageError(.invalidMessage, "tensor '\(name)' is not f32") }
        guard t.rank == rank, width.map({ t.shape.last == $0 }) ?? true else {
            throw StageError(.invalidMessage, "tensor '\(name)' has shape \(t.shape); expected rank \(rank)"
                + (width.map { " with last dimension \($0)" } ?? ""))
        }
        return t
    }

    /// The byte tensor `name`, if the message has one.
    public func bytes(_ name: String) -> Frame? {
        for entry in payloads where entry.name == name { if case .bytes(let f) = entry.payload { return f } }
        return nil
    }
}
