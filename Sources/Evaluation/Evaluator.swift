// Runs every cell of a plan over the split, in batches, and tallies the answers.

import ACCM

public struct Evaluator {
    /// Answers a batch (the pipeline's `answer`, or a stand-in in tests).
    public var answer: ([ACCMRequest]) throws -> [ACCMAnswer]
    public var patchCount: Int

    public init(patchCount: Int, answer: @escaping ([ACCMRequest]) throws -> [ACCMAnswer]) {
        self.patchCount = patchCount
        self.answer = answer
    }

    public init(pipeline: ACCMPipeline) {
        self.init(patchCount: pipeline.vision.patchCount) { try pipeline.answer($0) }
    }

    /// Every cell's result, in `plan.cells` order. `progress(done, total)` is called after each batch.
    public func run(_ plan: EvalPlan, items: [EvalItem], images: ImageCache,
                    progress: (_ done: Int, _ total: Int) -> Void = { _, _ in }) throws -> [CellResult] {
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
                for (i, a) in zip(range, answers) {
                    result.add(kind: items[i].kind, correct: AnswerMatching.isCorrect(answer: a.text, expected: items[i].answer),
                               totalFLOPs: a.totalFLOPs, decoderFLOPs: a.flops[.decoder] ?? 0)
                }
                done += range.count
                progress(done, total)
            }
            results.append(result)
        }
        return results
    }
}
