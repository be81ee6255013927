// The text cleaning of OpenAI's CLIP tokenizer (`clip/simple_tokenizer.py`):
//     whitespace_clean(basic_clean(text)).lower()
// where basic_clean = ftfy.fix_text, then html.unescape twice, then strip. What is implemented:
// - ftfy.fix_text with its default settings EXCEPT mojibake repair (`fix_encoding`, which guesses at
//   encodings from statistics): per line, until nothing changes — its HTML unescaping (off from the first
//   line containing "<"), C1 controls read as Windows-1252, Latin ligatures, full/half-width forms,
//   curly quotes, line breaks, ANSI escapes, control characters, NFC;
// - html.unescape: numeric references with Python's rules; named references from the table below (a subset
//   of HTML5's 2231 names: the ones text is likely to carry), with Python's no-semicolon legacy forms;
// - Python's whitespace classes and `str.lower()` (final sigma included).

import Foundation

enum OpenAICLIPText {
    /// `whitespace_clean(basic_clean(text)).lower()`.
    static func clean(_ text: String) -> [UInt8] {
        var s = Array(text.unicodeScalars.map(\.value))
        s = ftfyFixText(s)
        s = htmlUnescape(htmlUnescape(s))
        s = stripPythonWhitespace(s)
        // whitespace_clean: re.sub(r"\s+", " ") with the `regex` module (\s is White_Space), then strip().
        var collapsed: [UInt32] = []
        collapsed.reserveCapacity(s.count)
        var inRun = false
        for v in s {
            if isUnicodeWhitespace(v) {
                if !inRun { collapsed.append(0x20) }
                inRun = true
            } else {
                collapsed.append(v)
                inRun = false
            }
        }
        s = stripPythonWhitespace(collapsed)
        s = pythonLower(s)
        var out: [UInt8] = []
        out.reserveCapacity(s.count)
        for v in s { appendUTF8(v, to: &out) }
        return out
    }

    // MARK: ftfy

    static func ftfyFixText(_ text: [UInt32]) -> [UInt32] {
        var out: [UInt32] = []
        var unescape = true
        var start = 0
        while start < text.count {
            var end = start
            while end < text.count, text[end] != 0x0A { end += 1 }
            if end < text.count { end += 1 }
            let segment = Array(text[start..<end])
            if segment.contains(0x3C) { unescape = false }
            out += fixSegment(segment, unescapeHTML: unescape)
            start = end
        }
        return out
    }

    private static func fixSegment(_ segment: [UInt32], unescapeHTML: Bool) -> [UInt32] {
        var s = segment
        while true {
            let original = s
            if unescapeHTML { s = ftfyUnescapeHTML(s) }
            s = s.map { (0x80...0x9F).contains($0) ? windows1252[Int($0 - 0x80)] : $0 }
            s = s.flatMap { ligatures[$0] ?? [$0] }
            s = s.flatMap { characterWidth($0) }
            s = s.map { v in
                if v == 0x02BC || (0x2018...0x201B).contains(v) { return 0x27 }
                if (0x201C...0x201F).contains(v) { return 0x22 }
                return v
            }
            s = fixLineBreaks(s)
            s = removeTerminalEscapes(s)
            s = s.filter { !isRemovedControl($0) }
            s = nfc(s)
            if s == original { return s }
        }
    }

    /// ftfy's `unescape_html`: `&#?[0-9A-Za-z]{1,24};` when the name is known (or a numeric reference).
    private static func ftfyUnescapeHTML(_ s: [UInt32]) -> [UInt32] {
        guard s.contains(0x26) else { return s }
        var out: [UInt32] = []
        var i = 0
        while i < s.count {
            guard s[i] == 0x26 else {
                out.append(s[i])
                i += 1
                continue
            }
            var j = i + 1
            if j < s.count, s[j] == 0x23 { j += 1 }
            let nameStart = j
            while j < s.count, j - nameStart < 24, isASCIIAlphanumeric(s[j]) { j += 1 }
            guard j > nameStart, j < s.count, s[j] == 0x3B else {
                out.append(s[i])
                i += 1
                continue
            }
            let reference = Array(s[i...j])
            let name = String(decoding: s[(i + 1)..<j].map { UInt8($0) }, as: UTF8.self)
            if s[i + 1] != 0x23, let value = namedEntity(name) ?? uppercaseEntity(name) {
                out += value
            } else if s[i + 1] == 0x23 {
                let decoded = htmlUnescape(reference)
                out += decoded.contains(0x3B) ? reference : decoded
            } else {
                out += reference
            }
            i = j + 1
        }
        return out
    }

    private static func fixLineBreaks(_ s: [UInt32]) -> [UInt32] {
        var out: [UInt32] = []
        out.reserveCapacity(s.count)
        var i = 0
        while i < s.count {
            let v = s[i]
            if v == 0x0D {
                out.append(0x0A)
                if i + 1 < s.count, s[i + 1] == 0x0A { i += 1 }
            } else if v == 0x2028 || v == 0x2029 || v == 0x85 {
                out.append(0x0A)
            } else {
                out.append(v)
            }
            i += 1
        }
        return out
    }

    /// `\033\[((?:\d|;)*)([a-zA-Z])` removed.
    private static func removeTerminalEscapes(_ s: [UInt32]) -> [UInt32] {
        guard s.contains(0x1B) else { return s }
        var out: [UInt32] = []
        var i = 0
        while i < s.count {
            if s[i] == 0x1B, i + 1 < s.count, s[i + 1] == 0x5B {
                var j = i + 2
                while j < s.count, s[j] == 0x3B || isDecimalDigit(s[j]) { j += 1 }
                if j < s.count, isASCIILetter(s[j]) {
                    i = j + 1
                    continue
                }
            }
            out.append(s[i])
            i += 1
        }
        return out
    }

    private static func isRemovedControl(_ v: UInt32) -> Bool {
        (0x00...0x08).contains(v) || v == 0x0B || (0x0E...0x1F).contains(v) || v == 0x7F
            || (0x206A...0x206F).contains(v) || v == 0xFEFF || (0xFFF9...0xFFFC).contains(v)
    }

    private static func characterWidth(_ v: UInt32) -> [UInt32] {
        if v == 0x3000 { return [0x20] }
        guard (0xFF01...0xFFEF).contains(v), let scalar = Unicode.Scalar(v) else { return [v] }
        let mapped = String(Character(scalar)).precomposedStringWithCompatibilityMapping
        return mapped.unicodeScalars.map(\.value)
    }

    private static func nfc(_ s: [UInt32]) -> [UInt32] {
        if !s.contains(where: { $0 >= 0x300 }) { return s }
        var text = String.UnicodeScalarView()
        for v in s { if let u = Unicode.Scalar(v) { text.append(u) } }
        return String(text).precomposedStringWithCanonicalMapping.unicodeScalars.map(\.value)
    }

    // MARK: html.unescape

    /// Python's `html.unescape`.
    static func htmlUnescape(_ s: [UInt32]) -> [UInt32] {
        guard s.contains(0x26) else { return s }
        var out: [UInt32] = []
        var i = 0
        while i < s.count {
            guard s[i] == 0x26, i + 1 < s.count else {
                out.append(s[i])
                i += 1
                continue
            }
            if s[i + 1] == 0x23 {  // &#…
                var j = i + 2
                let hex = j < s.count && (s[j] == 0x78 || s[j] == 0x58)
                if hex { j += 1 }
                let digitsStart = j
                while j < s.count, hex ? isHexDigit(s[j]) : isASCIIDigit(s[j]) { j += 1 }
                guard j > digitsStart else {
                    out.append(s[i])
                    i += 1
                    continue
                }
                let digits = String(decoding: s[digitsStart..<j].map { UInt8($0) }, as: UTF8.self)
                if j < s.count, s[j] == 0x3B { j += 1 }
                out += numericReference(digits, hex: hex)
                i = j
                continue
            }
            // Named: [^\t\n\f <&#;]{1,32};?
            var j = i + 1
            while j < s.count, j - i - 1 < 32, ![0x09, 0x0A, 0x0C, 0x20, 0x3C, 0x26, 0x23, 0x3B].contains(s[j]) {
                j += 1
            }
            guard j > i + 1 else {
                out.append(s[i])
                i += 1
                continue
            }
            let name = Array(s[(i + 1)..<j])
            let hasSemicolon = j < s.count && s[j] == 0x3B
            let end = j + (hasSemicolon ? 1 : 0)
            i = end
            if hasSemicolon, let value = namedEntity(text(name)) {
                out += value
                continue
            }
            if !hasSemicolon, let value = legacyEntity(text(name)) {
                out += value
                continue
            }
            // The longest legacy name that prefixes the reference; the rest stays as text.
            let reference = name + (hasSemicolon ? [0x3B] : [])
            var replaced = false
            var x = reference.count - 1
            while x > 1 {
                if let value = legacyEntity(text(Array(reference.prefix(x)))) {
                    out += value
                    out += reference.dropFirst(x)
                    replaced = true
                    break
                }
                x -= 1
            }
            if !replaced {
                out.append(0x26)
                out += reference
            }
        }
        return out
    }

    private static func text(_ scalars: [UInt32]) -> String {
        String(String.UnicodeScalarView(scalars.compactMap(Unicode.Scalar.init)))
    }

    /// A numeric character reference as Python resolves it.
    private static func numericReference(_ digits: String, hex: Bool) -> [UInt32] {
        let significant = digits.drop { $0 == "0" }
        guard significant.count <= (hex ? 6 : 8),
            let n = UInt64(significant.isEmpty ? "0" : String(significant), radix: hex ? 16 : 10)
        else { return [0xFFFD] }
        if n == 0 { return [0xFFFD] }
        if n == 0x0D { return [0x0D] }
        if (0x80...0x9F).contains(n) { return [windows1252[Int(n - 0x80)]] }
        if (0xD800...0xDFFF).contains(n) || n > 0x10FFFF { return [0xFFFD] }
        if (0x01...0x08).contains(n) || (0x0E...0x1F).contains(n) || (0x7F...0x9F).contains(n)
            || (0xFDD0...0xFDEF).contains(n) || n == 0x0B || (n & 0xFFFE) == 0xFFFE
        {
            return []
        }
        return [UInt32(n)]
    }

    /// HTML5 names with a semicolon (the subset this implementation knows).
    private static func namedEntity(_ name: String) -> [UInt32]? {
        namedEntities[name].map { $0.unicodeScalars.map(\.value) }
    }

    /// Names that HTML5 also accepts without a semicolon.
    private static func legacyEntity(_ name: String) -> [UInt32]? {
        legacyNames.contains(name) ? namedEntity(name) : nil
    }

    /// ftfy's upper-cased variants of lower-case names (`&EACUTE;` → "É").
    private static func uppercaseEntity(_ name: String) -> [UInt32]? {
        guard name == name.uppercased(), namedEntities[name] == nil,
            let value = namedEntities[name.lowercased()]
        else { return nil }
        return value.uppercased().unicodeScalars.map(\.value)
    }

    private static let namedEntities: [String: String] = [
        "amp": "&", "lt": "<", "gt": ">", "quot": "\"", "apos": "'", "nbsp": "\u{A0}", "copy": "©", "reg": "®",
        "eacute": "é", "Eacute": "É", "egrave": "è", "agrave": "à", "ccedil": "ç", "uuml": "ü", "ouml": "ö",
        "auml": "ä", "szlig": "ß", "ntilde": "ñ", "hellip": "…", "mdash": "—", "ndash": "–", "lsquo": "‘",
        "rsquo": "’", "ldquo": "“", "rdquo": "”", "trade": "™", "deg": "°", "euro": "€", "times": "×",
        "divide": "÷", "middot": "·", "laquo": "«", "raquo": "»", "bull": "•", "AMP": "&", "LT": "<",
        "GT": ">", "QUOT": "\"", "COPY": "©", "REG": "®",
    ]

    private static let legacyNames: Set<String> = [
        "amp", "lt", "gt", "quot", "nbsp", "copy", "reg", "eacute", "Eacute", "egrave", "agrave", "ccedil",
        "uuml", "ouml", "auml", "szlig", "ntilde", "deg", "times", "divide", "middot", "laquo", "raquo", "AMP",
        "LT", "GT", "QUOT", "COPY", "REG",
    ]

    /// Windows-1252 for 0x80…0x9F, undefined bytes kept as the C1 control (Python's and ftfy's "sloppy" table).
    static let windows1252: [UInt32] = [
        0x20AC, 0x81, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8D,
        0x017D, 0x8F, 0x90, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161,
        0x203A, 0x0153, 0x9D, 0x017E, 0x0178,
    ]

    private static let ligatures: [UInt32: [UInt32]] = [
        0x0132: [0x49, 0x4A], 0x0133: [0x69, 0x6A], 0x0149: [0x02BC, 0x6E], 0x01F1: [0x44, 0x5A],
        0x01F2: [0x44, 0x7A], 0x01F3: [0x64, 0x7A], 0x01C4: [0x44, 0x017D], 0x01C5: [0x44, 0x017E],
        0x01C6: [0x64, 0x017E], 0x01C7: [0x4C, 0x4A], 0x01C8: [0x4C, 0x6A], 0x01C9: [0x6C, 0x6A],
        0x01CA: [0x4E, 0x4A], 0x01CB: [0x4E, 0x6A], 0x01CC: [0x6E, 0x6A], 0xFB00: [0x66, 0x66],
        0xFB01: [0x66, 0x69], 0xFB02: [0x66, 0x6C], 0xFB03: [0x66, 0x66, 0x69], 0xFB04: [0x66, 0x66, 0x6C],
        0xFB05: [0x017F, 0x74], 0xFB06: [0x73, 0x74],
    ]

    // MARK: Python string methods

    private static func stripPythonWhitespace(_ s: [UInt32]) -> [UInt32] {
        var start = 0
        var end = s.count
        while start < end, isPythonWhitespace(s[start]) { start += 1 }
        while end > start, isPythonWhitespace(s[end - 1]) { end -= 1 }
        return Array(s[start..<end])
    }

    /// The Unicode version of Python 3.11's `unicodedata`, which `str.lower()` and ftfy's NFC follow: case
    /// pairs added later (e.g. U+1C89 in 16.0, U+A7CE in 17.0) are left alone. (Later Pythons move it.)
    static let pythonUnicodeVersion = (major: 14, minor: 0)

    /// `str.lower()`: the full lowercase mapping, with Final_Sigma for Σ.
    static func pythonLower(_ s: [UInt32]) -> [UInt32] {
        var out: [UInt32] = []
        out.reserveCapacity(s.count)
        for (i, v) in s.enumerated() {
            if v < 0x80 {
                out.append((0x41...0x5A).contains(v) ? v | 0x20 : v)
                continue
            }
            guard let scalar = Unicode.Scalar(v) else {
                out.append(v)
                continue
            }
            if v == 0x03A3 {
                out.append(isFinalSigma(s, i) ? 0x03C2 : 0x03C3)
                continue
            }
            guard let age = scalar.properties.age,
                age.major < pythonUnicodeVersion.major
                    || (age.major == pythonUnicodeVersion.major && age.minor <= pythonUnicodeVersion.minor)
            else {
                out.append(v)
                continue
            }
            out += scalar.properties.lowercaseMapping.unicodeScalars.map(\.value)
        }
        return out
    }

    /// Final_Sigma: a cased letter before (skipping case-ignorables) and none after.
    private static func isFinalSigma(_ s: [UInt32], _ i: Int) -> Bool {
        func properties(_ v: UInt32) -> Unicode.Scalar.Properties? { Unicode.Scalar(v)?.properties }
        var j = i - 1
        while j >= 0, properties(s[j])?.isCaseIgnorable == true { j -= 1 }
        guard j >= 0, properties(s[j])?.isCased == true else { return false }
        var k = i + 1
        while k < s.count, properties(s[k])?.isCaseIgnorable == true { k += 1 }
        return !(k < s.count && properties(s[k])?.isCased == true)
    }

    private static func isASCIIDigit(_ v: UInt32) -> Bool { (0x30...0x39).contains(v) }
    private static func isHexDigit(_ v: UInt32) -> Bool {
        isASCIIDigit(v) || (0x41...0x46).contains(v) || (0x61...0x66).contains(v)
    }
    private static func isASCIILetter(_ v: UInt32) -> Bool { (0x41...0x5A).contains(v) || (0x61...0x7A).contains(v) }
    private static func isASCIIAlphanumeric(_ v: UInt32) -> Bool { isASCIIDigit(v) || isASCIILetter(v) }
    private static func isDecimalDigit(_ v: UInt32) -> Bool {
        isASCIIDigit(v) || Unicode.Scalar(v)?.properties.generalCategory == .decimalNumber
    }
}
