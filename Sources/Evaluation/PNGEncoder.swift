// The smallest correct PNG writer: RGB8, no interlace, filter 0 on every row, one zlib-compressed IDAT.

import CZlib

public enum PNGEncoder {
    /// A PNG file of `width × height` interleaved RGB bytes.
    public static func encode(width: Int, height: Int, rgb: [UInt8]) throws -> [UInt8] {
        precondition(width > 0 && height > 0 && rgb.count == width * height * 3, "RGB buffer size mismatch")
        var raw = [UInt8]()
        raw.reserveCapacity(height * (width * 3 + 1))
        for y in 0..<height {
            raw.append(0)  // filter type None
            raw += rgb[(y * width * 3)..<((y + 1) * width * 3)]
        }
        var header = bigEndian(UInt32(width)) + bigEndian(UInt32(height))
        header += [8, 2, 0, 0, 0]  // bit depth 8, colour type RGB, deflate, filter 0, no interlace
        var file: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        file += chunk("IHDR", header)
        file += chunk("IDAT", try deflate(raw))
        file += chunk("IEND", [])
        return file
    }

    static func deflate(_ bytes: [UInt8]) throws -> [UInt8] {
        var length = compressBound(uLong(bytes.count))
        var out = [UInt8](repeating: 0, count: Int(length))
        let status = out.withUnsafeMutableBufferPointer { o in
            bytes.withUnsafeBufferPointer { i in
                compress2(o.baseAddress, &length, i.baseAddress, uLong(i.count), Z_BEST_COMPRESSION)
            }
        }
        guard status == Z_OK else { throw EvaluationError("zlib compress2 failed (status \(status))") }
        return Array(out.prefix(Int(length)))
    }

    static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let body = Array(type.utf8) + data
        let crc = body.withUnsafeBufferPointer { UInt32(truncatingIfNeeded: crc32(0, $0.baseAddress, uInt($0.count))) }
        return bigEndian(UInt32(data.count)) + body + bigEndian(crc)
    }

    static func bigEndian(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)]
    }
}
