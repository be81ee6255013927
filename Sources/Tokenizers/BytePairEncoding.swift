// The BPE model: one word in, token ids out. Follows the Rust `tokenizers` crate (`models/bpe`):
// symbols start as characters (bytes, for byte-level vocabularies), each looked up with the optional
// continuing-subword prefix and end-of-word suffix; a character missing from the vocabulary becomes
// `<0xNN>` byte tokens (byte fallback) or the unknown token (fused when `fuse_unk`), or is dropped; then
// the pair with the lowest merge rank is merged, leftmost first, until no pair has a merge. Merges are
// keyed by the two ids, so the token text is never compared as a Swift `String`.

/// A pair of ids → the merge's rank and the id of the merged token.
struct MergeTable: Sendable {
    private var table: [UInt64: UInt64] = [:]

    @inline(__always)
    static func key(_ a: Int32, _ b: Int32) -> UInt64 { UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b)) }

    /// The merge of `a` then `b`: (rank, merged id).
    @inline(__always)
    func merge(_ a: Int32, _ b: Int32) -> (rank: UInt32, id: Int32)? {
        guard let v = table[Self.key(a, b)] else { return nil }
        return (UInt32(truncatingIfNeeded: v >> 32), Int32(truncatingIfNeeded: v))
    }

    /// Later entries for the same pair replace earlier ones, as in the Rust crate's hash map.
    mutating func set(_ a: Int32, _ b: Int32, rank: Int, id: Int32) {
        table[Self.key(a, b)] = UInt64(rank) << 32 | UInt64(UInt32(bitPattern: id))
    }

    var count: Int { table.count }
}

/// The BPE model of a tokenizer.json (`"type": "BPE"`) or of vocab.json + merges.txt.
public struct BytePairEncoding: Sendable {
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
    /// Symbol ids by kind for scalar symbols.
    private let scalarSymbols: [[UInt32: Int32]]
    /// `<0xNN>` ids, -1 where missing.
    private let byteFallbackIDs: [Int32]

    let cache = SharedWordCache()

    /// The settings of a BPE model besides its vocabulary and merges.
    public struct Options: Sendable {
        public var unknownToken: String?
        public var fuseUnknown = false
        public var byteFallback = false
        public var ignoreMerges = false
        public var continuingSubwordPrefix: String?
        public var endOfWordSuffix: String?
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

        var table = MergeTable()
        let prefixLength = prefix?.count ?? 0
        for (rank, (a, b)) in merges.enumerated() {
            guard let aID = vocabulary.id(a) else { throw .mergeTokenNotInVocabulary(path: path, token: a.text) }
            guard let bID = vocabulary.id(b) else { throw .mergeTokenNotInVocabulary(path: path, token: b.text) }
            let merged = TokenBytes(a.bytes + b.bytes.dropFirst(min(prefixLength, b.bytes.count)))
            guard let newID = vocabulary.id(merged) else {
                throw .mergeTokenNotInVocabulary(path: path, token: merged.text)
            }
            table.set(Int32(aID), Int32(bID), rank: rank, id: Int32(newID))
        }
        self.merges = table

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
                        guard core.count >= suffix.count, core.suffix(suffix.count).elementsEqual(suffix) else { continue }
                        core = core.dropLast(suffix.count)
                    }
                    guard !core.isEmpty, utf8Length(core.first!) == core.count else { continue }
                    let (v, _) = decodeScalar(Array(core), at: 0)
                    scalars[kind][v] = id
                }
            }
        }
        byteSymbols = bytes
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
                id = scalarSymbols[kind][v] ?? -1
            }
            if id >= 0 {
                if pendingUnknown { symbols.append(unknownID!); pendingUnknown = false }
                symbols.append(id)
            } else {
                var handled = false
                if byteFallback {
                    let core = byteLevel ? ByteLevelAlphabet.utf8ForByte[Int(word[i])] : Array(word[i..<(i + length)])
                    let text = (isFirst ? [] : continuingSubwordPrefix ?? []) + core + (isLast ? endOfWordSuffix ?? [] : [])
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
        var ids = initial
        var prev = [Int32](repeating: -1, count: n)
        var next = [Int32](repeating: -1, count: n)
        var alive = [Bool](repeating: true, count: n)
        for i in 0..<n {
            prev[i] = Int32(i - 1)
            next[i] = i + 1 < n ? Int32(i + 1) : -1
        }
        var heap = MergeHeap()
        for i in 0..<(n - 1) {
            if let m = merges.merge(ids[i], ids[i + 1]) { heap.push(rank: m.rank, position: UInt32(i), id: m.id) }
        }
        while let top = heap.pop() {
            let pos = Int(top.position)
            guard alive[pos], next[pos] >= 0 else { continue }
            let right = Int(next[pos])
            guard let m = merges.merge(ids[pos], ids[right]), m.id == top.id else { continue }
            ids[pos] = top.id
            alive[right] = false
            next[pos] = next[right]
            if next[right] >= 0 { prev[Int(next[right])] = Int32(pos) }
            if prev[pos] >= 0 {
                let p = Int(prev[pos])
                if let m = merges.merge(ids[p], ids[pos]) { heap.push(rank: m.rank, position: UInt32(p), id: m.id) }
            }
            if next[pos] >= 0 {
                if let m = merges.merge(ids[pos], ids[Int(next[pos])]) {
                    heap.push(rank: m.rank, position: UInt32(pos), id: m.id)
                }
            }
        }
        for i in 0..<n where alive[i] { out.append(Int(ids[i])) }
    }
}

/// A binary min-heap of merge candidates ordered by (rank, position).
struct MergeHeap {
    private var keys: [UInt64] = []
    private var ids: [Int32] = []

    mutating func push(rank: UInt32, position: UInt32, id: Int32) {
        keys.append(UInt64(rank) << 32 | UInt64(position))
        ids.append(id)
        var i = keys.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            if keys[parent] <= keys[i] { break }
            keys.swapAt(parent, i)
            ids.swapAt(parent, i)
            i = parent
        }
    }

    mutating func pop() -> (position: UInt32, id: Int32)? {
        guard let top = keys.first else { return nil }
        let result = (UInt32(truncatingIfNeeded: top), ids[0])
        let lastKey = keys.removeLast()
        let lastID = ids.removeLast()
        if !keys.isEmpty {
            keys[0] = lastKey
            ids[0] = lastID
            var i = 0
            while true {
                let l = 2 * i + 1
                let r = l + 1
                var smallest = i
                if l < keys.count && keys[l] < keys[smallest] { smallest = l }
                if r < keys.count && keys[r] < keys[smallest] { smallest = r }
                if smallest == i { break }
                keys.swapAt(i, smallest)
                ids.swapAt(i, smallest)
                i = smallest
            }
        }
        return result
    }
}
