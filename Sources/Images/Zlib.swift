// What the PNG decoder needs from zlib: a stream inflated into a buffer of known size, fed from any
// number of input pieces (the IDAT chunks), and CRC-32. zlib reports every problem through return
// codes, so nothing unwinds through Swift.

import CZlib

/// CRC-32 (ISO-HDLC, as PNG chunks and Python's zlib.crc32 use) of `bytes`.
func crc32Checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
    var crc = crc32(0, nil, 0)
    var rest = bytes
    while !rest.isEmpty {
        let n = min(rest.count, 1 << 30)
        crc = crc32(crc, rest.baseAddress!.assumingMemoryBound(to: Bytef.self), uInt(n))
        rest = UnsafeRawBufferPointer(rebasing: rest[n...])
    }
    return UInt32(truncatingIfNeeded: crc)
}

/// Inflates one zlib stream into a caller-sized buffer.
///
/// The `z_stream` lives on the heap: zlib keeps a pointer back to it and rejects a moved stream.
final class ZlibInflater {
    private let stream: UnsafeMutablePointer<z_stream>
    /// Output bytes produced so far.
    private(set) var produced = 0
    /// Whether the stream's end (with its checksum verified) has been reached.
    private(set) var finished = false

    init() throws {
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let status = inflateInit_(stream, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        guard status == Z_OK else {
            stream.deallocate()
            throw ImageError.corrupt(format: "PNG", detail: "zlib could not start (status \(status))")
        }
    }

    deinit {
        inflateEnd(stream)
        stream.deallocate()
    }

    /// Inflates from `pieces`, in order from `cursor` (which it advances), into the whole of `output`; stops
    /// when the output is full, the stream ends or the input runs out, and returns the bytes written.
    /// Throws on corrupt compressed data.
    func fill(
        _ output: UnsafeMutableRawBufferPointer, from pieces: [UnsafeRawBufferPointer],
        cursor: inout (piece: Int, offset: Int)
    ) throws -> Int {
        var written = 0
        while !finished && written < output.count && cursor.piece < pieces.count {
            let piece = pieces[cursor.piece]
            guard cursor.offset < piece.count else {
                cursor = (cursor.piece + 1, 0)
                continue
            }
            let inCount = min(piece.count - cursor.offset, Int(UInt32.max >> 1))
            let outCount = min(output.count - written, Int(UInt32.max >> 1))
            // zlib never writes through next_in; its header just lacks `const` here.
            let next = (piece.baseAddress! + cursor.offset).assumingMemoryBound(to: Bytef.self)
            stream.pointee.next_in = UnsafeMutablePointer(mutating: next)
            stream.pointee.avail_in = uInt(inCount)
            stream.pointee.next_out = (output.baseAddress! + written).assumingMemoryBound(to: Bytef.self)
            stream.pointee.avail_out = uInt(outCount)
            let status = inflate(stream, Z_NO_FLUSH)
            let consumed = inCount - Int(stream.pointee.avail_in)
            let made = outCount - Int(stream.pointee.avail_out)
            cursor.offset += consumed
            written += made
            produced += made
            switch status {
            case Z_OK:
                continue
            case Z_STREAM_END:
                finished = true
            case Z_BUF_ERROR where written == output.count:
                continue  // the output is full: the loop ends
            default:
                let message = stream.pointee.msg.map { String(cString: $0) } ?? "zlib status \(status)"
                throw ImageError.corrupt(format: "PNG", detail: "the compressed image data is invalid (\(message))")
            }
        }
        return written
    }
}
