// Reading the two file layouts: tokenizer.json (the whole pipeline), and vocab.json + merges.txt (GPT-2
// and CLIP, whose pipelines transformers' GPT2Tokenizer / CLIPTokenizer classes define in code).

extension PreTrainedTokenizer {
    /// Loads a tokenizer.json, with the settings of a tokenizer_config.json when given.
    public init(
        tokenizerJSON path: String, configuration: TokenizerConfiguration = TokenizerConfiguration()
    )
        throws(TokenizerError)
    {
        let json = try readJSON(path)
        guard let modelJSON = json["model"], modelJSON.members != nil else {
            throw .invalidFile(path: path, reason: "there is no \"model\" object")
        }
        let type = modelJSON["type"]?.string ?? (modelJSON["merges"] != nil ? "BPE" : "unknown")
        guard type == "BPE" else {
            throw .unsupported(path: path, feature: "the \(type) model (only BPE is implemented)")
        }
        if let dropout = modelJSON["dropout"], case .number(let p) = dropout, p > 0 {
            throw .unsupported(path: path, feature: "BPE dropout (random segmentation)")
        }
        guard let vocabMembers = modelJSON["vocab"]?.members else {
            throw .invalidFile(path: path, reason: "model.vocab must be an object of token → id")
        }
        let vocabulary = try Self.vocabulary(vocabMembers, path: path)
        guard let mergesJSON = modelJSON["merges"]?.array else {
            throw .invalidFile(path: path, reason: "model.merges must be a list")
        }
        var merges: [(TokenBytes, TokenBytes)] = []
        merges.reserveCapacity(mergesJSON.count)
        for (i, m) in mergesJSON.enumerated() {
            if let line = m.string {
                merges.append(try Self.mergePair(line, index: i + 1, path: path))
            } else if let pair = m.array, pair.count == 2, let a = pair[0].string, let b = pair[1].string {
                merges.append((TokenBytes(a), TokenBytes(b)))
            } else {
                throw .invalidFile(path: path, reason: "merge \(i + 1) must be \"a b\" or [\"a\", \"b\"]")
            }
        }
        var options = BytePairEncoding.Options()
        options.unknownToken = modelJSON["unk_token"]?.string
        options.fuseUnknown = modelJSON["fuse_unk"]?.bool ?? false
        options.byteFallback = modelJSON["byte_fallback"]?.bool ?? false
        options.ignoreMerges = modelJSON["ignore_merges"]?.bool ?? false
        options.continuingSubwordPrefix = modelJSON["continuing_subword_prefix"]?.string
        options.endOfWordSuffix = modelJSON["end_of_word_suffix"]?.string

        let normalizer = try Normalizer(json: json["normalizer"], path: path)
        let preTokenizer = try PreTokenizer(json: json["pre_tokenizer"], path: path)
        let model = try BytePairEncoding(
            vocabulary: vocabulary, merges: merges, options: options, byteLevel: preTokenizer.isByteLevel, path: path)
        let postProcessor = try PostProcessor(json: json["post_processor"], path: path)
        let decoder = try Decoder(json: json["decoder"], path: path)

        var addedTokens: [AddedToken] = []
        for entry in json["added_tokens"]?.array ?? [] {
            guard let id = entry["id"]?.int, let content = entry["content"]?.string else {
                throw .invalidFile(path: path, reason: "every added token needs an integer id and a content")
            }
            addedTokens.append(
                AddedToken(
                    content: content, id: id, special: entry["special"]?.bool ?? false,
                    lstrip: entry["lstrip"]?.bool ?? false, rstrip: entry["rstrip"]?.bool ?? false,
                    singleWord: entry["single_word"]?.bool ?? false, normalized: entry["normalized"]?.bool ?? true))
        }

        // CLIPTokenizer turns `</w>` into spaces after the ByteLevel decoder (a BPEDecoder does it itself).
        var fixUp: DecodeFixUp?
        if let suffix = options.endOfWordSuffix, !suffix.isEmpty,
            configuration.isCLIP || (configuration.tokenizerClass == nil && preTokenizer.isByteLevel),
            !decoder.steps.contains(where: { if case .bpeSuffix = $0 { true } else { false } })
        {
            fixUp = .clipSuffix(Array(suffix.utf8))
        }
        self.init(
            normalizer: normalizer, preTokenizer: preTokenizer, model: model, postProcessor: postProcessor,
            decoder: decoder, addedTokens: addedTokens, configuration: configuration, decodeFixUp: fixUp)
    }

    /// Loads vocab.json + merges.txt the way transformers' GPT2Tokenizer or CLIPTokenizer builds its
    /// pipeline (CLIP when the configuration names it or the vocabulary has `</w>` tokens).
    public init(
        vocabJSON vocabPath: String, mergesTXT mergesPath: String,
        configuration: TokenizerConfiguration = TokenizerConfiguration()
    ) throws(TokenizerError) {
        guard let members = try readJSON(vocabPath).members else {
            throw .invalidFile(path: vocabPath, reason: "the vocabulary must be an object of token → id")
        }
        let vocabulary = try Self.vocabulary(members, path: vocabPath)
        let merges = try Self.readMerges(mergesPath)
        let suffix = Array("</w>".utf8)
        let isCLIP =
            configuration.isCLIP
            || (configuration.tokenizerClass == nil
                && vocabulary.entries.keys.contains { $0.bytes.count > 4 && $0.bytes.suffix(4).elementsEqual(suffix) })
        var config = configuration
        var options = BytePairEncoding.Options()
        let normalizer: Normalizer
        let preTokenizer: PreTokenizer
        let fixUp: DecodeFixUp?
        if isCLIP {
            // CLIPTokenizer.__init__ (transformers 5).
            config.bosToken = config.bosToken ?? .init("<|startoftext|>")
            config.eosToken = config.eosToken ?? .init("<|endoftext|>")
            config.unkToken = config.unkToken ?? .init("<|endoftext|>")
            config.padToken = config.padToken ?? .init("<|endoftext|>")
            options.unknownToken = config.unkToken?.content
            options.endOfWordSuffix = "</w>"
            normalizer = Normalizer(steps: [.nfc, .replace(.whitespaceRun, [0x20]), .lowercase])
            preTokenizer = PreTokenizer(steps: [
                .split(.clip(.huggingFace), .removed, invert: true), .byteLevel(addPrefixSpace: false, useRegex: true),
            ])
            fixUp = .clipSuffix(suffix)
        } else {
            // GPT2Tokenizer.__init__ (transformers 5).
            config.bosToken = config.bosToken ?? .init("<|endoftext|>")
            config.eosToken = config.eosToken ?? .init("<|endoftext|>")
            config.unkToken = config.unkToken ?? .init("<|endoftext|>")
            normalizer = Normalizer(steps: [])
            preTokenizer = PreTokenizer(steps: [
                .byteLevel(addPrefixSpace: config.addPrefixSpace ?? false, useRegex: true)
            ])
            fixUp = nil
        }
        let model = try BytePairEncoding(
            vocabulary: vocabulary, merges: merges, options: options, byteLevel: true, path: mergesPath)
        let added = Self.addedTokens(configuration: config, vocabulary: vocabulary)

        let tokenID: (TokenizerConfiguration.AddedTokenSpec?) -> Int? = { spec in
            guard let spec else { return nil }
            return added.first { $0.content.utf8.elementsEqual(spec.content.utf8) }?.id ?? vocabulary.id(spec.content)
        }
        let postProcessor: PostProcessor
        if isCLIP {
            postProcessor = PostProcessor(
                prefix: tokenID(config.bosToken).map { [$0] } ?? [], suffix: tokenID(config.eosToken).map { [$0] } ?? []
            )
        } else {
            // No post-processor in the files: transformers builds one from add_bos_token / add_eos_token.
            config.addBOSToken = config.addBOSToken ?? false
            config.addEOSToken = config.addEOSToken ?? false
            postProcessor = PostProcessor()
        }
        self.init(
            normalizer: normalizer, preTokenizer: preTokenizer, model: model, postProcessor: postProcessor,
            decoder: Decoder(steps: [.byteLevel]), addedTokens: added, configuration: config, decodeFixUp: fixUp)
    }

    /// The added tokens transformers registers from a configuration: `added_tokens_decoder`, then the named
    /// special tokens that are not there yet (ids of tokens already in the vocabulary are kept; others
    /// follow the vocabulary).
    static func addedTokens(configuration: TokenizerConfiguration, vocabulary: Vocabulary) -> [AddedToken] {
        var tokens: [AddedToken] = []
        func nextID() -> Int {
            let maxAdded = tokens.map(\.id).max()
            if let maxAdded, maxAdded >= vocabulary.count || vocabulary.count == 0 { return maxAdded + 1 }
            return vocabulary.count
        }
        for t in configuration.addedTokens
        where !tokens.contains(where: { $0.content.utf8.elementsEqual(t.content.utf8) }) {
            tokens.append(t)
        }
        let named =
            [configuration.bosToken, configuration.eosToken, configuration.unkToken, configuration.padToken]
            .compactMap { $0 } + configuration.additionalSpecialTokens
        for spec in named where !tokens.contains(where: { $0.content.utf8.elementsEqual(spec.content.utf8) }) {
            let id = vocabulary.id(spec.content) ?? nextID()
            tokens.append(
                AddedToken(
                    content: spec.content, id: id, special: true, lstrip: spec.lstrip, rstrip: spec.rstrip,
                    singleWord: spec.singleWord, normalized: spec.normalized))
        }
        return tokens
    }

    static func vocabulary(
        _ members: [(key: String, value: JSONValue)], path: String
    ) throws(TokenizerError) -> Vocabulary {
        var entries: [(TokenBytes, Int)] = []
        entries.reserveCapacity(members.count)
        for (token, value) in members {
            guard case .number = value else { continue }  // the crate skips non-numbers
            guard let id = value.int, id >= 0, id < Int(Int32.max) else {
                throw .invalidFile(path: path, reason: "the id of '\(token)' is not a non-negative integer")
            }
            entries.append((TokenBytes(token), id))
        }
        guard !entries.isEmpty else { throw .invalidFile(path: path, reason: "the vocabulary is empty") }
        return Vocabulary(entries)
    }

    /// One merges.txt line: exactly two tokens separated by one space, as the crate requires.
    static func mergePair(_ line: String, index: Int, path: String) throws(TokenizerError) -> (TokenBytes, TokenBytes) {
        let bytes = Array(line.utf8)
        guard let space = bytes.firstIndex(of: 0x20), !bytes[(space + 1)...].contains(0x20) else {
            throw .badMergeLine(path: path, line: index, text: line)
        }
        return (TokenBytes(Array(bytes[..<space])), TokenBytes(Array(bytes[(space + 1)...])))
    }

    /// merges.txt: one merge per line; lines starting with `#version` are skipped.
    static func readMerges(_ path: String) throws(TokenizerError) -> [(TokenBytes, TokenBytes)] {
        let bytes = try readBytes(path)
        guard String(validating: bytes, as: UTF8.self) != nil else {
            throw .invalidFile(path: path, reason: "the file is not UTF-8 text")
        }
        var lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: false)
        if lines.last?.isEmpty == true { lines.removeLast() }
        var merges: [(TokenBytes, TokenBytes)] = []
        merges.reserveCapacity(lines.count)
        var rank = 0
        for raw in lines {
            var line = raw
            if line.last == 0x0D { line = line.dropLast() }
            if line.starts(with: Array("#version".utf8)) { continue }
            rank += 1
            let text = String(decoding: line, as: UTF8.self)
            merges.append(try mergePair(text, index: rank, path: path))
        }
        return merges
    }
}
