// What every tokenizer of the project offers: text → ids → text, the vocabulary, and the special tokens.

/// The ids of a tokenizer's special tokens, where it has them.
public struct SpecialTokens: Sendable, Equatable {
    /// Beginning of sequence (`<s>`, `<|startoftext|>`).
    public var bos: Int?
    /// End of sequence (`</s>`, `<|endoftext|>`).
    public var eos: Int?
    /// Padding.
    public var pad: Int?
    /// Unknown token.
    public var unk: Int?
    /// Every id marked special (skipped by `decode(_:skipSpecialTokens: true)`).
    public var all: Set<Int>

    /// Special token ids, each optional.
    public init(bos: Int? = nil, eos: Int? = nil, pad: Int? = nil, unk: Int? = nil, all: Set<Int> = []) {
        self.bos = bos
        self.eos = eos
        self.pad = pad
        self.unk = unk
        self.all = all
    }
}

/// Text ↔ token ids, identical to the reference tokenizer it was loaded from.
public protocol Tokenizer: Sendable {
    /// The ids of `text`, with the special tokens the post-processor adds when `addSpecialTokens` is true.
    /// With `parseSpecialTokens` (what the reference tokenizers do by default) text that spells a special
    /// token (`</s>`, `<|endoftext|>`) becomes that token; without it (transformers' `split_special_tokens=True`,
    /// tokenizers' `encode_special_tokens`) it is tokenized as the text it is, so that only the caller's
    /// template can insert special tokens. Added tokens that are not special are matched either way.
    func encode(_ text: String, addSpecialTokens: Bool, parseSpecialTokens: Bool) -> [Int]

    /// The text of `ids`; unknown ids are skipped, special tokens too when `skipSpecialTokens` is true.
    func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String

    /// The id of a token given by its exact text (model vocabulary or added token).
    func tokenID(_ token: String) -> Int?

    /// The text of the token with this id, as the vocabulary writes it.
    func token(_ id: Int) -> String?

    /// The number of ids: the model vocabulary plus added tokens outside it.
    var vocabularySize: Int { get }

    /// The special tokens.
    var specialTokens: SpecialTokens { get }
}

extension Tokenizer {
    /// The ids of `text` with special tokens.
    public func encode(_ text: String) -> [Int] { encode(text, addSpecialTokens: true) }

    /// The ids of `text` as the reference tokenizer gives them by default (special tokens in the text parsed).
    public func encode(_ text: String, addSpecialTokens: Bool) -> [Int] {
        encode(text, addSpecialTokens: addSpecialTokens, parseSpecialTokens: true)
    }

    /// The text of `ids`, special tokens included.
    public func decode(_ ids: [Int]) -> String { decode(ids, skipSpecialTokens: false) }

    /// A detokenizer that turns ids arriving one at a time into text without broken characters.
    public func streamingDetokenizer(skipSpecialTokens: Bool = false) -> StreamingDetokenizer {
        StreamingDetokenizer(tokenizer: self, skipSpecialTokens: skipSpecialTokens)
    }
}
