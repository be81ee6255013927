import Tokenizers
import XCTest

/// Ids one at a time → text: equal to the full decode at every prefix, never half a character.
final class StreamingDetokenizerTests: XCTestCase {
    static let directories = [
        "gpt2", "gpt2-variant", "gpt2-llama3", "clip", "clip-openai", "llama", "llama-legacy", "llama-split",
    ]

    /// At every prefix the emitted text is the start of the final text (nothing emitted is ever taken back,
    /// so no U+FFFD appears that the full decode does not have), and equals the prefix's own decode whenever
    /// that decode ends on a whole character and its last token is not a byte-fallback token (a run of those
    /// is held: the next byte could turn it all into U+FFFD); after `finish()` it equals the full decode.
    func testStreamEqualsFullDecodeAtEveryPrefixForEveryTokenizerAndString() throws {
        for directory in Self.directories {
            let tokenizer = try loadTokenizer(directory: Fixtures.directory(directory))
            var failures: [String] = []
            var boundaries = 0
            for skip in [false, true] {
                for text in Fixtures.corpus {
                    let ids = tokenizer.encode(text, addSpecialTokens: true)
                    let final = Array(tokenizer.decode(ids, skipSpecialTokens: skip).utf8)
                    var stream = tokenizer.streamingDetokenizer(skipSpecialTokens: skip)
                    var emitted: [UInt8] = []
                    for k in 0..<ids.count {
                        emitted += Array(stream.append(ids[k]).utf8)
                        var show: String { visible(String(decoding: emitted, as: UTF8.self)) }
                        if !final.starts(with: emitted) {
                            failures.append(
                                "\(visible(text)) after \(k + 1) ids: \"\(show)\" is not how the text starts")
                            break
                        }
                        guard ids.count <= 256 else { continue }  // the check below is quadratic
                        let prefix = tokenizer.decode(Array(ids[0...k]), skipSpecialTokens: skip)
                        let byteToken = tokenizer.token(ids[k]).map { $0.count == 6 && $0.hasPrefix("<0x") } ?? false
                        if !prefix.hasSuffix("\u{FFFD}") && !byteToken {
                            boundaries += 1
                            if !prefix.utf8.elementsEqual(emitted) {
                                failures.append(
                                    "\(visible(text)) after \(k + 1) ids: \"\(show)\" ≠ \"\(visible(prefix))\"")
                                break
                            }
                        }
                    }
                    emitted += Array(stream.finish().utf8)
                    if emitted != final {
                        let got = visible(String(decoding: emitted, as: UTF8.self))
                        failures.append("\(visible(text)): stream \"\(got)\" ≠ decode")
                    }
                }
            }
            for f in failures.prefix(6) { XCTFail("\(directory): \(f)") }
            XCTAssertTrue(failures.isEmpty, "\(directory): \(failures.count) failures")
            XCTAssertGreaterThan(boundaries, 9_000, directory)  // llama: 9,920 (prefixes ending on byte tokens are not counted)
        }
    }

    func testEmojiSplitAcrossByteLevelTokensIsEmittedWhole() throws {
        let tokenizer = try loadTokenizer(directory: Fixtures.directory("gpt2"))
        let ids = tokenizer.encode("x 🫠!", addSpecialTokens: false)
        XCTAssertGreaterThan(ids.count, 3, "the emoji is not in the vocabulary, so it spans several tokens")
        var stream = tokenizer.streamingDetokenizer()
        let chunks = ids.map { stream.append($0) }
        XCTAssertTrue(chunks.allSatisfy { !$0.contains("\u{FFFD}") })
        XCTAssertEqual(chunks.joined() + stream.finish(), "x 🫠!")
        XCTAssertTrue(chunks.contains { $0.hasSuffix("🫠") || $0 == "🫠" || $0.contains("🫠") })
    }

    func testByteFallbackTokensAreHeldUntilTheCharacterCompletes() throws {
        let tokenizer = try loadTokenizer(directory: Fixtures.directory("llama"))
        let ids = tokenizer.encode("a 🫠", addSpecialTokens: false)
        var stream = tokenizer.streamingDetokenizer()
        var chunks: [String] = []
        for id in ids { chunks.append(stream.append(id)) }
        let byteTokens = ids.filter { tokenizer.token($0)?.hasPrefix("<0x") ?? false }
        XCTAssertEqual(byteTokens.count, 4)
        XCTAssertEqual(Array(chunks.suffix(4)), ["", "", "", ""], "a run of byte tokens emits nothing until it ends")
        XCTAssertEqual(chunks.joined() + stream.finish(), "a 🫠")
        XCTAssertEqual(stream.text, "a 🫠")
    }

    /// The byte-fallback decoder turns a run of byte tokens that is not valid UTF-8 into one U+FFFD per byte,
    /// an ASCII byte included: a stream that had shown "{" could not take it back.
    func testAnInvalidRunOfByteTokensStreamsAsTheFullDecodeHasIt() throws {
        let tokenizer = try loadTokenizer(directory: Fixtures.directory("llama"))
        let ids = try ["▁a", "<0x7B>", "<0x83>", "▁a"].map { try XCTUnwrap(tokenizer.tokenID($0), $0) }
        var stream = tokenizer.streamingDetokenizer()
        let streamed = ids.map { stream.append($0) }.joined() + stream.finish()
        XCTAssertEqual(streamed, tokenizer.decode(ids))
        XCTAssertTrue(streamed.contains("\u{FFFD}\u{FFFD}"), streamed)
    }

    func testFinishFlushesAnIncompleteCharacterAsReplacement() throws {
        let tokenizer = try loadTokenizer(directory: Fixtures.directory("llama"))
        guard let f0 = tokenizer.tokenID("<0xF0>") else { return XCTFail("no <0xF0> token") }
        var stream = tokenizer.streamingDetokenizer()
        XCTAssertEqual(stream.append(tokenizer.tokenID("▁a") ?? 1), stream.text)
        XCTAssertEqual(stream.append(f0), "")
        XCTAssertEqual(stream.finish(), "\u{FFFD}")
    }
}
