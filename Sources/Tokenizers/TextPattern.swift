// The patterns tokenizer.json files split and replace with: literal strings, and regexes. The regexes that
// the supported tokenizers use (GPT-2's, CLIP's, `\s+`) are matched by hand for speed and for Oniguruma's
// exact semantics; any other regex falls back to NSRegularExpression (ICU), whose syntax and Unicode tables
// are close to Oniguruma's but not guaranteed identical.

import Foundation

/// A pattern from a tokenizer file.
enum TextPattern: Sendable {
    case literal([UInt8])
    /// `\s+`
    case whitespaceRun
    case gpt2(CharacterClassifier)
    case clip(CharacterClassifier)
    case regex(CompiledRegex)

    /// Reads `{"String": …}` or `{"Regex": …}`.
    static func parse(_ json: JSONValue?, path: String) throws(TokenizerError) -> TextPattern {
        if let s = json?["String"]?.string { return .literal(Array(s.utf8)) }
        if let r = json?["Regex"]?.string { return try regex(r, path: path) }
        throw .invalidFile(path: path, reason: "a pattern must be {\"String\": …} or {\"Regex\": …}")
    }

    static func regex(_ source: String, path: String) throws(TokenizerError) -> TextPattern {
        if source == GPT2Pattern.source { return .gpt2(.huggingFace) }
        if source == CLIPPattern.source { return .clip(.huggingFace) }
        if source == #"\s+"# { return .whitespaceRun }
        guard let compiled = CompiledRegex(source) else {
            throw .unsupported(path: path, feature: "the regex \(source)")
        }
        return .regex(compiled)
    }

    /// The non-overlapping matches in `p`, leftmost first.
    func matches(in p: UnsafeBufferPointer<UInt8>) -> [Range<Int>] {
        var out: [Range<Int>] = []
        switch self {
        case .literal(let needle):
            guard !needle.isEmpty, needle.count <= p.count else { return [] }
            var i = 0
            while i + needle.count <= p.count {
                if p[i] == needle[0], (1..<needle.count).allSatisfy({ p[i + $0] == needle[$0] }) {
                    out.append(i..<(i + needle.count))
                    i += needle.count
                } else {
                    i += 1
                }
            }
        case .whitespaceRun:
            var i = 0
            while i < p.count {
                let (v, n) = decodeScalar(p, at: i)
                guard isUnicodeWhitespace(v) else {
                    i += n
                    continue
                }
                var k = i + n
                while k < p.count {
                    let (w, m) = decodeScalar(p, at: k)
                    if !isUnicodeWhitespace(w) { break }
                    k += m
                }
                out.append(i..<k)
                i = k
            }
        case .gpt2(let classifier):
            GPT2Pattern.forEachMatch(p, classifier) { out.append($0) }
        case .clip(let classifier):
            CLIPPattern.forEachMatch(p, classifier, ignoreCase: false) { range, _ in out.append(range) }
        case .regex(let regex):
            out = regex.matches(in: p)
        }
        return out
    }

    /// Replaces every match with `content`.
    func replacingMatches(in bytes: [UInt8], with content: [UInt8]) -> [UInt8] {
        bytes.withUnsafeBufferPointer { p in
            let ranges = matches(in: p)
            if ranges.isEmpty { return bytes }
            var out: [UInt8] = []
            out.reserveCapacity(bytes.count)
            var last = 0
            for r in ranges where !r.isEmpty {
                out.append(contentsOf: p[last..<r.lowerBound])
                out.append(contentsOf: content)
                last = r.upperBound
            }
            out.append(contentsOf: p[last...])
            return out
        }
    }
}

/// An NSRegularExpression for patterns without a hand-written matcher.
/// Invariant: never mutated after init; NSRegularExpression matching is thread-safe.
final class CompiledRegex: @unchecked Sendable {
    let expression: NSRegularExpression

    init?(_ source: String) {
        guard let e = try? NSRegularExpression(pattern: source, options: []) else { return nil }
        expression = e
    }

    /// Matches as UTF-8 byte ranges.
    func matches(in p: UnsafeBufferPointer<UInt8>) -> [Range<Int>] {
        let text = String(decoding: p, as: UTF8.self)
        let utf16 = Array(text.utf16)
        // UTF-16 offset → UTF-8 offset.
        var utf8Offset = [Int](repeating: 0, count: utf16.count + 1)
        var u8 = 0
        var i = 0
        while i < utf16.count {
            utf8Offset[i] = u8
            let unit = utf16[i]
            if unit < 0x80 {
                u8 += 1
            } else if unit < 0x800 {
                u8 += 2
            } else if (0xD800..<0xDC00).contains(unit), i + 1 < utf16.count {
                u8 += 4
                i += 1
                utf8Offset[i] = u8 - 2
            } else {
                u8 += 3
            }
            i += 1
        }
        utf8Offset[utf16.count] = u8
        return expression.matches(in: text, options: [], range: NSRange(location: 0, length: utf16.count)).map {
            utf8Offset[$0.range.location]..<utf8Offset[$0.range.location + $0.range.length]
        }
    }
}
