// Pre-tokenizers: the second stage, which cuts normalized text into the words the BPE model sees.
// Mirrors `pre_tokenizer` in tokenizer.json. Pieces are byte ranges, materialized only where a step
// changes the text (a prefix space, Metaspace's `▁`).

/// How a Split pre-tokenizer treats the matches of its pattern (`SplitDelimiterBehavior`).
enum SplitBehavior: String, Sendable {
    case removed = "Removed"
    case isolated = "Isolated"
    case mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext"
    case contiguous = "Contiguous"
}

/// When Metaspace puts its replacement character in front of a piece.
enum PrependScheme: String, Sendable {
    case always, first, never
}

/// One pre-tokenization step from tokenizer.json.
enum PreTokenizerStep: Sendable {
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    case split(TextPattern, SplitBehavior, invert: Bool)
    case metaspace(replacement: [UInt8], prependScheme: PrependScheme, split: Bool)
}

/// A sequence of pre-tokenization steps (empty: each normalized piece is one word).
struct PreTokenizer: Sendable {
    var steps: [PreTokenizerStep]

    /// Whether the words reach the model in GPT-2's byte-level alphabet.
    var isByteLevel: Bool {
        if case .byteLevel = steps.last { true } else { false }
    }

    init(steps: [PreTokenizerStep]) { self.steps = steps }

    /// Reads a tokenizer.json `pre_tokenizer` (null, one pre-tokenizer, or a Sequence).
    init(json: JSONValue?, path: String) throws(TokenizerError) {
        steps = []
        if let json, !json.isNull { try append(json, path: path) }
        for (i, step) in steps.enumerated() where i < steps.count - 1 {
            if case .byteLevel = step {
                throw .unsupported(path: path, feature: "a pre-tokenizer after ByteLevel")
            }
        }
    }

    private mutating func append(_ json: JSONValue, path: String) throws(TokenizerError) {
        let type = json["type"]?.string ?? ""
        switch type {
        case "Sequence":
            for p in json["pretokenizers"]?.array ?? [] { try append(p, path: path) }
        case "ByteLevel":
            steps.append(
                .byteLevel(
                    addPrefixSpace: json["add_prefix_space"]?.bool ?? true, useRegex: json["use_regex"]?.bool ?? true))
        case "Split":
            let behaviorName = json["behavior"]?.string ?? "Removed"
            guard let behavior = SplitBehavior(rawValue: behaviorName) else {
                throw .unsupported(path: path, feature: "the Split behavior \"\(behaviorName)\"")
            }
            steps.append(
                .split(
                    try TextPattern.parse(json["pattern"], path: path), behavior, invert: json["invert"]?.bool ?? false)
            )
        case "Metaspace":
            let replacement = json["replacement"]?.string ?? "▁"
            let scheme: PrependScheme
            if let name = json["prepend_scheme"]?.string {
                guard let s = PrependScheme(rawValue: name) else {
                    throw .unsupported(path: path, feature: "the Metaspace prepend_scheme \"\(name)\"")
                }
                scheme = s
            } else {
                scheme = (json["add_prefix_space"]?.bool ?? true) ? .always : .never
            }
            steps.append(
                .metaspace(
                    replacement: Array(replacement.utf8), prependScheme: scheme, split: json["split"]?.bool ?? true))
        default:
            throw .unsupported(path: path, feature: "the pre-tokenizer \"\(type)\"")
        }
    }

    /// Calls `body` with each word of a normalized piece. `startsText`: the piece begins the input.
    func forEachWord(
        _ piece: UnsafeBufferPointer<UInt8>, startsText: Bool, _ body: (UnsafeBufferPointer<UInt8>) -> Void
    ) {
        apply(0, piece, startsText, body)
    }

    private func apply(
        _ index: Int, _ piece: UnsafeBufferPointer<UInt8>, _ startsText: Bool,
        _ body: (UnsafeBufferPointer<UInt8>) -> Void
    ) {
        if piece.isEmpty { return }
        guard index < steps.count else { return body(piece) }
        switch steps[index] {
        case .byteLevel(let addPrefixSpace, let useRegex):
            if addPrefixSpace, piece[0] != 0x20 {
                let spaced = [0x20] + Array(piece)
                spaced.withUnsafeBufferPointer { byteLevel($0, useRegex, index, startsText, body) }
            } else {
                byteLevel(piece, useRegex, index, startsText, body)
            }
        case .split(let pattern, let behavior, let invert):
            for r in Self.splits(piece.count, pattern.matches(in: piece), behavior, invert: invert) where !r.isEmpty {
                apply(index + 1, UnsafeBufferPointer(rebasing: piece[r]), startsText && r.lowerBound == 0, body)
            }
        case .metaspace(let replacement, let scheme, let split):
            var text: [UInt8] = []
            text.reserveCapacity(piece.count + 8)
            for b in piece {
                if b == 0x20 { text.append(contentsOf: replacement) } else { text.append(b) }
            }
            let startsWithReplacement = text.starts(with: replacement)
            if !startsWithReplacement && (scheme == .always || (scheme == .first && startsText)) {
                text.insert(contentsOf: replacement, at: 0)
            }
            text.withUnsafeBufferPointer { p in
                guard split else { return apply(index + 1, p, startsText, body) }
                let ranges = Self.splits(
                    p.count, TextPattern.literal(replacement).matches(in: p), .mergedWithNext, invert: false)
                for r in ranges where !r.isEmpty {
                    apply(index + 1, UnsafeBufferPointer(rebasing: p[r]), startsText && r.lowerBound == 0, body)
                }
            }
        }
    }

    @inline(__always)
    private func byteLevel(
        _ piece: UnsafeBufferPointer<UInt8>, _ useRegex: Bool, _ index: Int, _ startsText: Bool,
        _ body: (UnsafeBufferPointer<UInt8>) -> Void
    ) {
        guard useRegex else { return apply(index + 1, piece, startsText, body) }
        GPT2Pattern.forEachMatch(piece, .huggingFace) { r in
            apply(index + 1, UnsafeBufferPointer(rebasing: piece[r]), startsText && r.lowerBound == 0, body)
        }
    }

    /// The pieces a split keeps, as `NormalizedString::split` computes them.
    static func splits(_ count: Int, _ matches: [Range<Int>], _ behavior: SplitBehavior, invert: Bool) -> [Range<Int>] {
        // (range, isMatch) covering the whole text.
        var marked: [(Range<Int>, Bool)] = []
        var previous = 0
        for m in matches {
            if previous != m.lowerBound { marked.append((previous..<m.lowerBound, invert)) }
            marked.append((m, !invert))
            previous = m.upperBound
        }
        if previous != count { marked.append((previous..<count, invert)) }

        switch behavior {
        case .removed:
            return marked.filter { !$0.1 }.map(\.0)
        case .isolated:
            return marked.map(\.0)
        case .contiguous:
            var out: [Range<Int>] = []
            var previousMatch = false
            for (r, isMatch) in marked {
                if isMatch == previousMatch, let last = out.last {
                    out[out.count - 1] = last.lowerBound..<r.upperBound
                } else {
                    out.append(r)
                }
                previousMatch = isMatch
            }
            return out
        case .mergedWithPrevious:
            var out: [Range<Int>] = []
            var previousMatch = false
            for (r, isMatch) in marked {
                if isMatch && !previousMatch, let last = out.last {
                    out[out.count - 1] = last.lowerBound..<r.upperBound
                } else {
                    out.append(r)
                }
                previousMatch = isMatch
            }
            return out
        case .mergedWithNext:
            var out: [Range<Int>] = []
            var previousMatch = false
            for (r, isMatch) in marked.reversed() {
                if isMatch && !previousMatch, let last = out.last {
                    out[out.count - 1] = r.lowerBound..<last.upperBound
                } else {
                    out.append(r)
                }
                previousMatch = isMatch
            }
            return out.reversed()
        }
    }
}
