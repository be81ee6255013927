import Tokenizers
import XCTest

/// CLIP's tokenizer against transformers' CLIPTokenizer and OpenAI's SimpleTokenizer.
final class CLIPTokenizerTests: XCTestCase {
    func testTrainedTokenizerJSONMatchesTransformersOnEveryString() throws {
        let tokenizer = try loadTokenizer(directory: Fixtures.directory("clip"))
        XCTAssertTrue(tokenizer is CLIPTokenizer)
        let expected = try Expected("clip/expected.json")
        XCTAssertGreaterThanOrEqual(assertParity(tokenizer, expected), 300)
        XCTAssertEqual(tokenizer.vocabularySize, expected.vocabularySize)
        assertTokenDecodes(tokenizer, expected)
    }

    func testTrainedVocabAndMergesFilesMatchTransformersOnEveryString() throws {
        let base = try PreTrainedTokenizer(
            vocabJSON: Fixtures.directory("clip/vocab.json"), mergesTXT: Fixtures.directory("clip/merges.txt"),
            configuration: TokenizerConfiguration(path: Fixtures.directory("clip/tokenizer_config.json")))
        let expected = try Expected("clip/expected.json")
        assertParity(CLIPTokenizer(base), expected)
        assertTokenDecodes(CLIPTokenizer(base), expected)
    }

    func testRealVocabularyMatchesTransformersOnEveryString() throws {
        let tokenizer = try CLIPTokenizer(directory: Fixtures.directory("clip-openai"))
        let expected = try Expected("clip-openai/expected.json")
        XCTAssertEqual(tokenizer.vocabularySize, 49408)
        XCTAssertEqual(tokenizer.specialTokens.bos, 49406)
        XCTAssertEqual(tokenizer.specialTokens.eos, 49407)
        XCTAssertEqual(tokenizer.specialTokens.pad, 49407)
        assertParity(tokenizer, expected)
        assertTokenDecodes(tokenizer, expected)
    }

    func testRealVocabularyMatchesOpenAISimpleTokenizerExceptWhereFtfyRepairsMojibake() throws {
        let tokenizer = try CLIPTokenizer(directory: Fixtures.directory("clip-openai"), reference: .openAI)
        let expected = try Expected("clip-openai/expected-openai.json")
        let mojibake = Set(expected.ints("ftfy_encoding_fix"))
        XCTAssertEqual(mojibake.count, 1, "the corpus has one string that only ftfy's encoding repair fixes")
        let checked = assertParity(tokenizer, expected, skipping: mojibake)
        XCTAssertEqual(checked, Fixtures.corpus.count - mojibake.count)
    }

    func testContextLengthEncodingMatchesTransformersAt77And248() throws {
        for (directory, reference) in [("clip", CLIPTokenizer.Reference.huggingFace), ("clip-openai", .huggingFace)] {
            let tokenizer = try CLIPTokenizer(directory: Fixtures.directory(directory), reference: reference)
            let expected = try Expected("\(directory)/expected.json")
            let strings = expected.ints("context_strings")
            XCTAssertGreaterThan(strings.count, 20)
            for length in [77, 248] {
                let want = expected.intLists("context", String(length))
                XCTAssertEqual(want.count, strings.count)
                for (k, index) in strings.enumerated() {
                    let got = try tokenizer.encode(Fixtures.corpus[index], contextLength: length)
                    XCTAssertEqual(got, want[k], "\(directory) #\(index) at \(length)")
                }
            }
        }
    }

    func testContextLengthEncodingMatchesOpenAIClipTokenizeWithZeroPadding() throws {
        let tokenizer = try CLIPTokenizer(directory: Fixtures.directory("clip-openai"), reference: .openAI)
        let expected = try Expected("clip-openai/expected-openai.json")
        let mojibake = Set(expected.ints("ftfy_encoding_fix"))
        for length in [77, 248] {
            let want = expected.intLists("context", String(length))
            for (k, index) in expected.ints("context_strings").enumerated() where !mojibake.contains(index) {
                XCTAssertEqual(try tokenizer.encode(Fixtures.corpus[index], contextLength: length), want[k])
            }
        }
    }

    func testTruncationKeepsTheEndTokenLastAndPaddingUsesTheGivenID() throws {
        let tokenizer = try CLIPTokenizer(directory: Fixtures.directory("clip-openai"))
        let long = String(repeating: "a red square ", count: 100)
        let ids = try tokenizer.encode(long, contextLength: 77)
        XCTAssertEqual(ids.count, 77)
        XCTAssertEqual(ids.first, 49406)
        XCTAssertEqual(ids.last, 49407)
        XCTAssertEqual(Array(ids[1..<76]), Array(tokenizer.encode(long, addSpecialTokens: false).prefix(75)))

        let short = try tokenizer.encode("a photo of a cat", contextLength: 248, padID: 0)
        XCTAssertEqual(short.count, 248)
        let content = tokenizer.encode("a photo of a cat", addSpecialTokens: true)
        XCTAssertEqual(Array(short.prefix(content.count)), content)
        XCTAssertTrue(short.dropFirst(content.count).allSatisfy { $0 == 0 })
        XCTAssertTrue(
            try tokenizer.encode("a photo of a cat", contextLength: 77).dropFirst(content.count).allSatisfy {
                $0 == 49407
            })
        XCTAssertThrowsError(try tokenizer.encode("x", contextLength: 1))
    }

    func testUppercaseAndLowercaseTextGiveTheSameIDs() throws {
        let tokenizer = try CLIPTokenizer(directory: Fixtures.directory("clip-openai"))
        XCTAssertEqual(tokenizer.encode("A RED Square"), tokenizer.encode("a red square"))
        XCTAssertEqual(tokenizer.decode(tokenizer.encode("A red square."), skipSpecialTokens: true), "a red square .")
    }
}
