// ACCM in one process: vision (prune) → caption → select → decode, a plain composition of the four stages
// (the cluster runs exactly these stages in separate workers).

import Tensor

#if canImport(Glibc)
import Glibc
#endif

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

    /// The text that guides pruning and captioning: the question's first line (as the reference does, which
    /// drops answer-format instructions on later lines). Like Python's `question.split('\n')[0]` it cuts at
    /// the first U+000A scalar, so a "\r\n" line break (one Swift `Character`) ends the line too, its "\r" kept.
    public static func guidingText(_ question: String) -> String {
        var line = String.UnicodeScalarView()
        line.append(contentsOf: question.unicodeScalars.prefix { $0 != "\n" })
        return String(line)
    }

    /// Answers a batch of requests; each stage runs once for the whole batch. Every request is admitted
    /// first (`admit`: a refused one fails the batch with its `RequestError`; admit them one by one to answer
    /// the others). `onText(i, delta)` streams request `i`'s answer; returning false cancels it.
    public func answer(
        _ requests: [ACCMRequest], onText: ((_ request: Int, _ delta: String) -> Bool)? = nil
    ) throws -> [ACCMAnswer] {
        guard !requests.isEmpty else { return [] }
        guard requests.count <= limits.maxBatch else {
            throw RequestError.batchTooLarge(count: requests.count, limit: limits.maxBatch)
        }
        let requests = try requests.map { try admit($0) }
        var seconds: [Stage: Double] = [:]
        func timed<T>(_ stage: Stage, _ body: () throws -> T) rethrows -> T {
            let start = ContinuousClock.now
            defer {
                let d = ContinuousClock.now - start
                seconds[stage] = Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
            }
            return try body()
        }

        let seen = try timed(.vision) {
            try vision(requests.map {
                VisionRequest(image: $0.image, question: Self.guidingText($0.question), budget: $0.budget, pruning: $0.pruning)
            })
        }
        let compensated = requests.indices.filter { requests[$0].compensate && seen[$0].prunedEmbeddings.rowCount > 0 }
        let captions = try compensated.isEmpty ? [] : timed(.caption) {
            try caption(compensated.map {
                CaptionRequest(question: Self.guidingText(requests[$0].question), prunedEmbeddings: seen[$0].prunedEmbeddings)
            })
        }
        let selections = try compensated.isEmpty ? [] : timed(.selector) {
            try selector(compensated.indices.map {
                SelectionRequest(question: Self.guidingText(requests[compensated[$0]].question), candidates: captions[$0].candidates)
            })
        }
        let decoded = try timed(.decoder) {
            try decoder(requests.indices.map { i in
                let slot = compensated.firstIndex(of: i)
                let chosen = slot.map { captions[$0].candidates[selections[$0].chosen] }
                return DecodeRequest(question: requests[i].question, caption: chosen,
                                     visualFeatures: seen[i].keptFeatures, generation: requests[i].generation)
            }, onText: onText)
        }

        return requests.indices.map { i in
            let slot = compensated.firstIndex(of: i)
            var flops: [Stage: Double] = [.vision: seen[i].flops, .decoder: decoded[i].flops]
            var candidates: [CaptionCandidate] = []
            var candidateTokens: [[Int]] = []
            var chosen: String?
            var chosenCandidate: Int?
            if let slot {
                flops[.caption] = captions[slot].flops
                flops[.selector] = selections[slot].flops
                candidates = captions[slot].candidates.indices.map {
                    CaptionCandidate(text: captions[slot].candidates[$0], beamScore: captions[slot].scores[$0],
                                     selectorScore: selections[slot].scores[$0])
                }
                candidateTokens = captions[slot].tokens
                chosenCandidate = selections[slot].chosen
                chosen = captions[slot].candidates[selections[slot].chosen]
            }
            return ACCMAnswer(
                text: decoded[i].text, tokens: decoded[i].tokens, finishReason: decoded[i].finishReason,
                caption: chosen, candidates: candidates, candidateTokens: candidateTokens, chosenCandidate: chosenCandidate,
                keptIndices: seen[i].keptIndices, patchCount: seen[i].patchCount,
                promptTokens: decoded[i].promptTokens,
                seconds: seconds.filter { slot != nil || ($0.key != .caption && $0.key != .selector) }, flops: flops)
        }
    }

    /// What the same answer would cost without pruning or caption: the vision tower, all patches through
    /// the projector, and the decoder over a prompt with every patch, generating as many tokens.
    public func unprunedFLOPs(for answer: ACCMAnswer) -> Double {
        let kept = answer.keptIndices.count
        let captionTokens = answer.caption.map { decoder.encode("additional information: " + $0, false).count } ?? 0
        let prompt = answer.promptTokens - kept - captionTokens + answer.patchCount
        return vision.vision.config.visionFLOPs(images: 1, projectionDim: vision.vision.projectionDim)
            + decoder.projector.config.projectorFLOPs(tokens: answer.patchCount)
            + decoder.languageModel.config.generationFLOPs(promptTokens: prompt, sampledTokens: answer.sampledTokens)
    }
}
