// Turning ids that arrive one at a time (generation) into text, never emitting half a character.
//
// Each new id is decoded together with a few already-emitted ids before it (the context) and the text
// beyond the context's own decode is the new text. Text that ends in U+FFFD is held back: the last token
// ended inside a UTF-8 sequence (a byte-level BPE piece or `<0xNN>` byte-fallback tokens) and the next ids
// complete it. The context is chosen so that decoding it alone reproduces the end of what was emitted and
// contains a non-space character: then the decoders' start-of-text rules (Strip's leading space,
// Metaspace's first `▁`, CLIP's strip) and byte-fallback grouping act inside the context, and the
// difference is exactly what a decode of the whole stream adds.

/// Ids in one at a time, newly completed text out; a value type that owns its state.
public struct StreamingDetokenizer: Sendable {
    private let tokenizer: any Tokenizer
    private let skipSpecialTokens: Bool
    /// Every id whose text has been emitted.
    private var emittedIDs: [Int] = []
    /// The UTF-8 of everything emitted.
    private var emitted: [UInt8] = []
    /// How many of the last emitted ids form the context, and their decode.
    private var contextCount = 0
    private var contextText: [UInt8] = []
    /// Ids whose text is held back.
    private var pending: [Int] = []

    /// A detokenizer for `tokenizer`.
    public init(tokenizer: any Tokenizer, skipSpecialTokens: Bool = false) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
    }

    /// All text emitted so far.
    public var text: String { String(decoding: emitted, as: UTF8.self) }

    /// Adds one id; returns the text it completes (empty while a character is incomplete).
    public mutating func append(_ id: Int) -> String {
        pending.append(id)
        // A byte-fallback token (`<0xNN>`) is held until a token of another kind follows: the decoder turns a
        // run of them into text as a whole, and when the run is not valid UTF-8 every byte of it becomes U+FFFD,
        // so an ASCII byte already shown could later have to read "\u{FFFD}".
        if isByteFallbackToken(id) { return "" }
        let window = Array(emittedIDs.suffix(contextCount)) + pending
        let decoded = Array(tokenizer.decode(window, skipSpecialTokens: skipSpecialTokens).utf8)
        if Self.endsWithReplacement(decoded) { return "" }
        return commit(decoded)
    }

    /// Ends the stream: returns the held-back text (with U+FFFD for bytes that never completed).
    public mutating func finish() -> String {
        guard !pending.isEmpty else { return "" }
        let window = Array(emittedIDs.suffix(contextCount)) + pending
        return commit(Array(tokenizer.decode(window, skipSpecialTokens: skipSpecialTokens).utf8))
    }

    private mutating func commit(_ decoded: [UInt8]) -> String {
        var new: [UInt8]
        if decoded.starts(with: contextText) {
            new = Array(decoded[contextText.count...])
        } else {
            // Should not happen with the context rule above; fall back to decoding everything.
            let all = Array(tokenizer.decode(emittedIDs + pending, skipSpecialTokens: skipSpecialTokens).utf8)
            var common = 0
            while common < min(all.count, emitted.count), all[common] == emitted[common] { common += 1 }
            new = Array(all[common...])
        }
        emittedIDs += pending
        pending.removeAll(keepingCapacity: true)
        emitted += new
        chooseContext()
        return String(decoding: new, as: UTF8.self)
    }

    /// The shortest suffix of the emitted ids (1, 2, 4, … up to 64 ids) whose decode has a non-space
    /// character and is the end of the emitted text; all ids when none is.
    private mutating func chooseContext() {
        var k = 1
        while k <= min(64, emittedIDs.count) {
            let candidate = Array(
                tokenizer.decode(Array(emittedIDs.suffix(k)), skipSpecialTokens: skipSpecialTokens).utf8)
            if Self.hasNonSpace(candidate), emitted.count >= candidate.count,
                emitted.suffix(candidate.count).elementsEqual(candidate)
            {
                contextCount = k
                contextText = candidate
                return
            }
            k *= 2
        }
        contextCount = emittedIDs.count
        contextText = emitted
    }

    private func isByteFallbackToken(_ id: Int) -> Bool {
        guard let token = tokenizer.token(id), token.utf8.count == 6 else { return false }
        let u = Array(token.utf8)
        func hex(_ c: UInt8) -> Bool { (0x30...0x39).contains(c) || (0x41...0x46).contains(c) || (0x61...0x66).contains(c) }
        return u[0] == 0x3C && u[1] == 0x30 && u[2] == 0x78 && hex(u[3]) && hex(u[4]) && u[5] == 0x3E
    }

    private static func hasNonSpace(_ bytes: [UInt8]) -> Bool {
        String(decoding: bytes, as: UTF8.self).unicodeScalars.contains { !isPythonWhitespace($0.value) }
    }

    private static func endsWithReplacement(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 3 && bytes[bytes.count - 3] == 0xEF && bytes[bytes.count - 2] == 0xBF
            && bytes[bytes.count - 1] == 0xBD
    }
}
