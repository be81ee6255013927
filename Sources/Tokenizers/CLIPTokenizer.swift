// CLIP's tokenizer for the text tower: transformers' CLIPTokenizer (the default), or OpenAI's original
// `SimpleTokenizer` over the same vocabulary, plus encoding to a fixed context length (77 for CLIP, 248
// for LongCLIP).

/// CLIP's byte-level BPE with `</w>` word ends, and its fixed-length encoding for the text tower.
public struct CLIPTokenizer: Tokenizer {
    /// Which implementation the ids must match.
    public enum Reference: Sendable {
        /// transformers' CLIPTokenizer (tokenizers-backed): NFC, whitespace → " ", lowercase; what Hugging
        /// Face CLIP checkpoints (openai/clip-vit-*, LongCLIP ports) are used with.
        case huggingFace
        /// OpenAI's `clip/simple_tokenizer.py`: ftfy + HTML unescaping + Python's `lower()` (see
        /// OpenAICLIPText.swift for what of ftfy is implemented); what the original CLIP and LongCLIP
        /// training code used.
        case openAI
    }

    /// The underlying tokenizer.json / vocab.json + merges.txt pipeline.
    public let base: PreTrainedTokenizer
    /// The implementation matched.
    public let reference: Reference
    private let startID: Int?
    private let endID: Int?

    /// Wraps a loaded CLIP tokenizer.
    public init(_ base: PreTrainedTokenizer, reference: Reference = .huggingFace) {
        self.base = base
        self.reference = reference
        startID = base.specialTokens.bos ?? base.tokenID("<|startoftext|>")
        endID = base.specialTokens.eos ?? base.tokenID("<|endoftext|>")
    }

    /// Loads the CLIP tokenizer in `directory` (tokenizer.json, else vocab.json + merges.txt).
    public init(directory: String, reference: Reference = .huggingFace) throws(TokenizerError) {
        let tokenizer = try loadTokenizer(directory: directory)
        guard let base = (tokenizer as? CLIPTokenizer)?.base ?? (tokenizer as? PreTrainedTokenizer) else {
            throw .invalidFile(path: directory, reason: "not a BPE tokenizer")
        }
        self.init(base, reference: reference)
    }

    public var vocabularySize: Int { base.vocabularySize }
    public var specialTokens: SpecialTokens { base.specialTokens }
    public func tokenID(_ token: String) -> Int? { base.tokenID(token) }
    public func token(_ id: Int) -> String? { base.token(id) }

    public func encode(_ text: String, addSpecialTokens: Bool, parseSpecialTokens: Bool) -> [Int] {
        switch reference {
        case .huggingFace:
            return base.encode(text, addSpecialTokens: addSpecialTokens, parseSpecialTokens: parseSpecialTokens)
        case .openAI:
            let ids = openAIEncode(text, parseSpecialTokens: parseSpecialTokens)
            guard addSpecialTokens, let startID, let endID else { return ids }
            return [startID] + ids + [endID]
        }
    }

    public func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String {
        switch reference {
        case .huggingFace:
            return base.decode(ids, skipSpecialTokens: skipSpecialTokens)
        case .openAI:
            // SimpleTokenizer.decode: the tokens' bytes, decoded with replacement, then `</w>` → " ".
            var bytes: [UInt8] = []
            for id in ids {
                if skipSpecialTokens, base.specialTokens.all.contains(id) { continue }
                guard let token = base.model.vocabulary.token(id)?.bytes ?? base.token(id).map({ Array($0.utf8) })
                else { continue }
                bytes += ByteLevelAlphabet.decode(token) ?? token
            }
            let text = Decoder.lossless(bytes)
            return String(
                decoding: TextPattern.literal(Array("</w>".utf8)).replacingMatches(in: text, with: [0x20]),
                as: UTF8.self)
        }
    }

    /// Exactly `contextLength` ids: start token, the text's ids (cut so that the end token fits), end token,
    /// then `padID`. transformers pads with the configured pad token (`<|endoftext|>` for openai/clip-*);
    /// OpenAI's `clip.tokenize` and LongCLIP pad with 0. Without `padID`: the pad token for the Hugging Face
    /// reference, 0 for OpenAI's. Context lengths: 77 (CLIP), 248 (LongCLIP).
    public func encode(
        _ text: String, contextLength: Int, padID: Int? = nil, parseSpecialTokens: Bool = true
    ) throws(TokenizerError) -> [Int] {
        guard contextLength >= 2, let startID, let endID else { throw .invalidContextLength(contextLength) }
        let ids = encode(text, addSpecialTokens: false, parseSpecialTokens: parseSpecialTokens)
        var out = [startID]
        out.reserveCapacity(contextLength)
        out += ids.prefix(contextLength - 2)
        out.append(endID)
        let pad = padID ?? (reference == .openAI ? 0 : base.specialTokens.pad ?? endID)
        out += repeatElement(pad, count: contextLength - out.count)
        return out
    }

    /// OpenAI's SimpleTokenizer.encode: clean, split with CLIP's pattern (ignoring case), BPE each piece.
    private func openAIEncode(_ text: String, parseSpecialTokens: Bool) -> [Int] {
        let cleaned = OpenAICLIPText.clean(text)
        var ids: [Int] = []
        var cache = base.model.cache.borrow()
        cleaned.withUnsafeBufferPointer { p in
            CLIPPattern.forEachMatch(p, .pythonRegex, ignoreCase: true) { range, isSpecial in
                let piece = UnsafeBufferPointer(rebasing: p[range])
                if isSpecial, parseSpecialTokens, let id = base.tokenID(String(decoding: piece, as: UTF8.self).lowercased()) {
                    ids.append(id)
                } else {
                    base.model.tokenize(piece, into: &ids, cache: &cache)
                }
            }
        }
        base.model.cache.giveBack(cache)
        return ids
    }
}
