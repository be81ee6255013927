import Foundation
import Tokenizers
import XCTest

/// The parity fixtures made by `Scripts/make_tokenizer_fixtures.py` (Tests/Fixtures/tokenizers).
enum Fixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/tokenizers").path

    static func directory(_ name: String) -> String { root + "/" + name }

    static func json(_ relativePath: String) throws -> JSONValue {
        let data = try Data(contentsOf: URL(fileURLWithPath: root + "/" + relativePath))
        return try JSONValue.parse([UInt8](data))
    }

    /// The test strings, in fixture order.
    static let corpus: [String] = {
        (try? json("corpus.json"))?["strings"]?.array?.compactMap(\.string) ?? []
    }()
}

/// What a reference produced for one string.
struct ExpectedCase {
    var ids: [Int]
    var plain: [Int]
    var text: String
    var textSkip: String
}

/// One `expected*.json`.
struct Expected {
    var name: String
    var vocabularySize: Int
    var cases: [ExpectedCase]
    var tokenDecodes: [String]
    var tokenDecodeStep: Int
    var json: JSONValue

    init(_ relativePath: String) throws {
        json = try Fixtures.json(relativePath)
        name = json["name"]?.string ?? relativePath
        vocabularySize = json["vocab_size"]?.int ?? 0
        tokenDecodes = json["token_decodes"]?.array?.compactMap(\.string) ?? []
        tokenDecodeStep = json["token_decode_step"]?.int ?? 1
        cases = (json["cases"]?.array ?? []).map { c in
            ExpectedCase(
                ids: c["ids"]?.array?.compactMap(\.int) ?? [], plain: c["plain"]?.array?.compactMap(\.int) ?? [],
                text: c["text"]?.string ?? "", textSkip: c["text_skip"]?.string ?? "")
        }
    }

    /// Integer lists under `key` (e.g. "context" → "77").
    func intLists(_ key: String, _ subkey: String) -> [[Int]] {
        (json[key]?[subkey]?.array ?? []).map { $0.array?.compactMap(\.int) ?? [] }
    }

    func ints(_ key: String) -> [Int] { json[key]?.array?.compactMap(\.int) ?? [] }
}

/// Visible form of a string for failure messages.
func visible(_ s: String) -> String {
    let escaped = s.unicodeScalars.map {
        $0.isASCII && $0.value >= 0x20 ? String($0) : "\\u{\(String($0.value, radix: 16))}"
    }
    .joined()
    return escaped.count > 120 ? String(escaped.prefix(120)) + "…" : escaped
}

/// Byte-exact string equality (Swift's `==` would accept canonically equivalent text).
func sameBytes(_ a: String, _ b: String) -> Bool { a.utf8.elementsEqual(b.utf8) }

/// Checks every corpus string: ids with and without special tokens, and both decodes, byte for byte.
/// Returns the number of strings checked.
@discardableResult
func assertParity(
    _ tokenizer: any Tokenizer, _ expected: Expected, skipping: Set<Int> = [], checkDecode: Bool = true,
    file: StaticString = #filePath, line: UInt = #line
) -> Int {
    let corpus = Fixtures.corpus
    XCTAssertEqual(corpus.count, expected.cases.count, "corpus and \(expected.name) disagree", file: file, line: line)
    var failures: [String] = []
    var checked = 0
    for (i, text) in corpus.enumerated() where !skipping.contains(i) && i < expected.cases.count {
        checked += 1
        let want = expected.cases[i]
        let ids = tokenizer.encode(text, addSpecialTokens: true)
        let plain = tokenizer.encode(text, addSpecialTokens: false)
        if ids != want.ids { failures.append("#\(i) \"\(visible(text))\": ids \(ids) ≠ \(want.ids)") }
        if plain != want.plain { failures.append("#\(i) \"\(visible(text))\": plain ids \(plain) ≠ \(want.plain)") }
        guard checkDecode else { continue }
        let decoded = tokenizer.decode(want.ids, skipSpecialTokens: false)
        if !sameBytes(decoded, want.text) {
            failures.append("#\(i) \"\(visible(text))\": decode \"\(visible(decoded))\" ≠ \"\(visible(want.text))\"")
        }
        let skipped = tokenizer.decode(want.ids, skipSpecialTokens: true)
        if !sameBytes(skipped, want.textSkip) {
            let got = visible(skipped)
            let expectedText = visible(want.textSkip)
            failures.append("#\(i) \"\(visible(text))\": decode (skip special) \"\(got)\" ≠ \"\(expectedText)\"")
        }
    }
    for f in failures.prefix(12) { XCTFail("\(expected.name): \(f)", file: file, line: line) }
    XCTAssertTrue(
        failures.isEmpty, "\(expected.name): \(failures.count) mismatches over \(checked) strings", file: file,
        line: line)
    return checked
}

/// Checks the decode of single ids (every `tokenDecodeStep`-th id).
func assertTokenDecodes(
    _ tokenizer: any Tokenizer, _ expected: Expected, file: StaticString = #filePath, line: UInt = #line
) {
    var failures: [String] = []
    for (k, want) in expected.tokenDecodes.enumerated() {
        let id = k * expected.tokenDecodeStep
        let got = tokenizer.decode([id], skipSpecialTokens: false)
        if !sameBytes(got, want) { failures.append("id \(id): \"\(visible(got))\" ≠ \"\(visible(want))\"") }
    }
    for f in failures.prefix(8) { XCTFail("\(expected.name): \(f)", file: file, line: line) }
    XCTAssertTrue(
        failures.isEmpty, "\(expected.name): \(failures.count) single-id decodes differ", file: file, line: line)
}
