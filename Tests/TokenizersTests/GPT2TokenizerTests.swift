import Foundation
import Tokenizers
import XCTest

/// The GPT-2-style byte-level BPE against Hugging Face `tokenizers` / transformers.
final class GPT2TokenizerTests: XCTestCase {
    func testTokenizerJSONMatchesReferenceOnEveryString() throws {
        let tokenizer = try PreTrainedTokenizer(
            tokenizerJSON: Fixtures.directory("gpt2/tokenizer.json"),
            configuration: TokenizerConfiguration(path: Fixtures.directory("gpt2/tokenizer_config.json")))
        let expected = try Expected("gpt2/expected.json")
        XCTAssertGreaterThanOrEqual(assertParity(tokenizer, expected), 300)
        XCTAssertEqual(tokenizer.vocabularySize, expected.vocabularySize)
        assertTokenDecodes(tokenizer, expected)
    }

    func testVocabAndMergesFilesMatchReferenceOnEveryString() throws {
        let tokenizer = try PreTrainedTokenizer(
            vocabJSON: Fixtures.directory("gpt2/vocab.json"), mergesTXT: Fixtures.directory("gpt2/merges.txt"),
            configuration: TokenizerConfiguration(path: Fixtures.directory("gpt2/tokenizer_config.json")))
        let expected = try Expected("gpt2/expected.json")
        assertParity(tokenizer, expected)
        XCTAssertEqual(tokenizer.vocabularySize, expected.vocabularySize)
        assertTokenDecodes(tokenizer, expected)
    }

    func testVariantWithPrefixSpaceLegacyMergesAndFlaggedAddedTokensMatchesReference() throws {
        let tokenizer = try PreTrainedTokenizer(tokenizerJSON: Fixtures.directory("gpt2-variant/tokenizer.json"))
        let expected = try Expected("gpt2-variant/expected.json")
        assertParity(tokenizer, expected)
        XCTAssertEqual(tokenizer.vocabularySize, expected.vocabularySize)
        assertTokenDecodes(tokenizer, expected)
    }

    func testLlama3LayoutWithRegexFallbackAndIgnoreMergesMatchesReference() throws {
        let tokenizer = try PreTrainedTokenizer(tokenizerJSON: Fixtures.directory("gpt2-llama3/tokenizer.json"))
        assertParity(tokenizer, try Expected("gpt2-llama3/expected.json"))
    }

    func testLoaderPicksTokenizerJSONAndReadsSpecialTokens() throws {
        let tokenizer = try loadTokenizer(directory: Fixtures.directory("gpt2"))
        XCTAssertTrue(tokenizer is PreTrainedTokenizer)
        let eot = tokenizer.tokenID("<|endoftext|>")
        XCTAssertNotNil(eot)
        XCTAssertEqual(tokenizer.specialTokens.eos, eot)
        XCTAssertEqual(tokenizer.specialTokens.bos, eot)
        XCTAssertEqual(tokenizer.encode("a<|endoftext|>b", addSpecialTokens: false).filter { $0 == eot }.count, 1)
        XCTAssertEqual(tokenizer.token(eot!), "<|endoftext|>")
    }

    func testEmojiRoundTripsThroughEncodeAndDecode() throws {
        let tokenizer = try loadTokenizer(directory: Fixtures.directory("gpt2"))
        for text in ["x 🤗", "🤗", "👩‍👩‍👧‍👦 family", "🇫🇷", "e\u{301}"] {
            XCTAssertTrue(sameBytes(tokenizer.decode(tokenizer.encode(text)), text), visible(text))
        }
    }
}

/// One tokenizer shared by threads gives the same ids as used alone (the word cache is lent to one at a time).
final class TokenizerConcurrencyTests: XCTestCase {
    func testConcurrentEncodesMatchSerialEncodes() throws {
        let tokenizer = try loadTokenizer(directory: Fixtures.directory("gpt2"))
        let corpus = Fixtures.corpus
        let serial = corpus.map { tokenizer.encode($0) }
        let results = Results(count: corpus.count)
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            for (i, text) in corpus.enumerated() where i % 8 == worker || i % 3 == 0 {
                results.set(i, tokenizer.encode(text))
            }
        }
        XCTAssertEqual(results.values, serial)
    }

    /// Per-index results written from several threads. Invariant: every access holds `lock`.
    final class Results: @unchecked Sendable {
        private let lock = NSLock()
        private var stored: [[Int]]
        init(count: Int) { stored = Array(repeating: [], count: count) }
        func set(_ i: Int, _ ids: [Int]) { lock.withLock { stored[i] = ids } }
        var values: [[Int]] { lock.withLock { stored } }
    }
}
