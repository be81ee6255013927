// CLIP's pre-tokenizer pattern, matched by hand with the semantics of the regex
//     <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
// Alternatives are tried in order; a number matches one character at a time; whitespace matches nothing, so
// it falls in the gaps that CLIP's Split (behaviour "removed", inverted) drops. CLIP lowercases before it
// splits, so case-sensitivity only matters for the OpenAI tokenizer's `re.IGNORECASE`, which this matcher
// applies to ASCII letters.

enum CLIPPattern {
    static let source = #"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"#

    static let startOfText = Array("<|startoftext|>".utf8)
    static let endOfText = Array("<|endoftext|>".utf8)

    /// Calls `body` with each match in order (with whether it is one of the two special-token texts);
    /// whitespace between matches is skipped.
    static func forEachMatch(
        _ p: UnsafeBufferPointer<UInt8>, _ classifier: CharacterClassifier, ignoreCase: Bool,
        _ body: (Range<Int>, Bool) -> Void
    ) {
        let n = p.count
        var i = 0
        while i < n {
            if p[i] == 0x3C {  // "<"
                if hasPrefix(p, at: i, startOfText, ignoreCase) {
                    body(i..<(i + startOfText.count), true)
                    i += startOfText.count
                    continue
                }
                if hasPrefix(p, at: i, endOfText, ignoreCase) {
                    body(i..<(i + endOfText.count), true)
                    i += endOfText.count
                    continue
                }
            }
            if p[i] == 0x27, let end = contractionEnd(p, after: i + 1, ignoreCase) {
                body(i..<end, false)
                i = end
                continue
            }
            let (c, length) = classAt(p, i, classifier)
            switch c {
            case .whitespace:
                i += length
            case .number:
                body(i..<(i + length), false)
                i += length
            case .letter, .other:
                let end = runEnd(p, from: i + length, c, classifier)
                body(i..<end, false)
                i = end
            }
        }
    }

    /// The end of `s|t|re|ve|m|ll|d` at `i` (the text after an apostrophe), if one is there.
    private static func contractionEnd(_ p: UnsafeBufferPointer<UInt8>, after i: Int, _ ignoreCase: Bool) -> Int? {
        guard let (c1, n1) = folded(p, i, ignoreCase) else { return nil }
        if c1 == 0x73 || c1 == 0x74 || c1 == 0x6D || c1 == 0x64 { return i + n1 }
        guard let (c2, n2) = folded(p, i + n1, ignoreCase) else { return nil }
        if (c1 == 0x72 && c2 == 0x65) || (c1 == 0x76 && c2 == 0x65) || (c1 == 0x6C && c2 == 0x6C) { return i + n1 + n2 }
        return nil
    }

    /// The ASCII letter the character at `i` matches and its length. Ignoring case as Python's `regex`
    /// does (simple case folding), `ſ` (U+017F) matches `s`.
    @inline(__always)
    private static func folded(_ p: UnsafeBufferPointer<UInt8>, _ i: Int, _ ignoreCase: Bool) -> (UInt8, Int)? {
        guard i < p.count else { return nil }
        if p[i] < 0x80 { return (lower(p[i], ignoreCase), 1) }
        if ignoreCase, p[i] == 0xC5, i + 1 < p.count, p[i + 1] == 0xBF { return (0x73, 2) }
        return nil
    }

    @inline(__always)
    private static func lower(_ b: UInt8, _ ignoreCase: Bool) -> UInt8 {
        ignoreCase && (0x41...0x5A).contains(b) ? b | 0x20 : b
    }

    private static func hasPrefix(
        _ p: UnsafeBufferPointer<UInt8>, at i: Int, _ prefix: [UInt8], _ ignoreCase: Bool
    ) -> Bool {
        guard i + prefix.count <= p.count else { return false }
        for k in 0..<prefix.count where lower(p[i + k], ignoreCase) != prefix[k] { return false }
        return true
    }
}
