// Stage 3: the selector. A (Long)CLIP text tower embeds "Question: … Supplemental information for
// questions: <candidate>" for every candidate; the selector scores them; the highest score wins.

import Models
import Tensor

/// The selector stage: a CLIP text tower and ACCM's caption selector.
public struct SelectorStage: Sendable {
    public let text: CLIP.Text
    public let selector: CaptionSelector
    /// Text → ids of the tower's context length (truncated, end token kept, padded).
    public let encode: @Sendable (String) throws -> [Int]

    public init(text: CLIP.Text, selector: CaptionSelector, encode: @escaping @Sendable (String) throws -> [Int]) throws {
        guard let width = text.projectionDim, width == selector.config.hiddenSize else {
            throw ModelError.invalidConfig(
                "the selector reads width \(selector.config.hiddenSize), the text tower projects to \(text.projectionDim.map(String.init) ?? "nothing")")
        }
        self.text = text
        self.selector = selector
        self.encode = encode
    }

    /// The text the selector embeds for one candidate (the authors' wording, two spaces included).
    public static func selectorText(question: String, candidate: String) -> String {
        "Question: " + question.trimmingWhitespace() + "  Supplemental information for questions: " + candidate
    }

    /// Scores every request's candidates; all candidates of all requests share one text-tower pass.
    public func callAsFunction(_ requests: [SelectionRequest]) throws -> [SelectionResult] {
        let texts = requests.flatMap { r in r.candidates.map { Self.selectorText(question: r.question, candidate: $0) } }
        for r in requests where r.candidates.isEmpty {
            throw ModelError.invalidInput("the selector needs at least one candidate (question '\(r.question)')")
        }
        guard !texts.isEmpty else { return [] }
        let embeddings = try text(texts.map(encode)).textEmbeddings!
        var offset = 0
        return try requests.map { r in
            let count = r.candidates.count
            let rows = embeddings.rows(offset..<(offset + count))
            offset += count
            let scored = try selector(rows.reshaped([1, count, rows.lastDimension]))
            guard scored.isFinite, rows.isFinite else {
                throw ModelError.nonFinite("the selector's scores hold NaN or infinity; the weights of the selector or its "
                    + "text tower may be corrupt")
            }
            let scores = scored.scalars
            let chosen = scores.indices.max { scores[$0] < scores[$1] || (scores[$0] == scores[$1] && $0 > $1) } ?? 0
            let flops = text.config.textFLOPs(texts: count, length: text.contextLength, projectionDim: text.projectionDim)
                + selector.config.flops(candidates: count)
            return SelectionResult(scores: scores, chosen: chosen, flops: flops)
        }
    }
}
