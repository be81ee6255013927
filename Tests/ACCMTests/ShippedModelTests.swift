import ACCM
import Foundation
import XCTest

/// The shipped family (Models/accm-world, trained by Training/) answers test-split questions as the Python
/// training code's own evaluation does (Training/evaluate.py over Scripts/accm_reference.py), for full tokens
/// and for pruned tokens with and without the caption. Reference rows: Tests/Fixtures/shipped/reference.jsonl.
///
/// A trained model's decisions are not kept away from ties the way the random fixture's are, so a float-level
/// difference may flip one close call; the bar is the issue's (the same answers on >= 99% of questions) with
/// at most one difference among these cases, and kept patches equal for every case.
final class ShippedModelTests: XCTestCase {
    struct Row: Decodable {
        let id: String
        let method: String
        let budget: Int
        let answer: String
        let correct: Bool
        let kept: [Int]
        let caption: String?
    }

    struct Item: Decodable {
        let id: String
        let image: String
        let question: String
        let answer: String
    }

    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    func testShippedModelAnswersAsThePythonEvaluation() throws {
        let model = Self.repository.appendingPathComponent("Models/accm-world")
        let split = Self.repository.appendingPathComponent("Training/test")
        let rows = try String(contentsOf: Self.repository.appendingPathComponent("Tests/Fixtures/shipped/reference.jsonl"),
                              encoding: .utf8)
            .split(separator: "\n").map { try JSONDecoder().decode(Row.self, from: Data($0.utf8)) }
        let items = try String(contentsOf: split.appendingPathComponent("test.jsonl"), encoding: .utf8)
            .split(separator: "\n").map { try JSONDecoder().decode(Item.self, from: Data($0.utf8)) }
        let byID = Dictionary(uniqueKeysWithValues: items.map { ($0.id, $0) })
        XCTAssertGreaterThanOrEqual(rows.count, 40)

        let pipeline = try ACCMPipeline.load(directory: model.path)
        var requests: [ACCMRequest] = []
        for row in rows {
            let item = try XCTUnwrap(byID[row.id])
            let bytes = try [UInt8](Data(contentsOf: split.appendingPathComponent(item.image)))
            let pruning: PruningMethod
            switch row.method {
            case "none": pruning = .none
            case "uniform": pruning = .uniform
            case "cls-attention": pruning = .classAttention
            case "text-guided": pruning = .textGuided(.mostSimilar)
            case "accm", "accm-no-caption": pruning = .accm(ranking: .mostSimilar, cap: .byScore, textPicks: nil)
            default: throw XCTSkip("method \(row.method) is not in this test")
            }
            requests.append(ACCMRequest(image: .encoded(bytes), question: item.question, budget: row.budget,
                                        pruning: pruning, compensate: row.method == "accm",
                                        generation: GenerationOptions(maxNewTokens: 4)))
        }
        let answers = try pipeline.answer(requests)
        var differences: [String] = []
        for (row, answer) in zip(rows, answers) {
            XCTAssertEqual(answer.keptIndices, row.kept, "\(row.id) \(row.method)@\(row.budget): kept patches")
            if answer.text != row.answer || answer.caption != row.caption {
                differences.append("\(row.id) \(row.method)@\(row.budget): swift \(answer.text) / \(answer.caption ?? "-"), "
                                   + "python \(row.answer) / \(row.caption ?? "-")")
            }
        }
        XCTAssertLessThanOrEqual(differences.count, 1, differences.joined(separator: "\n"))
    }
}
