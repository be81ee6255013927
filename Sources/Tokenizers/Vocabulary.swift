// Token text ↔ id, keyed by the exact UTF-8 bytes of each token. Swift's `String` compares by canonical
// equivalence, so a `[String: Int]` would silently fold entries such as "à" (U+00E0) and "à" (U+0061 U+0300)
// into one; bytes never do.

/// The UTF-8 bytes of one token, hashed and compared byte for byte.
public struct TokenBytes: Hashable, Sendable, Comparable {
    /// The UTF-8 bytes.
    public var bytes: [UInt8]

    /// The token with these bytes.
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    /// The token with the UTF-8 of `text`.
    public init(_ text: String) { self.bytes = Array(text.utf8) }
    /// The token with a copy of these bytes.
    public init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = Array(bytes) }

    public func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }

    public static func == (a: TokenBytes, b: TokenBytes) -> Bool { a.bytes == b.bytes }
    public static func < (a: TokenBytes, b: TokenBytes) -> Bool { a.bytes.lexicographicallyPrecedes(b.bytes) }

    /// The token as text (the bytes are valid UTF-8 for every token read from a file).
    public var text: String { String(decoding: bytes, as: UTF8.self) }
}

/// A model vocabulary: token bytes → id and id → token bytes.
public struct Vocabulary: Sendable {
    private var ids: [TokenBytes: Int32]
    private var tokens: [TokenBytes?]

    /// Builds a vocabulary; a token listed twice keeps its last id, as the Rust `tokenizers` crate does.
    public init<S: Sequence>(_ entries: S) where S.Element == (TokenBytes, Int) {
        var ids: [TokenBytes: Int32] = [:]
        var maxID = -1
        for (token, id) in entries {
            ids[token] = Int32(truncatingIfNeeded: id)
            maxID = max(maxID, id)
        }
        var tokens = [TokenBytes?](repeating: nil, count: maxID + 1)
        for (token, id) in ids { tokens[Int(id)] = token }
        self.ids = ids
        self.tokens = tokens
    }

    /// The number of distinct tokens.
    public var count: Int { ids.count }

    /// One more than the largest id.
    public var idLimit: Int { tokens.count }

    /// The id of a token given by its exact bytes.
    public func id(_ token: TokenBytes) -> Int? { lookup(token).map(Int.init) }

    /// The id of a token given as text (compared byte for byte).
    public func id(_ token: String) -> Int? { id(TokenBytes(token)) }

    func lookup(_ token: TokenBytes) -> Int32? { ids[token] }

    /// The bytes of the token with this id.
    public func token(_ id: Int) -> TokenBytes? {
        id >= 0 && id < tokens.count ? tokens[id] : nil
    }

    /// Every (token, id) pair, in no particular order.
    public var entries: [TokenBytes: Int32] { ids }
}
