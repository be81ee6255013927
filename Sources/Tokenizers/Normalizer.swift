// Normalizers: the first stage of the pipeline, text → text (UTF-8 bytes in and out), applied to each
// stretch of text between added tokens. Mirrors `normalizers` in tokenizer.json.

import Foundation

/// One normalization step from tokenizer.json.
enum NormalizerStep: Sendable {
    case nfc, nfd, nfkc, nfkd
    case lowercase
    case replace(TextPattern, [UInt8])
    case prepend([UInt8])
    case strip(left: Bool, right: Bool)
}

/// A sequence of normalization steps (empty: the identity).
struct Normalizer: Sendable {
    var steps: [NormalizerStep]

    var isIdentity: Bool { steps.isEmpty }

    /// Reads a tokenizer.json `normalizer` (null, one normalizer, or a Sequence).
    init(json: JSONValue?, path: String) throws(TokenizerError) {
        steps = []
        guard let json, !json.isNull else { return }
        try append(json, path: path)
    }

    init(steps: [NormalizerStep]) { self.steps = steps }

    private mutating func append(_ json: JSONValue, path: String) throws(TokenizerError) {
        let type = json["type"]?.string ?? ""
        switch type {
        case "Sequence":
            for n in json["normalizers"]?.array ?? [] { try append(n, path: path) }
        case "NFC": steps.append(.nfc)
        case "NFD": steps.append(.nfd)
        case "NFKC": steps.append(.nfkc)
        case "NFKD": steps.append(.nfkd)
        case "Lowercase": steps.append(.lowercase)
        case "Replace":
            let content = json["content"]?.string ?? ""
            steps.append(.replace(try TextPattern.parse(json["pattern"], path: path), Array(content.utf8)))
        case "Prepend":
            steps.append(.prepend(Array((json["prepend"]?.string ?? "").utf8)))
        case "Strip":
            steps.append(.strip(left: json["strip_left"]?.bool ?? true, right: json["strip_right"]?.bool ?? true))
        default:
            throw .unsupported(path: path, feature: "the normalizer \"\(type)\"")
        }
    }

    /// Normalizes UTF-8 text.
    func callAsFunction(_ text: [UInt8]) -> [UInt8] {
        var bytes = text
        for step in steps {
            switch step {
            case .nfc: bytes = Self.nfc(bytes)
            case .nfd:
                bytes = Self.foundationForm(bytes, asciiIsFixed: true) { $0.decomposedStringWithCanonicalMapping }
            case .nfkc:
                bytes = Self.foundationForm(bytes, asciiIsFixed: true) { $0.precomposedStringWithCompatibilityMapping }
            case .nfkd:
                bytes = Self.foundationForm(bytes, asciiIsFixed: true) { $0.decomposedStringWithCompatibilityMapping }
            case .lowercase: bytes = Self.lowercase(bytes)
            case .replace(let pattern, let content): bytes = pattern.replacingMatches(in: bytes, with: content)
            case .prepend(let prefix): if !bytes.isEmpty { bytes = prefix + bytes }
            case .strip(let left, let right): bytes = Self.strip(bytes, left: left, right: right)
            }
        }
        return bytes
    }

    /// NFC; text whose scalars are all below U+0300 is already in NFC (no such character composes or
    /// has a singleton decomposition), which the lead bytes show without decoding.
    static func nfc(_ bytes: [UInt8]) -> [UInt8] {
        if !bytes.contains(where: { $0 >= 0xCC }) { return bytes }
        return foundationForm(bytes, asciiIsFixed: true) { $0.precomposedStringWithCanonicalMapping }
    }

    private static func foundationForm(_ bytes: [UInt8], asciiIsFixed: Bool, _ form: (String) -> String) -> [UInt8] {
        if asciiIsFixed, !bytes.contains(where: { $0 >= 0x80 }) { return bytes }
        return Array(form(String(decoding: bytes, as: UTF8.self)).utf8)
    }

    /// Full lowercase mapping, scalar by scalar (as Rust's `char::to_lowercase`, without context).
    static func lowercase(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        bytes.withUnsafeBufferPointer { p in
            var i = 0
            while i < p.count {
                let b = p[i]
                if b < 0x80 {
                    out.append((0x41...0x5A).contains(b) ? b | 0x20 : b)
                    i += 1
                    continue
                }
                let (v, n) = decodeScalar(p, at: i)
                let scalar = Unicode.Scalar(v)!
                if scalar.properties.changesWhenLowercased {
                    out.append(contentsOf: scalar.properties.lowercaseMapping.utf8)
                } else {
                    out.append(contentsOf: p[i..<(i + n)])
                }
                i += n
            }
        }
        return out
    }

    /// Strips Unicode White_Space at either end.
    static func strip(_ bytes: [UInt8], left: Bool, right: Bool) -> [UInt8] {
        bytes.withUnsafeBufferPointer { p in
            var start = 0
            var end = p.count
            if left {
                while start < end {
                    let (v, n) = decodeScalar(p, at: start)
                    if !isUnicodeWhitespace(v) { break }
                    start += n
                }
            }
            if right {
                while end > start {
                    var k = end - 1
                    while k > start, p[k] & 0xC0 == 0x80 { k -= 1 }
                    let (v, _) = decodeScalar(p, at: k)
                    if !isUnicodeWhitespace(v) { break }
                    end = k
                }
            }
            return Array(p[start..<end])
        }
    }
}
