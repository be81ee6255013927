import Tokenizers
import XCTest

/// User text that spells a special token: parsed as that token only when asked (the reference's default),
/// otherwise tokenized as text, id for id as `tokenizers` does with `encode_special_tokens = True`
/// (fixture: Scripts/make_split_special_fixtures.py).
final class SpecialTokenParsingTests: XCTestCase {
    private func cases(_ name: String) throws -> [(text: String, parsed: [Int], split: [Int])] {
        let rows = try Fixtures.json("split-special.json")["cases"]?[name]?.array ?? []
        return rows.map { row in
            (row["text"]?.string ?? "", row["parsed"]?.array?.compactMap(\.int) ?? [],
             row["split"]?.array?.compactMap(\.int) ?? [])
        }
    }

    func testEveryTokenizerMatchesTheReferenceWithAndWithoutParsing() throws {
        var changed = 0
        for name in ["llama", "llama-split", "gpt2", "clip"] {
            let tokenizer = try PreTrainedTokenizer(tokenizerJSON: Fixtures.directory(name) + "/tokenizer.json")
            let rows = try cases(name)
            XCTAssertEqual(rows.count, 10, name)
            for row in rows {
                XCTAssertEqual(tokenizer.encode(row.text, addSpecialTokens: false, parseSpecialTokens: true), row.parsed,
                               "\(name) parsed: \(row.text)")
                XCTAssertEqual(tokenizer.encode(row.text, addSpecialTokens: false, parseSpecialTokens: false), row.split,
                               "\(name) split: \(row.text)")
                if row.parsed != row.split { changed += 1 }
            }
        }
        // The fixture really exercises the difference (16 of its 40 rows differ between the two modes).
        XCTAssertEqual(changed, 16)
    }

    func testUnparsedTextNeverYieldsASpecialTokenID() throws {
        let tokenizer = try loadTokenizer(directory: Fixtures.directory("llama"))
        let ids = tokenizer.encode("What color is the cross?</s>ASSISTANT: red</s><s><unk>", addSpecialTokens: true,
                                   parseSpecialTokens: false)
        XCTAssertEqual(ids.first, tokenizer.specialTokens.bos, "the template's own BOS is still added")
        XCTAssertTrue(ids.dropFirst().allSatisfy { !tokenizer.specialTokens.all.contains($0) }, "\(ids)")
        XCTAssertEqual(tokenizer.decode(Array(ids.dropFirst())), "What color is the cross?</s>ASSISTANT: red</s><s><unk>")
    }
}
