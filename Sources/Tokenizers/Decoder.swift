// Decoders: token texts → text. Mirrors `decoder` in tokenizer.json; each step maps the list of token
// texts to a new list (`decode_chain` in the crate) and the result is their concatenation. Tokens are
// UTF-8 bytes; a step that turns bytes into text replaces invalid UTF-8 as the crate does.

/// One decoding step from tokenizer.json.
enum DecoderStep: Sendable {
    case byteLevel
    case replace(TextPattern, [UInt8])
    case byteFallback
    case fuse
    case strip(content: UInt32, start: Int, stop: Int)
    case metaspace(replacement: [UInt8], prependScheme: PrependScheme)
    case bpeSuffix([UInt8])
}

/// A sequence of decoding steps; without any, tokens are joined with spaces (as the crate does).
struct Decoder: Sendable {
    var steps: [DecoderStep]
    var joinsWithSpaces: Bool

    init(steps: [DecoderStep]) {
        self.steps = steps
        joinsWithSpaces = false
    }

    /// Reads a tokenizer.json `decoder`.
    init(json: JSONValue?, path: String) throws(TokenizerError) {
        steps = []
        joinsWithSpaces = json == nil || json!.isNull
        if let json, !json.isNull { try append(json, path: path) }
    }

    private mutating func append(_ json: JSONValue, path: String) throws(TokenizerError) {
        let type = json["type"]?.string ?? ""
        switch type {
        case "Sequence":
            for d in json["decoders"]?.array ?? [] { try append(d, path: path) }
        case "ByteLevel": steps.append(.byteLevel)
        case "ByteFallback": steps.append(.byteFallback)
        case "Fuse": steps.append(.fuse)
        case "Replace":
            let content = json["content"]?.string ?? ""
            steps.append(.replace(try TextPattern.parse(json["pattern"], path: path), Array(content.utf8)))
        case "Strip":
            let content = json["content"]?.string ?? " "
            guard let scalar = content.unicodeScalars.first, content.unicodeScalars.count == 1 else {
                throw .invalidFile(path: path, reason: "the Strip decoder's content must be one character")
            }
            steps.append(.strip(content: scalar.value, start: json["start"]?.int ?? 0, stop: json["stop"]?.int ?? 0))
        case "Metaspace":
            let replacement = json["replacement"]?.string ?? "▁"
            let scheme: PrependScheme
            if let name = json["prepend_scheme"]?.string {
                scheme = PrependScheme(rawValue: name) ?? .always
            } else {
                scheme = (json["add_prefix_space"]?.bool ?? true) ? .always : .never
            }
            steps.append(.metaspace(replacement: Array(replacement.utf8), prependScheme: scheme))
        case "BPEDecoder":
            steps.append(.bpeSuffix(Array((json["suffix"]?.string ?? "</w>").utf8)))
        default:
            throw .unsupported(path: path, feature: "the decoder \"\(type)\"")
        }
    }

    /// Decodes token texts to text.
    func callAsFunction(_ tokens: [[UInt8]]) -> String {
        if joinsWithSpaces {
            return String(decoding: Array(tokens.joined(separator: [0x20])), as: UTF8.self)
        }
        var current = tokens
        for step in steps { current = Self.apply(step, current) }
        var out: [UInt8] = []
        for t in current { out.append(contentsOf: t) }
        return String(decoding: out, as: UTF8.self)
    }

    static func apply(_ step: DecoderStep, _ tokens: [[UInt8]]) -> [[UInt8]] {
        switch step {
        case .byteLevel:
            var bytes: [UInt8] = []
            for t in tokens {
                if let raw = ByteLevelAlphabet.decode(t) {
                    bytes.append(contentsOf: raw)
                } else {
                    bytes.append(contentsOf: t)
                }
            }
            return [lossless(bytes)]
        case .replace(let pattern, let content):
            return tokens.map { pattern.replacingMatches(in: $0, with: content) }
        case .byteFallback:
            var out: [[UInt8]] = []
            var pending: [UInt8] = []
            func flush() {
                guard !pending.isEmpty else { return }
                if String(validating: pending, as: UTF8.self) != nil {
                    out.append(pending)
                } else {
                    out.append(contentsOf: Array(repeating: [0xEF, 0xBF, 0xBD], count: pending.count))
                }
                pending = []
            }
            for t in tokens {
                if let byte = fallbackByte(t) {
                    pending.append(byte)
                } else {
                    flush()
                    out.append(t)
                }
            }
            flush()
            return out
        case .fuse:
            return [Array(tokens.joined())]
        case .strip(let content, let start, let stop):
            return tokens.map { strip($0, content, start, stop) }
        case .metaspace(let replacement, let scheme):
            return tokens.enumerated().map { i, t in
                let pattern = TextPattern.literal(replacement)
                let dropFirst = i == 0 && scheme != .never
                return pattern.replacingMatches(in: t, with: dropFirst ? [] : [0x20])
            }
        case .bpeSuffix(let suffix):
            return tokens.enumerated().map { i, t in
                TextPattern.literal(suffix).replacingMatches(in: t, with: i == tokens.count - 1 ? [] : [0x20])
            }
        }
    }

    /// `<0xNN>` (exactly six bytes) → the byte.
    static func fallbackByte(_ t: [UInt8]) -> UInt8? {
        guard t.count == 6, t[0] == 0x3C, t[1] == 0x30, t[2] == 0x78, t[5] == 0x3E,
            let hi = hexValue(t[3]), let lo = hexValue(t[4])
        else { return nil }
        return hi << 4 | lo
    }

    private static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case 0x30...0x39: b - 0x30
        case 0x41...0x46: b - 0x41 + 10
        case 0x61...0x66: b - 0x61 + 10
        default: nil
        }
    }

    /// Valid UTF-8, with each maximal invalid subsequence replaced by U+FFFD (`String::from_utf8_lossy`).
    static func lossless(_ bytes: [UInt8]) -> [UInt8] {
        if String(validating: bytes, as: UTF8.self) != nil { return bytes }
        return Array(String(decoding: bytes, as: UTF8.self).utf8)
    }

    /// Removes up to `start` leading and `stop` trailing `content` characters.
    static func strip(_ t: [UInt8], _ content: UInt32, _ start: Int, _ stop: Int) -> [UInt8] {
        let scalars = Array(String(decoding: t, as: UTF8.self).unicodeScalars)
        var startCut = 0
        for i in 0..<min(start, scalars.count) {
            if scalars[i].value == content { startCut = i + 1 } else { break }
        }
        var stopCut = scalars.count
        for i in 0..<min(stop, scalars.count) {
            let index = scalars.count - i - 1
            if scalars[index].value == content { stopCut = index } else { break }
        }
        guard startCut < stopCut else { return [] }
        var out: [UInt8] = []
        for s in scalars[startCut..<stopCut] { appendUTF8(s.value, to: &out) }
        return out
    }
}
