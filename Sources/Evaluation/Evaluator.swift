// Runs every cell of a plan over the split, in batches, and tallies the answers. A question whose image
// cannot be read or whose request is refused (`ACCMPipeline.admit`) is skipped, named, and counted in its
// cell; a strict run stops on it instead.

import ACCM

/// A question left out of a cell, and why.
public struct SkippedQuestion: Sendable, Equatable {
    public var cell: EvalCell
    public var id: String
    /// The image file, relative to the data directory.
    public var image: String
    public var reason: String
}

public struct Evaluator {
    /// Answers a batch of admitted requests (the pipeline's `answer`, or a stand-in in tests).
    public var answer: ([ACCMRequest]) throws -> [ACCMAnswer]
    /// Checks one request and prepares its image (the pipeline's `admit`); throws to skip it.
    public var admit: (ACCMRequest) throws -> ACCMRequest
    public var patchCount: Int
    /// What an answer would cost at the real system's shapes (see `ReferenceShapes`), when known.
    public var referenceFLOPs: ((ACCMRequest, ACCMAnswer) -> Double)?

    public init(patchCount: Int, referenceFLOPs: ((ACCMRequest, ACCMAnswer) -> Double)? = nil,
                admit: @escaping (ACCMRequest) throws -> ACCMRequest = { $0 },
                answer: @escaping ([ACCMRequest]) throws -> [ACCMAnswer]) {
        self.patchCount = patchCount
        self.referenceFLOPs = referenceFLOPs
        self.admit = admit
        self.answer = answer
    }

    public init(pipeline: ACCMPipeline) throws {
        let shapes = try ReferenceShapes.llava15()
        self.init(patchCount: pipeline.vision.patchCount, referenceFLOPs: { request, answer in
            shapes.flops(for: answer, questionTokens: pipeline.caption.encode(ACCMPipeline.guidingText(request.question)).count,
                         usedQuestionGuidance: request.pruning.needsQuestionSimilarity).values.reduce(0, +)
        }, admit: { try pipeline.admit($0) }) { try pipeline.answer($0) }
    }

    /// Every cell's result, in `plan.cells` order. `progress(done, total)` is called after each batch,
    /// `record(cell, item, answer)` for every answer (per-question output, e.g. answers.jsonl) and `skip` for
    /// every question left out of a cell; with `strict` the first such question ends the run with its error.
    public func run(_ plan: EvalPlan, items: [EvalItem], images: ImageCache, strict: Bool = false,
                    progress: (_ done: Int, _ total: Int) -> Void = { _, _ in },
                    record: (EvalCell, EvalItem, ACCMAnswer) throws -> Void = { _, _, _ in },
                    skip: (SkippedQuestion) -> Void = { _ in }) throws -> [CellResult] {
        let cells = try plan.cells(patchCount: patchCount)
        let encoded = items.map { item in Result { try images.bytes(for: item.image) } }
        let total = cells.count * items.count
        let batchSize = max(plan.batchSize, 1)
        var done = 0
        var results: [CellResult] = []
        for cell in cells {
            var result = CellResult(cell: cell)
            for start in stride(from: 0, to: items.count, by: batchSize) {
                var admitted: [(index: Int, request: ACCMRequest)] = []
                for i in start..<min(start + batchSize, items.count) {
                    do {
                        let bytes = try encoded[i].get()
                        admitted.append((i, try admit(plan.request(items[i], index: i, image: bytes, cell: cell))))
                    } catch {
                        if strict { throw EvaluationError("question \(items[i].id) (\(items[i].image)): \(error)") }
                        result.skipped += 1
                        skip(SkippedQuestion(cell: cell, id: items[i].id, image: items[i].image, reason: "\(error)"))
                    }
                }
                let answers = try admitted.isEmpty ? [] : answer(admitted.map(\.request))
                for ((i, request), a) in zip(admitted, answers) {
                    result.add(kind: items[i].kind, correct: AnswerMatching.isCorrect(answer: a.text, expected: items[i].answer),
                               totalFLOPs: a.totalFLOPs, decoderFLOPs: a.flops[.decoder] ?? 0,
                               referenceFLOPs: referenceFLOPs?(request, a) ?? 0)
                    try record(cell, items[i], a)
                }
                done += min(start + batchSize, items.count) - start
                progress(done, total)
            }
            results.append(result)
        }
        return results
    }
}
