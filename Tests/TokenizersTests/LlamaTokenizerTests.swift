import Tokenizers
import XCTest

/// The LLaMA SentencePiece-BPE (byte fallback) in both tokenizer.json layouts, against `tokenizers`.
final class LlamaTokenizerTests: XCTestCase {
    func testMetaspaceLayoutMatchesReferenceOnEveryString() throws {
        let tokenizer = try loadTokenizer(directory: Fixtures.directory("llama"))
        let expected = try Expected("llama/expected.json")
        XCTAssertGreaterThanOrEqual(assertParity(tokenizer, expected), 300)
        XCTAssertEqual(tokenizer.vocabularySize, expected.vocabularySize)
        assertTokenDecodes(tokenizer, expected)
    }

    func testLegacyNormalizerLayoutMatchesReferenceOnEveryString() throws {
        let tokenizer = try loadTokenizer(directory: Fixtures.directory("llama-legacy"))
        let expected = try Expected("llama-legacy/expected.json")
        assertParity(tokenizer, expected)
        XCTAssertEqual(tokenizer.vocabularySize, expected.vocabularySize)
        assertTokenDecodes(tokenizer, expected)
    }

    func testSplittingMetaspaceLayoutMatchesReference() throws {
        let tokenizer = try PreTrainedTokenizer(tokenizerJSON: Fixtures.directory("llama-split/tokenizer.json"))
        assertParity(tokenizer, try Expected("llama-split/expected.json"))
    }

    func testSpecialTokensComeFromTheConfiguration() throws {
        let tokenizer = try loadTokenizer(directory: Fixtures.directory("llama"))
        XCTAssertEqual(tokenizer.specialTokens.bos, 1)
        XCTAssertEqual(tokenizer.specialTokens.eos, 2)
        XCTAssertEqual(tokenizer.specialTokens.unk, 0)
        XCTAssertEqual(tokenizer.tokenID("<image>"), 2000)
        XCTAssertTrue(tokenizer.specialTokens.all.isSuperset(of: [0, 1, 2, 2000, 2001, 2002]))
        let ids = tokenizer.encode("USER: <image>\nWhat is it?")
        XCTAssertEqual(ids.first, 1)
        XCTAssertEqual(ids.filter { $0 == 2000 }.count, 1)
    }

    func testAddEOSTokenFlagAddsTheEndToken() throws {
        var configuration = try TokenizerConfiguration(path: Fixtures.directory("llama/tokenizer_config.json"))
        configuration.addEOSToken = true
        let tokenizer = try PreTrainedTokenizer(
            tokenizerJSON: Fixtures.directory("llama/tokenizer.json"), configuration: configuration)
        let ids = tokenizer.encode("the red square")
        XCTAssertEqual(ids.first, 1)
        XCTAssertEqual(ids.last, 2)
        configuration.addBOSToken = false
        let noBOS = try PreTrainedTokenizer(
            tokenizerJSON: Fixtures.directory("llama/tokenizer.json"), configuration: configuration)
        XCTAssertEqual(noBOS.encode("the red square"), Array(ids.dropFirst()))
    }

    func testByteFallbackRoundTripsEmojiAtTheEnd() throws {
        let tokenizer = try loadTokenizer(directory: Fixtures.directory("llama"))
        let ids = tokenizer.encode("x 🫠", addSpecialTokens: false)
        let bytes = ids.compactMap { tokenizer.token($0) }.filter { $0.hasPrefix("<0x") }
        XCTAssertEqual(bytes.count, 4, "🫠 is not in the vocabulary: four byte tokens")
        XCTAssertEqual(tokenizer.decode(ids), "x 🫠")
        XCTAssertEqual(tokenizer.decode(tokenizer.encode("x 🤗"), skipSpecialTokens: true), "x 🤗")
    }

    func testCleanUpTokenizationSpacesMatchesTransformersRule() {
        XCTAssertEqual(cleanUpTokenizationSpaces("Hello , world ! I 'm here . Do n't"), "Hello, world! I'm here. Don't")
    }
}
