// Post-processors: the special tokens put around an encoded sequence when `addSpecialTokens` is true.
// Mirrors `post_processor` in tokenizer.json (single sequences only).

/// What goes around a single encoded sequence.
struct PostProcessor: Sendable {
    /// Ids before the sequence.
    var prefix: [Int] = []
    /// Ids after the sequence.
    var suffix: [Int] = []

    init(prefix: [Int] = [], suffix: [Int] = []) {
        self.prefix = prefix
        self.suffix = suffix
    }

    /// Reads a tokenizer.json `post_processor`.
    init(json: JSONValue?, path: String) throws(TokenizerError) {
        guard let json, !json.isNull else { return }
        try append(json, path: path)
    }

    private mutating func append(_ json: JSONValue, path: String) throws(TokenizerError) {
        let type = json["type"]?.string ?? ""
        switch type {
        case "Sequence":
            for p in json["processors"]?.array ?? [] { try append(p, path: path) }
        case "ByteLevel":
            break  // offsets only
        case "TemplateProcessing":
            var specials: [String: [Int]] = [:]
            for (name, value) in json["special_tokens"]?.members ?? [] {
                specials[name] = (value["ids"]?.array ?? []).compactMap(\.int)
            }
            var before: [Int] = []
            var after: [Int] = []
            var seenSequence = false
            for piece in json["single"]?.array ?? [] {
                if piece["Sequence"] != nil {
                    seenSequence = true
                } else if let name = piece["SpecialToken"]?["id"]?.string {
                    guard let ids = specials[name] else {
                        throw .invalidFile(path: path, reason: "the template names \(name), which special_tokens lacks")
                    }
                    if seenSequence { after += ids } else { before += ids }
                }
            }
            prefix = before
            suffix = after
        case "RobertaProcessing", "BertProcessing":
            guard let cls = json["cls"]?.array, cls.count == 2, let clsID = cls[1].int,
                let sep = json["sep"]?.array, sep.count == 2, let sepID = sep[1].int
            else { throw .invalidFile(path: path, reason: "\(type) needs cls and sep as [token, id]") }
            prefix = [clsID]
            suffix = [sepID]
        default:
            throw .unsupported(path: path, feature: "the post-processor \"\(type)\"")
        }
    }

    /// Adds the special tokens around `ids`.
    func apply(_ ids: [Int]) -> [Int] {
        if prefix.isEmpty && suffix.isEmpty { return ids }
        return prefix + ids + suffix
    }
}
