import Foundation
import Tokenizers
import XCTest

/// Loading: which files are used, and clear errors for files that cannot be.
final class TokenizerFilesTests: XCTestCase {
    var directory: String!

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "tokenizer-files-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func write(_ name: String, _ text: String) throws {
        try text.write(toFile: directory + "/" + name, atomically: true, encoding: .utf8)
    }

    private func tokenizerJSON(
        vocab: String, merges: String, model: String = #""type": "BPE""#, extra: String = ""
    ) -> String {
        """
        {"version": "1.0", "added_tokens": [], "normalizer": null, "pre_tokenizer": null, "post_processor": null,
         "decoder": null, \(extra) "model": {\(model), "vocab": \(vocab), "merges": \(merges)}}
        """
    }

    private func assertError(
        _ expected: (TokenizerError) -> Bool, _ body: () throws -> Void, file: StaticString = #filePath,
        line: UInt = #line
    ) {
        do {
            try body()
            XCTFail("no error", file: file, line: line)
        } catch let error as TokenizerError {
            XCTAssertTrue(expected(error), "unexpected error: \(error)", file: file, line: line)
            XCTAssertFalse(error.description.isEmpty)
        } catch {
            XCTFail("not a TokenizerError: \(error)", file: file, line: line)
        }
    }

    func testMissingDirectoryAndMissingFilesAreReported() throws {
        assertError({ if case .missingFiles = $0 { true } else { false } }) {
            _ = try loadTokenizer(directory: directory + "/nope")
        }
        assertError({ if case .missingFiles = $0 { true } else { false } }) {
            _ = try loadTokenizer(directory: directory)
        }
        try write("tokenizer.model", "binary")
        assertError({ e in if case .missingFiles(_, let reason) = e { reason.contains("tokenizer.json") } else { false }
            }) {
                _ = try loadTokenizer(directory: directory)
            }
    }

    func testInvalidJSONNamesTheFileAndTheOffset() throws {
        try write("tokenizer.json", #"{"model": {"type": "BPE", "vocab": {"a": 0,}}}"#)
        assertError({ e in
            if case .invalidJSON(let path, let reason) = e {
                path.hasSuffix("tokenizer.json") && reason.contains("byte")
            } else {
                false
            }
        }) {
            _ = try loadTokenizer(directory: directory)
        }
    }

    func testUnsupportedModelAndStagesAreNamed() throws {
        try write("tokenizer.json", tokenizerJSON(vocab: "[[\"a\", 0.0]]", merges: "[]", model: #""type": "Unigram""#))
        assertError({ e in if case .unsupported(_, let feature) = e { feature.contains("Unigram") } else { false } }) {
            _ = try loadTokenizer(directory: directory)
        }
        try write(
            "tokenizer.json",
            tokenizerJSON(
                vocab: #"{"a": 0}"#, merges: "[]",
                extra: #""normalizer": {"type": "BertNormalizer"},"#
                    .replacingOccurrences(of: "\"normalizer\"", with: "\"normalizer\"")))
        // The later "normalizer" key is ignored by lookups of the first; write a clean file instead.
        try write(
            "tokenizer.json",
            """
            {"normalizer": {"type": "BertNormalizer"}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}
            """)
        assertError({ e in
            if case .unsupported(_, let feature) = e { feature.contains("BertNormalizer") } else { false }
        }) {
            _ = try loadTokenizer(directory: directory)
        }
    }

    func testMergeOfTokensOutsideTheVocabularyIsRejected() throws {
        try write("tokenizer.json", tokenizerJSON(vocab: #"{"a": 0, "b": 1}"#, merges: #"["a b"]"#))
        assertError({ e in if case .mergeTokenNotInVocabulary(_, let token) = e { token == "ab" } else { false } }) {
            _ = try loadTokenizer(directory: directory)
        }
        try write("tokenizer.json", tokenizerJSON(vocab: #"{"a": 0, "ab": 1}"#, merges: #"[["a", "c"]]"#))
        assertError({ e in if case .mergeTokenNotInVocabulary(_, let token) = e { token == "c" } else { false } }) {
            _ = try loadTokenizer(directory: directory)
        }
    }

    func testMergeLinesNeedExactlyOneSpace() throws {
        try write("vocab.json", #"{"a": 0, "b": 1, "c": 2, "ab": 3}"#)
        try write("merges.txt", "#version: 0.2\na b\na b c\n")
        assertError({ e in
            if case .badMergeLine(_, let line, let text) = e { line == 2 && text == "a b c" } else { false }
        }) {
            _ = try loadTokenizer(directory: directory)
        }
        try write("merges.txt", "#version: 0.2\na b\r\n")
        XCTAssertNoThrow(try loadTokenizer(directory: directory))
    }

    func testVocabularyMustBeAnObject() throws {
        try write("vocab.json", #"["a", "b"]"#)
        try write("merges.txt", "")
        assertError({ if case .invalidFile = $0 { true } else { false } }) {
            _ = try loadTokenizer(directory: directory)
        }
    }

    func testCanonicallyEquivalentTokensKeepTheirOwnIDs() throws {
        // "à" as one scalar and as a + combining grave: Swift's String calls them equal, the vocabulary must not.
        let vocab = #"{"\u00e0": 0, "a\u0300": 1, "a": 2, "\u0300": 3}"#
        try write("tokenizer.json", tokenizerJSON(vocab: vocab, merges: #"["a \u0300"]"#))
        let tokenizer = try loadTokenizer(directory: directory)
        XCTAssertEqual(tokenizer.encode("\u{E0}", addSpecialTokens: false), [0])
        XCTAssertEqual(tokenizer.encode("a\u{300}", addSpecialTokens: false), [1])
        XCTAssertEqual(tokenizer.tokenID("\u{E0}"), 0)
        XCTAssertEqual(tokenizer.tokenID("a\u{300}"), 1)
        // Without a decoder the tokens are joined with spaces, as in the Rust crate.
        XCTAssertEqual(Array(tokenizer.decode([1, 0]).unicodeScalars.map(\.value)), [0x61, 0x300, 0x20, 0xE0])
        XCTAssertEqual(tokenizer.vocabularySize, 4)
    }

    func testJSONParserKeepsEscapesAndOrder() throws {
        let value = try JSONValue.parse(
            Array(#"{"b": [1, -2.5e1, true, null], "a": "\u00e9\ud83e\udd17\n\"x\""}"#.utf8))
        XCTAssertEqual(value.members?.map(\.key), ["b", "a"])
        XCTAssertEqual(value["a"]?.string, "é🤗\n\"x\"")
        XCTAssertEqual(value["b"]?.array?[1], .number(-25))
        XCTAssertThrowsError(try JSONValue.parse(Array(#"{"a": "\ud83e"}"#.utf8)))
        XCTAssertThrowsError(try JSONValue.parse(Array("[1, 2".utf8)))
        XCTAssertThrowsError(try JSONValue.parse(Array("{} x".utf8)))
    }
}
