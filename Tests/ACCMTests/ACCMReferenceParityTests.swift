import ACCM
import Foundation
import XCTest

/// The whole pipeline against Scripts/accm_reference.py (transformers + the authors' ACCM code) on the tiny
/// random model directory Tests/Fixtures/accm/model (Scripts/make_accm_fixtures.py): every case goes in as
/// encoded PNG bytes through `ACCMPipeline.load(directory:)` and `answer`, so decoding, preprocessing (pad
/// mode), the four stages and the model-directory loader are all covered. The fixture keeps every
/// decision's margin above 1e-3 (recorded in reference.json), so ids must match exactly.
final class ACCMReferenceParityTests: XCTestCase {
    struct Reference: Decodable {
        let seed: Int
        let min_margin_required: Double
        let min_margins: [String: Double]
        let image_token_placeholder: Int
        let cases: [Case]
        let text_checks: [TextCheck]
    }

    struct Case: Decodable {
        let id: String
        let image: String
        let question: String
        let budget: Int
        let pruner: Pruner
        let compensate: Bool
        let max_new_tokens: Int
        let kept_indices: [Int]
        let candidates: [Candidate]
        let selector_scores: [Float]
        let chosen: Int?
        let caption: String?
        let prompt_ids: [Int]
        let answer_ids: [Int]
        let answer_text: String
        let finish: String
    }

    struct Candidate: Decodable {
        let ids: [Int]
        let text: String
        let beam_score: Float
        let stopped: Bool
    }

    struct Pruner: Decodable {
        let method: String
        let seed: UInt64?
        let ranking: String?
        let cap: String?
        let text_picks: Int?

        func pruningMethod() throws -> PruningMethod {
            let ranking = try XCTUnwrap(TextGuidedRanking(rawValue: self.ranking ?? "most-similar"))
            switch method {
            case "none": return .none
            case "random": return .random(seed: try XCTUnwrap(seed))
            case "uniform": return .uniform
            case "cls-attention": return .classAttention
            case "text-guided": return .textGuided(ranking)
            case "accm": return .accm(ranking: ranking, cap: try XCTUnwrap(CapPolicy(rawValue: cap ?? "")), textPicks: text_picks)
            default: throw XCTSkip("unknown pruner \(method)")
            }
        }
    }

    struct TextCheck: Decodable {
        let question: String
        let caption: String?
        let guiding_text: String
        let selector_text: String
        let prompt_ids: [Int]
    }

    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/accm")

    // One load for every test (the pipeline is immutable).
    nonisolated(unsafe) static var loaded: (ACCMPipeline, Reference)?

    func fixture() throws -> (ACCMPipeline, Reference) {
        if let loaded = Self.loaded { return loaded }
        let reference = try JSONDecoder().decode(
            Reference.self, from: Data(contentsOf: Self.root.appendingPathComponent("reference.json")))
        let pipeline = try ACCMPipeline.load(directory: Self.root.appendingPathComponent("model").path, parseSpecialTokens: true)
        Self.loaded = (pipeline, reference)
        return (pipeline, reference)
    }

    func request(_ c: Case) throws -> ACCMRequest {
        let bytes = try [UInt8](Data(contentsOf: Self.root.appendingPathComponent("images").appendingPathComponent(c.image)))
        return ACCMRequest(
            image: .encoded(bytes), question: c.question, budget: c.budget, pruning: try c.pruner.pruningMethod(),
            compensate: c.compensate, generation: GenerationOptions(maxNewTokens: c.max_new_tokens))
    }

    /// The decoder's prompt with one placeholder id per visual token (the reference's layout).
    func promptIDs(_ pipeline: ACCMPipeline, question: String, caption: String?, visualTokens: Int, placeholder: Int) -> [Int] {
        let segments = pipeline.decoder.promptSegments(question: question, caption: caption)
        return segments[0] + Array(repeating: placeholder, count: visualTokens) + segments[1...].flatMap { $0 }
    }

    func compare(_ answer: ACCMAnswer, _ c: Case, _ pipeline: ACCMPipeline, _ reference: Reference,
                 file: StaticString = #filePath, line: UInt = #line) {
        let id = c.id
        XCTAssertEqual(answer.keptIndices, c.kept_indices, "\(id): kept indices", file: file, line: line)
        XCTAssertEqual(answer.candidateTokens, c.candidates.map(\.ids), "\(id): candidate ids", file: file, line: line)
        XCTAssertEqual(answer.candidates.map(\.text), c.candidates.map(\.text), "\(id): candidate texts", file: file, line: line)
        if answer.candidates.count == c.candidates.count {
            for (got, want) in zip(answer.candidates, c.candidates) {
                XCTAssertEqual(got.beamScore, want.beam_score, accuracy: 1e-4, "\(id): beam score", file: file, line: line)
            }
            for (got, want) in zip(answer.candidates.map(\.selectorScore), c.selector_scores) {
                XCTAssertEqual(got, want, accuracy: 1e-4, "\(id): selector score", file: file, line: line)
            }
        }
        XCTAssertEqual(answer.chosenCandidate, c.chosen, "\(id): chosen candidate", file: file, line: line)
        XCTAssertEqual(answer.caption, c.caption, "\(id): caption", file: file, line: line)
        let prompt = promptIDs(pipeline, question: c.question, caption: answer.caption,
                               visualTokens: answer.keptIndices.count, placeholder: reference.image_token_placeholder)
        XCTAssertEqual(prompt, c.prompt_ids, "\(id): prompt ids", file: file, line: line)
        XCTAssertEqual(answer.promptTokens, c.prompt_ids.count, "\(id): prompt length", file: file, line: line)
        XCTAssertEqual(answer.tokens, c.answer_ids, "\(id): answer ids", file: file, line: line)
        XCTAssertEqual(answer.text, c.answer_text, "\(id): answer text", file: file, line: line)
        XCTAssertEqual(answer.finishReason.rawValue, c.finish, "\(id): finish reason", file: file, line: line)
    }

    func testTheFixtureKeepsEveryDecisionAwayFromATie() throws {
        let (_, reference) = try fixture()
        XCTAssertGreaterThanOrEqual(reference.cases.count, 20)
        XCTAssertEqual(Set(reference.min_margins.keys), [
            "attention_log", "iqr_relative", "text_distance", "beam_logprob", "beam_order", "selector", "greedy_logit",
        ])
        for (kind, margin) in reference.min_margins {
            XCTAssertGreaterThan(margin, reference.min_margin_required, kind)
        }
    }

    func testEveryCaseMatchesTheReference() throws {
        let (pipeline, reference) = try fixture()
        var beamError: Float = 0, selectorError: Float = 0
        for c in reference.cases {
            let answer = try pipeline.answer([request(c)])[0]
            compare(answer, c, pipeline, reference)
            for (got, want) in zip(answer.candidates, c.candidates) { beamError = max(beamError, abs(got.beamScore - want.beam_score)) }
            for (got, want) in zip(answer.candidates.map(\.selectorScore), c.selector_scores) {
                selectorError = max(selectorError, abs(got - want))
            }
        }
        print("ACCM parity: \(reference.cases.count) cases; largest |Δ| beam score \(beamError), selector score \(selectorError)")
    }

    func testOneBatchGivesTheSameAnswersAsOneAtATime() throws {
        let (pipeline, reference) = try fixture()
        let answers = try pipeline.answer(reference.cases.map(request))
        XCTAssertEqual(answers.count, reference.cases.count)
        for (answer, c) in zip(answers, reference.cases) {
            compare(answer, c, pipeline, reference)
        }
    }

    func testTextRulesMatchTheReference() throws {
        let (pipeline, reference) = try fixture()
        for check in reference.text_checks {
            let guide = ACCMPipeline.guidingText(check.question)
            XCTAssertEqual(guide.unicodeScalars.map(\.value), check.guiding_text.unicodeScalars.map(\.value), check.question)
            XCTAssertEqual(SelectorStage.selectorText(question: guide, candidate: check.caption ?? ""), check.selector_text)
            XCTAssertEqual(
                promptIDs(pipeline, question: check.question, caption: check.caption, visualTokens: 1,
                          placeholder: reference.image_token_placeholder),
                check.prompt_ids, check.question)
        }
    }
}
