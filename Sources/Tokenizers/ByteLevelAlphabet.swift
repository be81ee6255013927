// GPT-2's byte ↔ character table (`bytes_to_unicode`): the printable bytes `!`…`~`, `¡`…`¬` and `®`…`ÿ`
// stand for themselves; the other 68 bytes map to U+0100 onward in byte order (space → `Ġ`, newline → `Ċ`).

/// GPT-2's reversible map between bytes and the characters byte-level BPE vocabularies are written in.
public enum ByteLevelAlphabet {
    /// The character (scalar value) standing for each byte.
    public static let scalarForByte: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            let printable = (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b)
            if printable {
                table[b] = UInt32(b)
            } else {
                table[b] = next
                next += 1
            }
        }
        return table
    }()

    /// The UTF-8 bytes of the character standing for each byte.
    static let utf8ForByte: [[UInt8]] = scalarForByte.map { v in
        var out: [UInt8] = []
        appendUTF8(v, to: &out)
        return out
    }

    /// The byte each alphabet character stands for, indexed by scalar value (0..<324); -1 elsewhere.
    static let byteForScalar: [Int16] = {
        var table = [Int16](repeating: -1, count: 324)
        for (b, v) in scalarForByte.enumerated() { table[Int(v)] = Int16(b) }
        return table
    }()

    /// Maps text bytes to the alphabet's characters (UTF-8), as the ByteLevel pre-tokenizer does.
    static func encode(_ bytes: UnsafeBufferPointer<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes { out.append(contentsOf: utf8ForByte[Int(b)]) }
        return out
    }

    /// Maps a token written in the alphabet back to raw bytes; nil if a character is not in the alphabet.
    static func decode(_ token: [UInt8]) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(token.count)
        var i = 0
        while i < token.count {
            let (scalar, length) = decodeScalar(token, at: i)
            guard scalar < 324, byteForScalar[Int(scalar)] >= 0 else { return nil }
            out.append(UInt8(byteForScalar[Int(scalar)]))
            i += length
        }
        return out
    }
}

/// Decodes the scalar starting at `i` of valid UTF-8 and its length in bytes.
func decodeScalar(_ bytes: [UInt8], at i: Int) -> (UInt32, Int) {
    bytes.withUnsafeBufferPointer { decodeScalar($0, at: i) }
}

/// Decodes the scalar starting at `i` of valid UTF-8 and its length in bytes.
func decodeScalar(_ bytes: UnsafeBufferPointer<UInt8>, at i: Int) -> (UInt32, Int) {
    let b0 = UInt32(bytes[i])
    if b0 < 0x80 { return (b0, 1) }
    if b0 < 0xE0 { return ((b0 & 0x1F) << 6 | UInt32(bytes[i + 1] & 0x3F), 2) }
    if b0 < 0xF0 {
        return ((b0 & 0x0F) << 12 | UInt32(bytes[i + 1] & 0x3F) << 6 | UInt32(bytes[i + 2] & 0x3F), 3)
    }
    return (
        (b0 & 0x07) << 18 | UInt32(bytes[i + 1] & 0x3F) << 12 | UInt32(bytes[i + 2] & 0x3F) << 6
            | UInt32(bytes[i + 3] & 0x3F), 4
    )
}

/// The length in bytes of the UTF-8 sequence that starts with `b0` (valid UTF-8 assumed).
func utf8Length(_ b0: UInt8) -> Int {
    b0 < 0x80 ? 1 : b0 < 0xE0 ? 2 : b0 < 0xF0 ? 3 : 4
}
