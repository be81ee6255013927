// Added tokens (`added_tokens` in tokenizer.json; special tokens of tokenizer_config.json): cut out of the
// text before normalization (or, for `normalized: true` tokens, out of the normalized text), matched
// leftmost-longest as the crate's Aho-Corasick automaton does, honouring `lstrip`, `rstrip` and
// `single_word`. They never go through the BPE model.

/// One added token and its flags.
public struct AddedToken: Sendable, Equatable {
    /// The token's text.
    public var content: String
    /// Its id.
    public var id: Int
    /// Special tokens are skipped by `decode(_:skipSpecialTokens: true)`.
    public var special: Bool
    /// Whitespace before the token belongs to it.
    public var lstrip: Bool
    /// Whitespace after the token belongs to it.
    public var rstrip: Bool
    /// Matches only where no word character touches it.
    public var singleWord: Bool
    /// Matched in the normalized text rather than the input (defaults to `!special`).
    public var normalized: Bool

    /// An added token with the flags of tokenizer.json's `added_tokens`.
    public init(
        content: String, id: Int, special: Bool, lstrip: Bool = false, rstrip: Bool = false,
        singleWord: Bool = false, normalized: Bool? = nil
    ) {
        self.content = content
        self.id = id
        self.special = special
        self.lstrip = lstrip
        self.rstrip = rstrip
        self.singleWord = singleWord
        self.normalized = normalized ?? !special
    }

    public static func == (a: AddedToken, b: AddedToken) -> Bool {
        a.content.utf8.elementsEqual(b.content.utf8) && a.id == b.id && a.special == b.special && a.lstrip == b.lstrip
            && a.rstrip == b.rstrip && a.singleWord == b.singleWord && a.normalized == b.normalized
    }
}

/// A set of byte patterns found leftmost-longest.
struct TokenMatcher: Sendable {
    private struct Node: Sendable {
        var children: [UInt8: Int32] = [:]
        var token: Int32 = -1
    }
    private var nodes = [Node()]
    private var firstBytes = [Bool](repeating: false, count: 256)
    var isEmpty: Bool { nodes.count == 1 }

    mutating func insert(_ pattern: [UInt8], token: Int) {
        guard !pattern.isEmpty else { return }
        firstBytes[Int(pattern[0])] = true
        var node = 0
        for b in pattern {
            if let child = nodes[node].children[b] {
                node = Int(child)
            } else {
                nodes.append(Node())
                nodes[node].children[b] = Int32(nodes.count - 1)
                node = nodes.count - 1
            }
        }
        nodes[node].token = Int32(token)
    }

    /// The longest pattern starting at `i`: (end, token index).
    func longestMatch(_ p: UnsafeBufferPointer<UInt8>, at i: Int) -> (end: Int, token: Int)? {
        guard firstBytes[Int(p[i])] else { return nil }
        var node = 0
        var best: (Int, Int)?
        var k = i
        while k < p.count, let child = nodes[node].children[p[k]] {
            node = Int(child)
            k += 1
            if nodes[node].token >= 0 { best = (k, Int(nodes[node].token)) }
        }
        return best
    }
}

/// A stretch of text or an added token, as the added vocabulary splits the input.
enum Segment {
    case text(Range<Int>)
    case token(Int)
}

/// The added tokens of a tokenizer.
struct AddedVocabulary: Sendable {
    private(set) var tokens: [AddedToken] = []
    private var raw = TokenMatcher()
    private var normalizedMatcher = TokenMatcher()
    /// Added-token id → what decoding shows (the normalized form for normalized tokens, as the crate does).
    private var decodedText: [Int: [UInt8]] = [:]
    private(set) var specialIDs: Set<Int> = []
    private var idsByContent: [TokenBytes: Int] = [:]

    init() {}

    init(_ tokens: [AddedToken], normalizer: Normalizer) {
        for token in tokens { add(token, normalizer: normalizer) }
    }

    mutating func add(_ token: AddedToken, normalizer: Normalizer) {
        let content = Array(token.content.utf8)
        guard !content.isEmpty else { return }
        if let i = tokens.firstIndex(where: { $0.id == token.id }) { tokens[i] = token } else { tokens.append(token) }
        idsByContent[TokenBytes(content)] = token.id
        if token.special { specialIDs.insert(token.id) }
        rebuild(normalizer: normalizer)
    }

    private mutating func rebuild(normalizer: Normalizer) {
        raw = TokenMatcher()
        normalizedMatcher = TokenMatcher()
        decodedText = [:]
        for (index, token) in tokens.enumerated() {
            let content = Array(token.content.utf8)
            if token.normalized {
                let form = normalizer.isIdentity ? content : normalizer(content)
                normalizedMatcher.insert(form, token: index)
                decodedText[token.id] = form
            } else {
                raw.insert(content, token: index)
                decodedText[token.id] = content
            }
        }
    }

    var isEmpty: Bool { tokens.isEmpty }
    var hasNormalizedTokens: Bool { !normalizedMatcher.isEmpty }

    /// The id of an added token given by its content.
    func id(_ content: TokenBytes) -> Int? { idsByContent[content] }

    /// What decoding shows for an added token id.
    func decoded(_ id: Int) -> [UInt8]? { decodedText[id] }

    /// Splits text on the tokens that match before (`normalized == false`) or after normalization. Without
    /// `includingSpecial` a special token's match is left in the text (the crate's `encode_special_tokens`:
    /// the automaton still resumes after it, so it hides any token that overlaps it).
    func split(_ p: UnsafeBufferPointer<UInt8>, normalized: Bool, includingSpecial: Bool = true) -> [Segment] {
        let matcher = normalized ? normalizedMatcher : raw
        if matcher.isEmpty { return [.text(0..<p.count)] }
        var segments: [Segment] = []
        var startOffset = 0
        var i = 0
        while i < p.count {
            guard let match = matcher.longestMatch(p, at: i) else {
                i += 1
                continue
            }
            let token = tokens[match.token]
            var start = i
            var stop = match.end
            i = match.end  // the automaton resumes after a match even when it is discarded
            if !includingSpecial && token.special { continue }
            if token.singleWord {
                let startSpace = start == 0 || !Self.endsWithWordCharacter(p, before: start)
                let stopSpace = stop == p.count || !Self.startsWithWordCharacter(p, at: stop)
                if !startSpace || !stopSpace { continue }
            }
            if token.lstrip {
                start = max(Self.whitespaceStart(p, before: start), startOffset)
            }
            if token.rstrip {
                stop = Self.whitespaceEnd(p, from: stop)
                i = max(i, stop)
            }
            if startOffset < start { segments.append(.text(startOffset..<start)) }
            segments.append(.token(token.id))
            startOffset = stop
        }
        if startOffset != p.count { segments.append(.text(startOffset..<p.count)) }
        return segments
    }

    private static func lastScalar(_ p: UnsafeBufferPointer<UInt8>, before end: Int) -> (UInt32, Int) {
        var k = end - 1
        while k > 0, p[k] & 0xC0 == 0x80 { k -= 1 }
        return (decodeScalar(p, at: k).0, k)
    }

    private static func endsWithWordCharacter(_ p: UnsafeBufferPointer<UInt8>, before end: Int) -> Bool {
        end > 0 && isRegexWordCharacter(lastScalar(p, before: end).0)
    }

    private static func startsWithWordCharacter(_ p: UnsafeBufferPointer<UInt8>, at start: Int) -> Bool {
        start < p.count && isRegexWordCharacter(decodeScalar(p, at: start).0)
    }

    /// Where the run of whitespace that ends at `end` begins (`\s*$`).
    private static func whitespaceStart(_ p: UnsafeBufferPointer<UInt8>, before end: Int) -> Int {
        var k = end
        while k > 0 {
            let (v, start) = lastScalar(p, before: k)
            if !isUnicodeWhitespace(v) { break }
            k = start
        }
        return k
    }

    /// Where the run of whitespace that starts at `start` ends (`^\s*`).
    private static func whitespaceEnd(_ p: UnsafeBufferPointer<UInt8>, from start: Int) -> Int {
        var k = start
        while k < p.count {
            let (v, n) = decodeScalar(p, at: k)
            if !isUnicodeWhitespace(v) { break }
            k += n
        }
        return k
    }
}
