// GPT-2's pre-tokenizer pattern, matched by hand over UTF-8 with the exact semantics of the regex
//     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// as Oniguruma runs it inside Hugging Face `tokenizers`: alternatives are tried in order (the first that
// matches wins, not the longest), contractions are case-sensitive, ` ?` is a literal U+0020, and
// `\s+(?!\S)` backtracks one whitespace character when the run is followed by a non-space, which leaves the
// last space of a run to start the next word. Every character belongs to some alternative, so the matches
// tile the text.

/// ASCII classes without a table lookup.
@inline(__always)
func asciiClass(_ b: UInt8) -> CharacterClass {
    switch b {
    case 0x41...0x5A, 0x61...0x7A: .letter
    case 0x30...0x39: .number
    case 0x20, 0x09...0x0D: .whitespace
    default: .other
    }
}

/// The class and byte length of the scalar at `i`.
@inline(__always)
func classAt(_ p: UnsafeBufferPointer<UInt8>, _ i: Int, _ classifier: CharacterClassifier) -> (CharacterClass, Int) {
    let b = p[i]
    if b < 0x80 { return (asciiClass(b), 1) }
    let (v, n) = decodeScalar(p, at: i)
    return (classifier.classify(v), n)
}

/// The end of the run of scalars of class `c` that starts at `i`.
@inline(__always)
func runEnd(_ p: UnsafeBufferPointer<UInt8>, from i: Int, _ c: CharacterClass, _ classifier: CharacterClassifier) -> Int
{
    var k = i
    let n = p.count
    while k < n {
        let b = p[k]
        if b < 0x80 {
            if asciiClass(b) != c { break }
            k += 1
        } else {
            let (v, len) = decodeScalar(p, at: k)
            if classifier.classify(v) != c { break }
            k += len
        }
    }
    return k
}

/// GPT-2's pattern.
enum GPT2Pattern {
    static let source = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#

    /// Calls `body` with each match, in order; the matches cover all of `p`.
    @inline(__always)
    static func forEachMatch(
        _ p: UnsafeBufferPointer<UInt8>, _ classifier: CharacterClassifier, _ body: (Range<Int>) -> Void
    ) {
        var i = 0
        while i < p.count {
            let end = matchEnd(p, at: i, classifier)
            body(i..<end)
            i = end
        }
    }

    /// The end of the match that starts at `i`.
    @inline(__always)
    static func matchEnd(_ p: UnsafeBufferPointer<UInt8>, at i: Int, _ classifier: CharacterClassifier) -> Int {
        let n = p.count
        let b = p[i]
        if b == 0x27, i + 1 < n {  // 's 't 're 've 'm 'll 'd
            let c1 = p[i + 1]
            if c1 == 0x73 || c1 == 0x74 || c1 == 0x6D || c1 == 0x64 { return i + 2 }
            if i + 2 < n {
                let c2 = p[i + 2]
                if (c1 == 0x72 && c2 == 0x65) || (c1 == 0x76 && c2 == 0x65) || (c1 == 0x6C && c2 == 0x6C) {
                    return i + 3
                }
            }
        }
        // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: the class after the optional space decides.
        let j = (b == 0x20 && i + 1 < n) ? i + 1 : i
        let (c, length) = classAt(p, j, classifier)
        if c != .whitespace { return runEnd(p, from: j + length, c, classifier) }
        // `\s+(?!\S)` then `\s+`.
        var k = i
        var lastStart = i
        while k < n {
            let (ck, lk) = classAt(p, k, classifier)
            if ck != .whitespace { break }
            lastStart = k
            k += lk
        }
        if k == n { return n }
        return lastStart > i ? lastStart : k
    }
}
