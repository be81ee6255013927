// The BPE model: one word in, token ids out. Follows the Rust `tokenizers` crate (`models/bpe`):
// symbols start as characters (bytes, for byte-level vocabularies), each looked up with the optional
// continuing-subword prefix and end-of-word suffix; a character missing from the vocabulary becomes
// `<0xNN>` byte tokens (byte fallback) or the unknown token (fused when `fuse_unk`), or is dropped; then
// the pair with the lowest merge rank is merged, leftmost first, until no pair has a merge. Merges are
// keyed by the two ids, so the token text is never compared as a Swift `String`.

/// A pair of ids → the merge's rank and the id of the merged token: open addressing over raw buffers,
/// built once. Invariant: never mutated after init, so sharing across threads is safe.
final class MergeTable: @unchecked Sendable {
    private static let empty = UInt64.max  // no pair of non-negative ids has this key
    private let keys: UnsafeMutableBufferPointer<UInt64>
    private let values: UnsafeMutableBufferPointer<UInt64>
    private let shift: UInt64
    private let mask: Int
    let count: Int

    @inline(__always)
    static func key(_ a: Int32, _ b: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b))
    }

    /// `merges`: (a, b, merged id) in rank order; a later entry for the same pair replaces an earlier one, as in
    /// the Rust crate's hash map.
    init(_ merges: [(Int32, Int32, Int32)]) {
        var bits = 4
        while (1 << bits) < 2 * max(merges.count, 8) { bits += 1 }
        let size = 1 << bits
        keys = .allocate(capacity: size)
        keys.initialize(repeating: Self.empty)
        values = .allocate(capacity: size)
        values.initialize(repeating: 0)
        shift = UInt64(64 - bits)
        mask = size - 1
        var distinct = 0
        for (rank, (a, b, id)) in merges.enumerated() {
            let k = Self.key(a, b)
            var i = Int(truncatingIfNeeded: (k &* 0x9E37_79B9_7F4A_7C15) >> shift)
            while keys[i] != Self.empty && keys[i] != k { i = (i + 1) & mask }
            if keys[i] == Self.empty { distinct += 1 }
            keys[i] = k
            values[i] = UInt64(rank) << 32 | UInt64(UInt32(bitPattern: id))
        }
        count = distinct
    }

    deinit {
        keys.deallocate()
        values.deallocate()
    }

    /// The merge of `a` then `b`: (rank, merged id).
    @inline(__always)
    func merge(_ a: Int32, _ b: Int32) -> (rank: UInt32, id: Int32)? {
        let k = Self.key(a, b)
        var i = Int(truncatingIfNeeded: (k &* 0x9E37_79B9_7F4A_7C15) >> shift)
        while true {
            let found = keys[i]
            if found == k {
                let v = values[i]
                return (UInt32(truncatingIfNeeded: v >> 32), Int32(truncatingIfNeeded: v))
            }
            if found == Self.empty { return nil }
            i = (i + 1) & mask
        }
    }
}

/// The BPE model of a tokenizer.json (`"type": "BPE"`) or of vocab.json + merges.txt; immutable, shared.
public final class BytePairEncoding: Sendable {
    /// The model's tokens.
    public let vocabulary: Vocabulary
    let merges: MergeTable
    let unknownID: Int32?
    let unknownToken: String?
    let fuseUnknown: Bool
    let byteFallback: Bool
    let ignoreMerges: Bool
    let continuingSubwordPrefix: [UInt8]?
    let endOfWordSuffix: [UInt8]?
    /// Words arrive as raw bytes; each byte is one symbol, written in GPT-2's byte alphabet.
    let byteLevel: Bool

    /// Symbol ids by kind (0: first, 1: inner, 2: only, 3: last) — byte-level: index kind × 256 + byte.
    private let byteSymbols: [Int32]
    /// Symbol ids by kind for scalar symbols: a table for the Basic Multilingual Plane (kind × 65536 + scalar),
    /// dictionaries above it.
    private let bmpSymbols: [Int32]
    private let scalarSymbols: [[UInt32: Int32]]
    /// `<0xNN>` ids, -1 where missing.
    private let byteFallbackIDs: [Int32]

    let cache = SharedWordCache()

    /// The settings of a BPE model besides its vocabulary and merges.
    public struct Options: Sendable {
        /// `unk_token`: stands for characters outside the vocabulary.
        public var unknownToken: String?
        /// `fuse_unk`: consecutive unknown characters become one unknown token.
        public var fuseUnknown = false
        /// `byte_fallback`: unknown characters become `<0xNN>` byte tokens.
        public var byteFallback = false
        /// `ignore_merges`: a word that is a token is emitted whole.
        public var ignoreMerges = false
        /// `continuing_subword_prefix`, put before every symbol but the first.
        public var continuingSubwordPrefix: String?
        /// `end_of_word_suffix` (CLIP's `</w>`), put after the last symbol.
        public var endOfWordSuffix: String?
        /// The defaults of the Rust crate.
        public init() {}
    }

    /// Builds the model; merges are pairs of token texts, ranked by position.
    init(
        vocabulary: Vocabulary, merges: [(TokenBytes, TokenBytes)], options: Options, byteLevel: Bool, path: String
    ) throws(TokenizerError) {
        self.vocabulary = vocabulary
        self.byteLevel = byteLevel
        unknownToken = options.unknownToken
        fuseUnknown = options.fuseUnknown
        byteFallback = options.byteFallback
        ignoreMerges = options.ignoreMerges
        let prefix = options.continuingSubwordPrefix.flatMap { $0.isEmpty ? nil : Array($0.utf8) }
        let suffix = options.endOfWordSuffix.flatMap { $0.isEmpty ? nil : Array($0.utf8) }
        continuingSubwordPrefix = prefix
        endOfWordSuffix = suffix
        if let unk = options.unknownToken {
            // The crate fails only when an unknown character meets an unknown token that is not in the
            // vocabulary; treating it as absent gives the same ids for every input that does not fail.
            unknownID = vocabulary.id(TokenBytes(unk)).map { Int32($0) }
        } else {
            unknownID = nil
        }

        var ranked: [(Int32, Int32, Int32)] = []
        ranked.reserveCapacity(merges.count)
        let prefixLength = prefix?.count ?? 0
        for (a, b) in merges {
            guard let aID = vocabulary.id(a) else { throw .mergeTokenNotInVocabulary(path: path, token: a.text) }
            guard let bID = vocabulary.id(b) else { throw .mergeTokenNotInVocabulary(path: path, token: b.text) }
            let merged = TokenBytes(a.bytes + b.bytes.dropFirst(min(prefixLength, b.bytes.count)))
            guard let newID = vocabulary.id(merged) else {
                throw .mergeTokenNotInVocabulary(path: path, token: merged.text)
            }
            ranked.append((Int32(aID), Int32(bID), Int32(newID)))
        }
        self.merges = MergeTable(ranked)

        func symbol(_ core: [UInt8], kind: Int) -> [UInt8] {
            let first = kind == 0 || kind == 2
            let last = kind >= 2
            return (first ? [] : prefix ?? []) + core + (last ? suffix ?? [] : [])
        }
        var bytes = [Int32](repeating: -1, count: 4 * 256)
        var scalars = [[UInt32: Int32]](repeating: [:], count: 4)
        if byteLevel {
            for kind in 0..<4 {
                for b in 0..<256 {
                    if let id = vocabulary.id(TokenBytes(symbol(ByteLevelAlphabet.utf8ForByte[b], kind: kind))) {
                        bytes[kind * 256 + b] = Int32(id)
                    }
                }
            }
        } else {
            for (token, id) in vocabulary.entries {
                for kind in 0..<4 {
                    let first = kind == 0 || kind == 2
                    let last = kind >= 2
                    var core = token.bytes[...]
                    if !first, let prefix {
                        guard core.starts(with: prefix) else { continue }
                        core = core.dropFirst(prefix.count)
                    }
                    if last, let suffix {
                        guard core.count >= suffix.count, core.suffix(suffix.count).elementsEqual(suffix) else {
                            continue
                        }
                        core = core.dropLast(suffix.count)
                    }
                    guard !core.isEmpty, utf8Length(core.first!) == core.count else { continue }
                    let (v, _) = decodeScalar(Array(core), at: 0)
                    scalars[kind][v] = id
                }
            }
        }
        byteSymbols = bytes
        var bmp = [Int32]()
        if !byteLevel {
            bmp = [Int32](repeating: -1, count: 4 * 65536)
            for kind in 0..<4 {
                for (v, id) in scalars[kind] where v < 0x10000 { bmp[kind * 65536 + Int(v)] = id }
                scalars[kind] = scalars[kind].filter { $0.key >= 0x10000 }
            }
        }
        bmpSymbols = bmp
        scalarSymbols = scalars
        var fallback = [Int32](repeating: -1, count: 256)
        if options.byteFallback {
            let hex = Array("0123456789ABCDEF".utf8)
            for b in 0..<256 {
                let name: [UInt8] = Array("<0x".utf8) + [hex[b >> 4], hex[b & 15], UInt8(ascii: ">")]
                if let id = vocabulary.id(TokenBytes(name)) { fallback[b] = Int32(id) }
            }
        }
        byteFallbackIDs = fallback
    }

    // MARK: Tokenizing

    /// Appends the ids of one word (raw bytes) to `out`, using and filling `cache`.
    @inline(__always)
    func tokenize(_ word: UnsafeBufferPointer<UInt8>, into out: inout [Int], cache: inout WordCache) {
        if word.isEmpty { return }
        if ignoreMerges, let id = vocabulary.id(modelText(word)) {
            out.append(id)
            return
        }
        let h = WordCache.hash(word)
        if cache.lookup(word, hash: h, into: &out) { return }
        let start = out.count
        mergeWord(word, into: &out)
        cache.insert(word, hash: h, ids: out[start...])
    }

    /// The word as the vocabulary writes it (byte-level words in GPT-2's alphabet).
    func modelText(_ word: UnsafeBufferPointer<UInt8>) -> TokenBytes {
        byteLevel ? TokenBytes(ByteLevelAlphabet.encode(word)) : TokenBytes(word)
    }

    /// The symbols of a word before merging: (id, byte length).
    private func initialSymbols(_ word: UnsafeBufferPointer<UInt8>) -> [Int32] {
        var symbols: [Int32] = []
        symbols.reserveCapacity(word.count)
        var pendingUnknown = false
        let n = word.count
        var i = 0
        while i < n {
            let length = byteLevel ? 1 : utf8Length(word[i])
            let isFirst = i == 0
            let isLast = i + length >= n
            let kind = (isFirst ? 0 : 1) + (isLast ? 2 : 0)
            var id: Int32 = -1
            if byteLevel {
                id = byteSymbols[kind * 256 + Int(word[i])]
            } else {
                let (v, _) = decodeScalar(word, at: i)
                id = v < 0x10000 ? bmpSymbols[kind * 65536 + Int(v)] : scalarSymbols[kind][v] ?? -1
            }
            if id >= 0 {
                if pendingUnknown {
                    symbols.append(unknownID!)
                    pendingUnknown = false
                }
                symbols.append(id)
            } else {
                var handled = false
                if byteFallback {
                    let core = byteLevel ? ByteLevelAlphabet.utf8ForByte[Int(word[i])] : Array(word[i..<(i + length)])
                    let text =
                        (isFirst ? [] : continuingSubwordPrefix ?? []) + core + (isLast ? endOfWordSuffix ?? [] : [])
                    let ids = text.map { byteFallbackIDs[Int($0)] }
                    if !ids.contains(-1) {
                        symbols.append(contentsOf: ids)
                        handled = true
                    }
                }
                if !handled, let unknownID {
                    if pendingUnknown && !fuseUnknown { symbols.append(unknownID) }
                    pendingUnknown = true
                }
            }
            i += length
        }
        if pendingUnknown { symbols.append(unknownID!) }
        return symbols
    }

    /// Runs the merges over a word and appends the resulting ids.
    private func mergeWord(_ word: UnsafeBufferPointer<UInt8>, into out: inout [Int]) {
        var ids = initialSymbols(word)
        let n = ids.count
        if n <= 1 {
            if n == 1 { out.append(Int(ids[0])) }
            return
        }
        if n <= 48 {
            mergeByScanning(&ids)
            for id in ids { out.append(Int(id)) }
        } else {
            mergeWithHeap(ids, into: &out)
        }
    }

    /// Short words: keep the rank of each adjacent pair and merge the smallest (rank, position) each round.
    private func mergeByScanning(_ ids: inout [Int32]) {
        let none = UInt32.max
        var ranks = [UInt32](repeating: none, count: ids.count)
        var merged = [Int32](repeating: -1, count: ids.count)
        for i in 0..<(ids.count - 1) {
            if let m = merges.merge(ids[i], ids[i + 1]) {
                ranks[i] = m.rank
                merged[i] = m.id
            }
        }
        ranks[ids.count - 1] = none
        while ids.count > 1 {
            var best = none
            var at = -1
            for i in 0..<(ids.count - 1) where ranks[i] < best {
                best = ranks[i]
                at = i
            }
            if at < 0 { break }
            ids[at] = merged[at]
            ids.remove(at: at + 1)
            ranks.remove(at: at + 1)
            merged.remove(at: at + 1)
            if at + 1 < ids.count, let m = merges.merge(ids[at], ids[at + 1]) {
                ranks[at] = m.rank
                merged[at] = m.id
            } else {
                ranks[at] = none
            }
            if at > 0 {
                if let m = merges.merge(ids[at - 1], ids[at]) {
                    ranks[at - 1] = m.rank
                    merged[at - 1] = m.id
                } else {
                    ranks[at - 1] = none
                }
            }
        }
    }

    /// Long words: the crate's algorithm — a min-heap of (rank, position) over a linked list of symbols,
    /// with stale entries dropped when popped.
    private func mergeWithHeap(_ initial: [Int32], into out: inout [Int]) {
        let n = initial.count
        // Symbols: id, previous, next (-1: none); removed symbols get id -1.
        let ids = UnsafeMutableBufferPointer<Int32>.allocate(capacity: n)
        let prev = UnsafeMutableBufferPointer<Int32>.allocate(capacity: n)
        let next = UnsafeMutableBufferPointer<Int32>.allocate(capacity: n)
        // At most n - 1 initial entries and two per merge.
        var heap = MergeHeap(capacity: 3 * n)
        defer {
            ids.deallocate()
            prev.deallocate()
            next.deallocate()
            heap.deallocate()
        }
        for i in 0..<n {
            ids[i] = initial[i]
            prev[i] = Int32(i - 1)
            next[i] = i + 1 < n ? Int32(i + 1) : -1
        }
        for i in 0..<(n - 1) {
            if let m = merges.merge(ids[i], ids[i + 1]) { heap.push(rank: m.rank, position: UInt32(i), id: m.id) }
        }
        while let top = heap.pop() {
            let pos = Int(top.position)
            guard ids[pos] >= 0, next[pos] >= 0 else { continue }
            let right = Int(next[pos])
            guard let m = merges.merge(ids[pos], ids[right]), m.id == top.id else { continue }
            ids[pos] = top.id
            ids[right] = -1
            next[pos] = next[right]
            if next[right] >= 0 { prev[Int(next[right])] = Int32(pos) }
            if prev[pos] >= 0 {
                let p = Int(prev[pos])
                if let m = merges.merge(ids[p], ids[pos]) { heap.push(rank: m.rank, position: UInt32(p), id: m.id) }
            }
            if next[pos] >= 0, let m = merges.merge(ids[pos], ids[Int(next[pos])]) {
                heap.push(rank: m.rank, position: UInt32(pos), id: m.id)
            }
        }
        var i = 0
        while i >= 0 && i < n {
            out.append(Int(ids[i]))
            i = Int(next[i])
        }
    }
}

/// A binary min-heap of merge candidates ordered by (rank, position), over a fixed buffer.
struct MergeHeap {
    private let keys: UnsafeMutableBufferPointer<UInt64>
    private let ids: UnsafeMutableBufferPointer<Int32>
    private var count = 0

    init(capacity: Int) {
        keys = .allocate(capacity: max(capacity, 1))
        ids = .allocate(capacity: max(capacity, 1))
    }

    func deallocate() {
        keys.deallocate()
        ids.deallocate()
    }

    @inline(__always)
    mutating func push(rank: UInt32, position: UInt32, id: Int32) {
        let key = UInt64(rank) << 32 | UInt64(position)
        var i = count
        count += 1
        while i > 0 {
            let parent = (i - 1) >> 1
            if keys[parent] <= key { break }
            keys[i] = keys[parent]
            ids[i] = ids[parent]
            i = parent
        }
        keys[i] = key
        ids[i] = id
    }

    @inline(__always)
    mutating func pop() -> (position: UInt32, id: Int32)? {
        guard count > 0 else { return nil }
        let result = (UInt32(truncatingIfNeeded: keys[0]), ids[0])
        count -= 1
        let key = keys[count]
        let id = ids[count]
        var i = 0
        while true {
            var child = 2 * i + 1
            if child >= count { break }
            if child + 1 < count && keys[child + 1] < keys[child] { child += 1 }
            if key <= keys[child] { break }
            keys[i] = keys[child]
            ids[i] = ids[child]
            i = child
        }
        keys[i] = key
        ids[i] = id
        return result
    }
}
