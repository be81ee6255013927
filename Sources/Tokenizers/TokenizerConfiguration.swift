// tokenizer_config.json: the flags transformers reads beside the tokenizer files.

import Foundation

/// The settings of a tokenizer_config.json that change what a tokenizer produces.
public struct TokenizerConfiguration: Sendable {
    /// `tokenizer_class`, e.g. "LlamaTokenizer", "CLIPTokenizer", "GPT2Tokenizer".
    public var tokenizerClass: String?
    /// `bos_token`.
    public var bosToken: AddedTokenSpec?
    /// `eos_token`.
    public var eosToken: AddedTokenSpec?
    /// `pad_token`.
    public var padToken: AddedTokenSpec?
    /// `unk_token`.
    public var unkToken: AddedTokenSpec?
    /// `additional_special_tokens`.
    public var additionalSpecialTokens: [AddedTokenSpec] = []
    /// `add_bos_token`; nil when the file does not say (then the tokenizer.json post-processor decides).
    public var addBOSToken: Bool?
    /// `add_eos_token`; nil when the file does not say.
    public var addEOSToken: Bool?
    /// `add_prefix_space` (GPT-2 built from vocab.json + merges.txt).
    public var addPrefixSpace: Bool?
    /// `legacy` (LLaMA). Informational: the tokenizer.json pipeline is followed as written.
    public var legacy: Bool?
    /// `clean_up_tokenization_spaces`. transformers 5 ignores it for BPE models, and so does `decode`;
    /// `cleanUpTokenizationSpaces(_:)` applies it for callers that want transformers 4's output.
    public var cleanUpTokenizationSpaces: Bool?
    /// `model_max_length` (77 for CLIP).
    public var modelMaxLength: Int?
    /// `added_tokens_decoder`, sorted by id.
    public var addedTokens: [AddedToken] = []

    /// A special token as tokenizer_config.json writes it: a string or an AddedToken object.
    public struct AddedTokenSpec: Sendable, Equatable {
        /// The token's text.
        public var content: String
        /// Whitespace before the token belongs to it.
        public var lstrip = false
        /// Whitespace after the token belongs to it.
        public var rstrip = false
        /// Matches only where no word character touches it.
        public var singleWord = false
        /// Matched in the normalized text.
        public var normalized = false

        /// A token given by its text alone.
        public init(_ content: String) { self.content = content }

        init?(json: JSONValue?) {
            guard let json else { return nil }
            if let s = json.string {
                content = s
                return
            }
            guard let s = json["content"]?.string else { return nil }
            content = s
            lstrip = json["lstrip"]?.bool ?? false
            rstrip = json["rstrip"]?.bool ?? false
            singleWord = json["single_word"]?.bool ?? false
            normalized = json["normalized"]?.bool ?? false
        }
    }

    /// An empty configuration (no tokenizer_config.json).
    public init() {}

    /// Reads tokenizer_config.json.
    public init(path: String) throws(TokenizerError) {
        let json = try readJSON(path)
        tokenizerClass = json["tokenizer_class"]?.string
        bosToken = AddedTokenSpec(json: json["bos_token"])
        eosToken = AddedTokenSpec(json: json["eos_token"])
        padToken = AddedTokenSpec(json: json["pad_token"])
        unkToken = AddedTokenSpec(json: json["unk_token"])
        additionalSpecialTokens = (json["additional_special_tokens"]?.array ?? []).compactMap {
            AddedTokenSpec(json: $0)
        }
        addBOSToken = json["add_bos_token"]?.bool
        addEOSToken = json["add_eos_token"]?.bool
        addPrefixSpace = json["add_prefix_space"]?.bool
        legacy = json["legacy"]?.bool
        cleanUpTokenizationSpaces = json["clean_up_tokenization_spaces"]?.bool
        modelMaxLength = json["model_max_length"]?.int
        for (key, value) in json["added_tokens_decoder"]?.members ?? [] {
            guard let id = Int(key), let content = value["content"]?.string else {
                throw .invalidFile(
                    path: path, reason: "added_tokens_decoder entry \(key) needs an integer id and content")
            }
            addedTokens.append(
                AddedToken(
                    content: content, id: id, special: value["special"]?.bool ?? false,
                    lstrip: value["lstrip"]?.bool ?? false, rstrip: value["rstrip"]?.bool ?? false,
                    singleWord: value["single_word"]?.bool ?? false, normalized: value["normalized"]?.bool))
        }
        addedTokens.sort { $0.id < $1.id }
    }

    /// Whether the configuration names a CLIP tokenizer.
    var isCLIP: Bool { tokenizerClass?.hasPrefix("CLIPTokenizer") ?? false }
}

/// transformers' `clean_up_tokenization`: removes the space before punctuation and contractions.
public func cleanUpTokenizationSpaces(_ text: String) -> String {
    var bytes = Array(text.utf8)
    for (from, to) in [
        (" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
        (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"),
    ] {
        bytes = TextPattern.literal(Array(from.utf8)).replacingMatches(in: bytes, with: Array(to.utf8))
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// Reads and parses a JSON file.
func readJSON(_ path: String) throws(TokenizerError) -> JSONValue {
    let bytes = try readBytes(path)
    do {
        return try JSONValue.parse(bytes)
    } catch {
        throw .invalidJSON(path: path, reason: error.description)
    }
}

/// Reads a whole file.
func readBytes(_ path: String) throws(TokenizerError) -> [UInt8] {
    guard let handle = FileHandle(forReadingAtPath: path) else {
        let exists = FileManager.default.fileExists(atPath: path)
        throw .cannotRead(path: path, reason: exists ? "permission denied or not a file" : "no such file")
    }
    defer { try? handle.close() }
    do {
        return [UInt8](try handle.readToEnd() ?? Data())
    } catch {
        throw .cannotRead(path: path, reason: "\(error)")
    }
}
