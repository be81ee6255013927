// Runs every cell of a plan over the split, in batches, and tallies the answers.

import ACCM

public struct Evaluator {
    /// Answers a batch (the pipeline's `answer`, or a stand-in in tests).
    public var answer: ([ACCMRequest]) throws -> [ACCMAnswer]
    public var patchCount: Int
    /// What an answer would cost at the real system's shapes (see `ReferenceShapes`), when known.
    public var referenceFLOPs: ((ACCMRequest, ACCMAnswer) -> Double)?

    public init(patchCount: Int, referenceFLOPs: ((ACCMRequest, ACCMAnswer) -> Double)? = nil,
                answer: @escaping ([ACCMRequest]) throws -> [ACCMAnswer]) {
        self.patchCount = patchCount
        self.referenceFLOPs = referenceFLOPs
        self.answer = answer
    }

    public init(pipeline: ACCMPipeline) throws {
        let shapes = try ReferenceShapes.llava15()
        self.init(patchCount: pipeline.vision.patchCount, referenceFLOPs: { request, answer in
            shapes.flops(for: answer, questionTokens: pipeline.caption.encode(ACCMPipeline.guidingText(request.question)).count,
                         usedQuestionGuidance: request.pruning.needsQuestionSimilarity).values.reduce(0, +)
        }) { try pipeline.answer($0) }
    }

    /// Every cell's result, in `plan.cells` order. `progress(done, total)` is called after each batch and
    /// `record(cell, item, answer)` for every answer (per-question output, e.g. answers.jsonl).
    public func run(_ plan: EvalPlan, items: [EvalItem], images: ImageCache,
                    progress: (_ done: Int, _ total: Int) -> Void = { _, _ in },
                    record: (EvalCell, EvalItem, ACCMAnswer) throws -> Void = { _, _, _ in }) throws -> [CellResult] {
        let cells = try plan.cells(patchCount: patchCount)
        let encoded = try items.map { try images.bytes(for: $0.image) }
        let total = cells.count * items.count
        var done = 0
        var results: [CellResult] = []
        for cell in cells {
            var result = CellResult(cell: cell)
            for start in stride(from: 0, to: items.count, by: max(plan.batchSize, 1)) {
                let range = start..<min(start + max(plan.batchSize, 1), items.count)
                let requests = range.map { plan.request(items[$0], index: $0, image: encoded[$0], cell: cell) }
                let answers = try answer(requests)
                for (slot, (i, a)) in zip(range, answers).enumerated() {
                    result.add(kind: items[i].kind, correct: AnswerMatching.isCorrect(answer: a.text, expected: items[i].answer),
                               totalFLOPs: a.totalFLOPs, decoderFLOPs: a.flops[.decoder] ?? 0,
                               referenceFLOPs: referenceFLOPs?(requests[slot], a) ?? 0)
                    try record(cell, items[i], a)
                }
                done += range.count
                progress(done, total)
            }
            results.append(result)
        }
        return results
    }
}
