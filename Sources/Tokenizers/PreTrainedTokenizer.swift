// The tokenizer pipeline of tokenizer.json: added tokens → normalizer → pre-tokenizer → BPE model →
// post-processor, and back through the decoder. Follows `TokenizerImpl::encode` / `decode` of the Rust
// `tokenizers` crate, with the transformers-level settings of tokenizer_config.json applied on top.

/// What transformers does to decoded text after the tokenizer's own decoder.
enum DecodeFixUp: Sendable {
    /// CLIPTokenizer: the end-of-word suffix becomes a space, then the text is stripped (Python `strip()`).
    case clipSuffix([UInt8])
}

/// A BPE tokenizer built from tokenizer.json or vocab.json + merges.txt.
public struct PreTrainedTokenizer: Tokenizer {
    /// The stages, immutable and shared by copies (a copy of the tokenizer is one reference).
    final class Pipeline: Sendable {
        let normalizer: Normalizer
        let preTokenizer: PreTokenizer
        let model: BytePairEncoding
        let postProcessor: PostProcessor
        let decoder: Decoder
        let addedVocabulary: AddedVocabulary
        let decodeFixUp: DecodeFixUp?
        let specialContents: Set<TokenBytes>
        let specialTokens: SpecialTokens
        let configuration: TokenizerConfiguration
        let vocabularySize: Int

        init(
            normalizer: Normalizer, preTokenizer: PreTokenizer, model: BytePairEncoding, postProcessor: PostProcessor,
            decoder: Decoder, addedVocabulary: AddedVocabulary, decodeFixUp: DecodeFixUp?,
            specialContents: Set<TokenBytes>, specialTokens: SpecialTokens, configuration: TokenizerConfiguration,
            vocabularySize: Int
        ) {
            self.normalizer = normalizer
            self.preTokenizer = preTokenizer
            self.model = model
            self.postProcessor = postProcessor
            self.decoder = decoder
            self.addedVocabulary = addedVocabulary
            self.decodeFixUp = decodeFixUp
            self.specialContents = specialContents
            self.specialTokens = specialTokens
            self.configuration = configuration
            self.vocabularySize = vocabularySize
        }
    }

    let pipeline: Pipeline

    /// The BPE model.
    public var model: BytePairEncoding { pipeline.model }
    public var specialTokens: SpecialTokens { pipeline.specialTokens }
    /// The tokenizer_config.json it was loaded with (empty when there was none).
    public var configuration: TokenizerConfiguration { pipeline.configuration }
    public var vocabularySize: Int { pipeline.vocabularySize }
    var decodeFixUp: DecodeFixUp? { pipeline.decodeFixUp }

    init(
        normalizer: Normalizer, preTokenizer: PreTokenizer, model: BytePairEncoding, postProcessor: PostProcessor,
        decoder: Decoder, addedTokens: [AddedToken], configuration: TokenizerConfiguration, decodeFixUp: DecodeFixUp?
    ) {
        let added = AddedVocabulary(addedTokens, normalizer: normalizer)
        let specialContents = Set(added.tokens.filter(\.special).map { TokenBytes($0.content) })

        var strings = Set(model.vocabulary.entries.keys)
        for t in added.tokens { strings.insert(TokenBytes(t.content)) }

        func id(_ spec: TokenizerConfiguration.AddedTokenSpec?) -> Int? {
            guard let spec else { return nil }
            let bytes = TokenBytes(spec.content)
            return added.id(bytes) ?? model.vocabulary.id(bytes)
        }
        var bos = id(configuration.bosToken)
        var eos = id(configuration.eosToken)
        if configuration.bosToken == nil, postProcessor.prefix.count == 1 { bos = postProcessor.prefix[0] }
        if configuration.eosToken == nil, postProcessor.suffix.count == 1 { eos = postProcessor.suffix[0] }
        if eos == nil, configuration.eosToken == nil, let e = added.id(TokenBytes("<|endoftext|>")) { eos = e }
        let unk = id(configuration.unkToken) ?? model.unknownID.map(Int.init)
        let specialTokens = SpecialTokens(
            bos: bos, eos: eos, pad: id(configuration.padToken), unk: unk, all: added.specialIDs)

        // transformers rebuilds the post-processor from add_bos_token / add_eos_token when the config states
        // either (`update_post_processor`); CLIPTokenizer sets its own afterwards.
        var processor = postProcessor
        if !configuration.isCLIP, configuration.addBOSToken != nil || configuration.addEOSToken != nil {
            let addBOS = configuration.addBOSToken ?? false
            let addEOS = configuration.addEOSToken ?? false
            processor = PostProcessor(
                prefix: addBOS ? bos.map { [$0] } ?? [] : [], suffix: addEOS ? eos.map { [$0] } ?? [] : [])
        }
        pipeline = Pipeline(
            normalizer: normalizer, preTokenizer: preTokenizer, model: model, postProcessor: processor,
            decoder: decoder, addedVocabulary: added, decodeFixUp: decodeFixUp, specialContents: specialContents,
            specialTokens: specialTokens, configuration: configuration, vocabularySize: strings.count)
    }

    // MARK: Encoding

    public func encode(_ text: String, addSpecialTokens: Bool, parseSpecialTokens: Bool) -> [Int] {
        let p = pipeline
        var ids: [Int] = []
        ids.reserveCapacity(text.utf8.count / 3 + 4)
        var cache = p.model.cache.borrow()
        var text = text
        text.withUTF8 { bytes in
            for segment in p.addedVocabulary.split(bytes, normalized: false, includingSpecial: parseSpecialTokens) {
                switch segment {
                case .token(let id):
                    ids.append(id)
                case .text(let r):
                    let piece = UnsafeBufferPointer(rebasing: bytes[r])
                    if p.normalizer.isIdentity {
                        Self.encodeNormalized(p, piece, startsText: r.lowerBound == 0, parseSpecialTokens: parseSpecialTokens,
                                              into: &ids, cache: &cache)
                    } else {
                        p.normalizer(Array(piece)).withUnsafeBufferPointer {
                            Self.encodeNormalized(p, $0, startsText: r.lowerBound == 0,
                                                  parseSpecialTokens: parseSpecialTokens, into: &ids, cache: &cache)
                        }
                    }
                }
            }
        }
        p.model.cache.giveBack(cache)
        return addSpecialTokens ? p.postProcessor.apply(ids) : ids
    }

    private static func encodeNormalized(
        _ p: Pipeline, _ text: UnsafeBufferPointer<UInt8>, startsText: Bool, parseSpecialTokens: Bool,
        into ids: inout [Int], cache: inout WordCache
    ) {
        let model = p.model
        guard p.addedVocabulary.hasNormalizedTokens else {
            return p.preTokenizer.forEachWord(text, startsText: startsText) {
                model.tokenize($0, into: &ids, cache: &cache)
            }
        }
        for segment in p.addedVocabulary.split(text, normalized: true, includingSpecial: parseSpecialTokens) {
            switch segment {
            case .token(let id):
                ids.append(id)
            case .text(let r):
                p.preTokenizer.forEachWord(
                    UnsafeBufferPointer(rebasing: text[r]), startsText: startsText && r.lowerBound == 0
                ) {
                    model.tokenize($0, into: &ids, cache: &cache)
                }
            }
        }
    }

    // MARK: Decoding

    public func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String {
        let p = pipeline
        var tokens: [[UInt8]] = []
        tokens.reserveCapacity(ids.count)
        for id in ids {
            guard let token = p.addedVocabulary.decoded(id) ?? p.model.vocabulary.token(id)?.bytes else { continue }
            if skipSpecialTokens, !p.specialContents.isEmpty, p.specialContents.contains(TokenBytes(token)) { continue }
            tokens.append(token)
        }
        let text = p.decoder(tokens)
        switch p.decodeFixUp {
        case nil:
            return text
        case .clipSuffix(let suffix):
            let replaced = TextPattern.literal(suffix).replacingMatches(in: Array(text.utf8), with: [0x20])
            return String(decoding: pythonStrip(replaced), as: UTF8.self)
        }
    }

    // MARK: Vocabulary

    public func tokenID(_ token: String) -> Int? {
        let bytes = TokenBytes(token)
        return pipeline.addedVocabulary.id(bytes) ?? pipeline.model.vocabulary.id(bytes)
    }

    public func token(_ id: Int) -> String? {
        if let t = pipeline.addedVocabulary.tokens.first(where: { $0.id == id }) { return t.content }
        return pipeline.model.vocabulary.token(id)?.text
    }

    /// The added tokens (from tokenizer.json `added_tokens` or tokenizer_config.json).
    public var addedTokens: [AddedToken] { pipeline.addedVocabulary.tokens }
}

/// Python's `str.strip()`.
func pythonStrip(_ bytes: [UInt8]) -> [UInt8] {
    bytes.withUnsafeBufferPointer { p in
        var start = 0
        var end = p.count
        while start < end {
            let (v, n) = decodeScalar(p, at: start)
            if !isPythonWhitespace(v) { break }
            start += n
        }
        while end > start {
            var k = end - 1
            while k > start, p[k] & 0xC0 == 0x80 { k -= 1 }
            if !isPythonWhitespace(decodeScalar(p, at: k).0) { break }
            end = k
        }
        return Array(p[start..<end])
    }
}
