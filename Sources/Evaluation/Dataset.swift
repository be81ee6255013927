// The evaluation split: one JSON object per line (Training/README.md), the fields evaluation reads.

import Foundation

/// One question of the split.
public struct EvalItem: Sendable, Equatable, Decodable {
    public var id: String
    /// The image, relative to the data directory ("images/00000.png").
    public var image: String
    public var kind: String
    public var question: String
    public var answer: String

    public init(id: String, image: String, kind: String, question: String, answer: String) {
        self.id = id
        self.image = image
        self.kind = kind
        self.question = question
        self.answer = answer
    }
}

/// The questions of a split and the lines that could not be read.
public struct EvalDataset: Sendable {
    public var items: [EvalItem]
    /// "line N: why" for every malformed line (blank lines are not counted).
    public var problems: [String]

    /// Parses `text` (JSON Lines); keeps at most `limit` valid items.
    public static func parse(_ text: String, limit: Int? = nil) -> EvalDataset {
        var items: [EvalItem] = []
        var problems: [String] = []
        let decoder = JSONDecoder()
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if let limit, items.count >= limit { break }
            let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty { continue }
            do {
                let item = try decoder.decode(EvalItem.self, from: Data(trimmed.utf8))
                guard !item.answer.isEmpty, !item.question.isEmpty else {
                    problems.append("line \(index + 1): empty question or answer")
                    continue
                }
                items.append(item)
            } catch {
                problems.append("line \(index + 1): \(Self.explain(error))")
            }
        }
        return EvalDataset(items: items, problems: problems)
    }

    /// Reads `directory/test.jsonl`.
    public static func load(directory: String, limit: Int? = nil) throws -> EvalDataset {
        let path = directory + "/test.jsonl"
        guard let data = FileManager.default.contents(atPath: path) else {
            throw EvaluationError("cannot read \(path) (missing or unreadable)")
        }
        return parse(String(decoding: data, as: UTF8.self), limit: limit)
    }

    private static func explain(_ error: Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): "missing field '\(key.stringValue)'"
        case DecodingError.typeMismatch(_, let context): "wrong type for '\(context.codingPath.map(\.stringValue).joined(separator: "."))'"
        case DecodingError.valueNotFound(_, let context): "null '\(context.codingPath.map(\.stringValue).joined(separator: "."))'"
        default: "not a JSON object"
        }
    }
}

/// Encoded image bytes, each file read once.
public final class ImageCache {
    public let directory: String
    private var bytes: [String: [UInt8]] = [:]

    public init(directory: String) { self.directory = directory }

    public func bytes(for relativePath: String) throws -> [UInt8] {
        if let cached = bytes[relativePath] { return cached }
        let path = directory + "/" + relativePath
        guard let data = FileManager.default.contents(atPath: path) else {
            throw EvaluationError("cannot read the image \(path) (missing or unreadable)")
        }
        let loaded = [UInt8](data)
        bytes[relativePath] = loaded
        return loaded
    }

    /// Files read so far.
    public var count: Int { bytes.count }
}

/// A failure of the evaluation's own, with a one-line message.
public struct EvaluationError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ message: String) { description = message }
}
