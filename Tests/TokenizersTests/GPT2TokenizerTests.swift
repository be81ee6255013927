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
