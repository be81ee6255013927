// A bounded cache from a word's bytes to its token ids, so that frequent words skip the merge loop.
// Like the Rust crate's (10 000 words, words under 256 bytes), but cleared when full rather than frozen.

import Synchronization

/// Word → ids, open addressing over one byte arena. Not thread-safe: `SharedWordCache` lends it out.
struct WordCache {
    static let capacity = 10_000
    static let maxWordLength = 256

    private var slots: [Int32]
    private var mask: Int
    private var hashes: [UInt64] = []
    private var keyStarts: [Int32] = []
    private var keyBytes: [UInt8] = []
    private var valueStarts: [Int32] = []
    private var values: [Int32] = []

    init() {
        let tableSize = 1 << 15  // > 3 × capacity: short probe sequences
        slots = [Int32](repeating: -1, count: tableSize)
        mask = tableSize - 1
        keyStarts = [0]
        valueStarts = [0]
    }

    var count: Int { hashes.count }

    @inline(__always)
    static func hash(_ p: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in p { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        return h ^ (h >> 29)
    }

    /// Appends the cached ids of `word` to `out`; false if the word is not cached.
    @inline(__always)
    func lookup(_ word: UnsafeBufferPointer<UInt8>, hash h: UInt64, into out: inout [Int]) -> Bool {
        var index = Int(truncatingIfNeeded: h) & mask
        while true {
            let e = Int(slots[index])
            if e < 0 { return false }
            if hashes[e] == h {
                let start = Int(keyStarts[e])
                let length = Int(keyStarts[e + 1]) - start
                if length == word.count
                    && keyBytes.withUnsafeBufferPointer({ k in
                        (0..<length).allSatisfy { k[start + $0] == word[$0] }
                    })
                {
                    for i in Int(valueStarts[e])..<Int(valueStarts[e + 1]) { out.append(Int(values[i])) }
                    return true
                }
            }
            index = (index + 1) & mask
        }
    }

    /// Remembers the ids of `word` (which must not be cached yet).
    mutating func insert(_ word: UnsafeBufferPointer<UInt8>, hash h: UInt64, ids: ArraySlice<Int>) {
        guard word.count < Self.maxWordLength else { return }
        if count >= Self.capacity { self = WordCache() }
        let e = Int32(hashes.count)
        hashes.append(h)
        keyBytes.append(contentsOf: word)
        keyStarts.append(Int32(keyBytes.count))
        for id in ids { values.append(Int32(truncatingIfNeeded: id)) }
        valueStarts.append(Int32(values.count))
        var index = Int(truncatingIfNeeded: h) & mask
        while slots[index] >= 0 { index = (index + 1) & mask }
        slots[index] = e
    }
}

/// One cache shared by the threads that use a tokenizer: an encode borrows it whole (or, when another
/// thread holds it, works with a fresh one) and hands it back at the end, so the lock is taken twice per
/// call rather than per word.
final class SharedWordCache: Sendable {
    private let stored = Mutex<WordCache?>(WordCache())

    func borrow() -> WordCache {
        stored.withLock { cache in
            let taken = cache
            cache = nil
            return taken
        } ?? WordCache()
    }

    func giveBack(_ cache: consuming WordCache) {
        stored.withLock { current in
            if current == nil { current = cache }
        }
    }
}
