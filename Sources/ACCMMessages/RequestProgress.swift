// One request's way through the stages: vision → caption → selector → decoder, the caption and the selector
// skipped when the request asks for no caption or nothing was pruned. Both the embedded pipeline and the
// cluster's coordinator drive this one value, so the two cannot drift apart: each asks `next`, builds that
// stage's request from what came before, and records the stage's result (or the request's failure).

/// Where a request stands, what it carries and what it has cost.
public struct RequestProgress: Sendable {
    /// The (admitted) request.
    public let request: ACCMRequest
    public private(set) var vision: VisionResult?
    public private(set) var caption: CaptionResult?
    public private(set) var selection: SelectionResult?
    public private(set) var decoded: DecodeResult?
    public private(set) var failure: StageError?
    /// Wall time of each stage that ran for it (for a batch: the batch's time).
    public private(set) var seconds: [Stage: Double] = [:]
    /// Time it waited for each stage before that stage's work began (recorded by whoever dispatches it).
    public private(set) var queuedSeconds: [Stage: Double] = [:]

    public init(_ request: ACCMRequest) {
        self.request = request
    }

    /// The text that guides pruning and captioning: the question's first line (as the reference does, which
    /// drops answer-format instructions on later lines). Like Python's `question.split('\n')[0]` it cuts at
    /// the first U+000A scalar, so a "\r\n" line break (one Swift `Character`) ends the line too, its "\r" kept.
    public static func guidingText(_ question: String) -> String {
        var line = String.UnicodeScalarView()
        line.append(contentsOf: question.unicodeScalars.prefix { $0 != "\n" })
        return String(line)
    }

    public var guidingText: String { Self.guidingText(request.question) }

    /// Whether a caption is made: one is asked for and the vision stage pruned something.
    public var captions: Bool { request.compensate && (vision?.prunedEmbeddings.rowCount ?? 0) > 0 }

    /// The stage that runs next; nil once the request is answered or has failed.
    public var next: Stage? {
        if failure != nil || decoded != nil { return nil }
        guard vision != nil || request.image == nil else { return .vision }
        if captions {
            if caption == nil { return .caption }
            if selection == nil { return .selector }
        }
        return .decoder
    }

    public var isFinished: Bool { next == nil }

    // MARK: Stage requests

    /// Precondition: `next == .vision` (so the request has an image).
    public func visionRequest() -> VisionRequest {
        VisionRequest(image: request.image!, question: guidingText, budget: request.budget, pruning: request.pruning)
    }

    /// Precondition: `next == .caption`.
    public func captionRequest() -> CaptionRequest {
        CaptionRequest(question: guidingText, prunedEmbeddings: vision!.prunedEmbeddings)
    }

    /// Precondition: `next == .selector`.
    public func selectionRequest() -> SelectionRequest {
        SelectionRequest(question: guidingText, candidates: caption!.candidates)
    }

    /// The caption the decoder reads, if any.
    public var chosenCaption: String? {
        guard let caption, let selection else { return nil }
        return caption.candidates[selection.chosen]
    }

    /// Precondition: `next == .decoder`.
    public func decodeRequest() -> DecodeRequest {
        DecodeRequest(question: request.question, caption: chosenCaption, visualFeatures: vision?.keptFeatures,
                      generation: request.generation, patchCount: vision?.patchCount, conversation: request.conversation)
    }

    // MARK: Results

    /// Records the result of the stage `next` names; a result of another stage is refused.
    public mutating func record(_ result: VisionResult, seconds: Double = 0) throws(StageError) {
        try expect(.vision)
        vision = result
        self.seconds[.vision] = seconds
    }

    public mutating func record(_ result: CaptionResult, seconds: Double = 0) throws(StageError) {
        try expect(.caption)
        guard !result.candidates.isEmpty, result.candidates.count == result.scores.count,
              result.tokens.count == result.candidates.count else {
            throw StageError(.internal, "the caption stage returned \(result.candidates.count) candidates, "
                + "\(result.scores.count) scores and \(result.tokens.count) token lists")
        }
        caption = result
        self.seconds[.caption] = seconds
    }

    public mutating func record(_ result: SelectionResult, seconds: Double = 0) throws(StageError) {
        try expect(.selector)
        guard let count = caption?.candidates.count, result.scores.count == count, (0..<count).contains(result.chosen) else {
            throw StageError(.internal, "the selector chose \(result.chosen) of \(result.scores.count) scores "
                + "for \(caption?.candidates.count ?? 0) candidates")
        }
        selection = result
        self.seconds[.selector] = seconds
    }

    public mutating func record(_ result: DecodeResult, seconds: Double = 0) throws(StageError) {
        try expect(.decoder)
        decoded = result
        self.seconds[.decoder] = seconds
    }

    /// Adds `seconds` of waiting for `stage` (a re-dispatched stage waits more than once).
    public mutating func recordWait(_ stage: Stage, seconds: Double) {
        queuedSeconds[stage, default: 0] += max(0, seconds)
    }

    /// Ends the request with `error` (its one final answer).
    public mutating func fail(_ error: StageError) {
        if !isFinished { failure = error }
    }

    private func expect(_ stage: Stage) throws(StageError) {
        guard next == stage else {
            throw StageError(.internal, "a \(stage.rawValue) result for a request whose next stage is "
                + (next.map(\.rawValue) ?? "none (finished)"))
        }
    }

    // MARK: The answer

    /// The final answer, once there is one: the answer or the failure.
    public var outcome: Result<ACCMAnswer, StageError>? {
        if let failure { return .failure(failure) }
        guard let decoded, vision != nil || request.image == nil else { return nil }
        var flops: [Stage: Double] = [.decoder: decoded.flops]
        if let vision { flops[.vision] = vision.flops }
        var candidates: [CaptionCandidate] = []
        if let caption, let selection {
            flops[.caption] = caption.flops
            flops[.selector] = selection.flops
            candidates = caption.candidates.indices.map {
                CaptionCandidate(text: caption.candidates[$0], beamScore: caption.scores[$0],
                                 selectorScore: selection.scores[$0])
            }
        }
        var answer = ACCMAnswer(
            text: decoded.text, tokens: decoded.tokens, finishReason: decoded.finishReason, caption: chosenCaption,
            candidates: candidates, candidateTokens: caption?.tokens ?? [], chosenCandidate: selection?.chosen,
            keptIndices: vision?.keptIndices ?? [], patchCount: vision?.patchCount ?? 0, promptTokens: decoded.promptTokens,
            seconds: seconds, flops: flops, unprunedFLOPs: (vision?.unprunedFLOPs ?? 0) + decoded.unprunedFLOPs)
        answer.queuedSeconds = queuedSeconds
        return .success(answer)
    }
}
