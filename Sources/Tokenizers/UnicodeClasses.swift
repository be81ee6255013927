// The character classes the pre-tokenizer patterns use: `\p{L}`, `\p{N}`, `\s`, and everything else.
//
// Swift's tables follow Unicode 17. The Oniguruma engine inside Hugging Face `tokenizers` follows Unicode 16
// (checked over every scalar: the two disagree exactly on the 4657 letters and numbers new in 17.0), so for
// that reference, scalars assigned after 16.0 count as "other". Python's `regex` module (OpenAI CLIP's
// tokenizer) follows Unicode 17. `\s` is the White_Space property in both (25 scalars).

/// The class of one scalar as the GPT-2 and CLIP pre-tokenizer patterns see it.
enum CharacterClass: UInt8 {
    case other = 0
    case letter = 1
    case number = 2
    case whitespace = 3
}

/// The Unicode version a pattern engine classifies characters by.
public enum UnicodeTables: Sendable {
    /// Hugging Face `tokenizers` (Oniguruma): Unicode 16.0.
    case huggingFace
    /// Python's `regex` module, as OpenAI's CLIP tokenizer uses it: Unicode 17.0.
    case pythonRegex

    var maximumAge: (major: Int, minor: Int) {
        switch self {
        case .huggingFace: (16, 0)
        case .pythonRegex: (17, 0)
        }
    }
}

/// Character classes for one Unicode version, with a table for the Basic Multilingual Plane.
struct CharacterClassifier: Sendable {
    let bmp: [UInt8]
    let maximumAge: (major: Int, minor: Int)

    static let huggingFace = CharacterClassifier(.huggingFace)
    static let pythonRegex = CharacterClassifier(.pythonRegex)

    static func forTables(_ tables: UnicodeTables) -> CharacterClassifier {
        switch tables {
        case .huggingFace: huggingFace
        case .pythonRegex: pythonRegex
        }
    }

    private init(_ tables: UnicodeTables) {
        maximumAge = tables.maximumAge
        var table = [UInt8](repeating: 0, count: 0x10000)
        for v in 0..<0x10000 {
            table[v] = Self.computeClass(UInt32(v), maximumAge: tables.maximumAge).rawValue
        }
        bmp = table
    }

    func classify(_ v: UInt32) -> CharacterClass {
        if v < 0x10000 { return CharacterClass(rawValue: bmp[Int(v)])! }
        return Self.computeClass(v, maximumAge: maximumAge)
    }

    static func computeClass(_ v: UInt32, maximumAge: (major: Int, minor: Int)) -> CharacterClass {
        guard let scalar = Unicode.Scalar(v) else { return .other }
        let properties = scalar.properties
        if properties.isWhitespace { return .whitespace }
        guard let age = properties.age,
            age.major < maximumAge.major || (age.major == maximumAge.major && age.minor <= maximumAge.minor)
        else { return .other }
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
        case .decimalNumber, .letterNumber, .otherNumber: return .number
        default: return .other
        }
    }
}

/// Unicode White_Space, which Rust's `char::is_whitespace` and `\s` in Rust's `regex` test.
func isUnicodeWhitespace(_ v: UInt32) -> Bool {
    switch v {
    case 0x09...0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000: true
    default: false
    }
}

/// Python's `str.isspace()`: White_Space plus the separators U+001C…U+001F.
func isPythonWhitespace(_ v: UInt32) -> Bool {
    isUnicodeWhitespace(v) || (0x1C...0x1F).contains(v)
}

/// `\w` in Rust's `regex` crate: Alphabetic, marks, decimal digits, connector punctuation, Join_Control.
func isRegexWordCharacter(_ v: UInt32) -> Bool {
    if v < 0x80 {
        let b = UInt8(v)
        return (0x30...0x39).contains(b) || (0x41...0x5A).contains(b) || (0x61...0x7A).contains(b) || b == 0x5F
    }
    guard let scalar = Unicode.Scalar(v) else { return false }
    let p = scalar.properties
    if p.isAlphabetic || p.isJoinControl { return true }
    switch p.generalCategory {
    case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
    default: return false
    }
}
