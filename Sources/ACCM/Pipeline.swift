// ACCM in one process: vision (prune) → caption → select → decode, a plain composition of the four stages
// (the cluster runs exactly these stages in separate workers).

import Tensor

/// The embedded pipeline.
public struct ACCMPipeline: Sendable {
    public let vision: VisionStage
    public let caption: CaptionStage
    public let selector: SelectorStage
    public let decoder: DecoderStage
    /// What a request may ask for (`admit`).
    public let limits: RequestLimits

    public init(vision: VisionStage, caption: CaptionStage, selector: SelectorStage, decoder: DecoderStage,
                limits: RequestLimits = .default) {
        self.vision = vision
        self.caption = caption
        self.selector = selector
        self.decoder = decoder
        self.limits = limits
    }

    /// The text that guides pruning and captioning: the question's first line (`RequestProgress.guidingText`).
    public static func guidingText(_ question: String) -> String { RequestProgress.guidingText(question) }

    /// Answers a batch of requests; each stage runs once for the whole batch. A request that is refused
    /// (`admit`) or that a stage fails on gets its own error and the others are answered: a stage batch that
    /// throws is run again one request at a time, so only the request at fault fails.
    /// `onText(i, delta)` streams request `i`'s answer; returning false cancels it.
    public func respond(
        _ requests: [ACCMRequest], onText: ((_ request: Int, _ delta: String) -> Bool)? = nil
    ) -> [Result<ACCMAnswer, StageError>] {
        guard requests.count <= limits.maxBatch else {
            let error = StageError(RequestError.batchTooLarge(count: requests.count, limit: limits.maxBatch))
            return requests.map { _ in .failure(error) }
        }
        var progress = requests.map { request in
            do {
                return RequestProgress(try admit(request))
            } catch {
                var refused = RequestProgress(request)
                refused.fail(StageError(classifying: error))
                return refused
            }
        }
        for stage in Stage.allCases {
            let due = progress.indices.filter { progress[$0].next == stage }
            if !due.isEmpty { run(stage, due, &progress, onText: onText) }
        }
        return progress.map { $0.outcome ?? .failure(StageError(.internal, "the request did not finish")) }
    }

    /// Answers a batch of requests, or throws the first request's error (a `RequestError` when a request is
    /// refused, otherwise a `StageError`). `respond` answers the others too.
    public func answer(
        _ requests: [ACCMRequest], onText: ((_ request: Int, _ delta: String) -> Bool)? = nil
    ) throws -> [ACCMAnswer] {
        guard requests.count <= limits.maxBatch else {
            throw RequestError.batchTooLarge(count: requests.count, limit: limits.maxBatch)
        }
        let admitted = try requests.map { try admit($0) }
        return try respond(admitted, onText: onText).map { try $0.get() }
    }

    /// Runs `stage` for the requests at `indices` (`isolating`: one batch, or one by one when it throws).
    private func run(_ stage: Stage, _ indices: [Int], _ progress: inout [RequestProgress],
                     onText: ((Int, String) -> Bool)?) {
        let start = ContinuousClock.now
        func record<Output>(_ results: [Result<Output, StageError>],
                            _ store: (inout RequestProgress, Output, Double) throws -> Void) {
            let d = ContinuousClock.now - start
            let seconds = d.inSeconds
            for (i, result) in zip(indices, results) {
                do {
                    try store(&progress[i], try result.get(), seconds)
                } catch {
                    progress[i].fail(StageError(classifying: error))
                }
            }
        }
        switch stage {
        case .vision:
            record(isolating(indices.map { progress[$0].visionRequest() }) { try vision($0) }) { try $0.record($1, seconds: $2) }
        case .caption:
            record(isolating(indices.map { progress[$0].captionRequest() }) { try caption($0) }) { try $0.record($1, seconds: $2) }
        case .selector:
            record(isolating(indices.map { progress[$0].selectionRequest() }) { try selector($0) }) {
                try $0.record($1, seconds: $2)
            }
        case .decoder:
            // Requests are told apart by their own request (a rerun alone streams under its own index).
            let requests = indices.map { (index: $0, request: progress[$0].decodeRequest()) }
            record(isolating(requests) { batch in
                let stream = onText.map { onText in { (slot: Int, delta: String) in onText(batch[slot].index, delta) } }
                return try decoder(batch.map(\.request), onText: stream)
            }) { try $0.record($1, seconds: $2) }
        }
    }
}
