// What `POST /v1/chat/completions` answers: OpenAI's `chat.completion` object, or for a stream its
// `chat.completion.chunk` events, plus the `"accm"` object that shows what ACCM did with the image (kept
// patches, the caption and its rivals, per-stage time and FLOPs against the unpruned cost).

import ACCMMessages

/// How the model's images are laid out before the patch grid is cut (the playground draws the kept patches
/// over it): padded to a square (LLaVA-1.5's "pad"), or resized and center-cropped.
public enum ImageLayout: String, Sendable, CaseIterable {
    case square, crop
}

struct Usage: Encodable {
    var prompt_tokens: Int
    var completion_tokens: Int
    var total_tokens: Int
    var visual_tokens_kept: Int
    var visual_tokens_dropped: Int

    init(_ answer: ACCMAnswer) {
        prompt_tokens = answer.promptTokens
        completion_tokens = answer.sampledTokens
        total_tokens = answer.promptTokens + answer.sampledTokens
        visual_tokens_kept = answer.keptIndices.count
        visual_tokens_dropped = answer.patchCount - answer.keptIndices.count
    }
}

/// The `"accm"` object of a response.
struct ACCMReport: Encodable {
    struct Grid: Encodable {
        var rows: Int
        var cols: Int
    }
    struct Candidate: Encodable {
        var text: String
        var beam_score: Float
        var selector_score: Float
    }
    var visual_tokens_kept: Int
    var patch_count: Int
    var grid: Grid?
    var image_padding: String?
    var kept_patches: [Int]
    var caption: String?
    var chosen_candidate: Int?
    var candidates: [Candidate]?
    var stage_seconds: [String: Double]?
    var flops: [String: Double]?

    init(_ answer: ACCMAnswer, candidates withCandidates: Bool, timings: Bool, layout: ImageLayout) {
        visual_tokens_kept = answer.keptIndices.count
        patch_count = answer.patchCount
        let side = Int(Double(answer.patchCount).squareRoot().rounded())
        if answer.patchCount > 0, side * side == answer.patchCount {
            grid = Grid(rows: side, cols: side)
            image_padding = layout.rawValue
        }
        kept_patches = answer.keptIndices
        caption = answer.caption
        chosen_candidate = answer.chosenCandidate
        if withCandidates {
            candidates = answer.candidates.map { Candidate(text: $0.text, beam_score: $0.beamScore, selector_score: $0.selectorScore) }
        }
        if timings {
            stage_seconds = Dictionary(uniqueKeysWithValues: answer.seconds.map { ($0.key.rawValue, $0.value) })
            var flops = Dictionary(uniqueKeysWithValues: answer.flops.map { ($0.key.rawValue, $0.value) })
            flops["total"] = answer.totalFLOPs
            flops["unpruned"] = answer.unprunedFLOPs
            self.flops = flops
        }
    }
}

/// The OpenAI finish reason of an answer.
func finishReason(_ reason: FinishReason) -> String {
    switch reason {
    case .stopToken, .stopString: "stop"
    case .length: "length"
    case .cancelled: "stop"
    }
}

struct ChatCompletion: Encodable {
    struct Choice: Encodable {
        struct Message: Encodable {
            var role = "assistant"
            var content: String
        }
        var index = 0
        var message: Message
        var finish_reason: String
        var logprobs: String? = nil
    }
    var id: String
    var object = "chat.completion"
    var created: Int
    var model: String
    var choices: [Choice]
    var usage: Usage
    var accm: ACCMReport
}

struct ChatCompletionChunk: Encodable {
    struct Choice: Encodable {
        struct Delta: Encodable {
            var role: String?
            var content: String?
        }
        var index = 0
        var delta: Delta
        var finish_reason: String?

        enum CodingKeys: String, CodingKey { case index, delta, finish_reason }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(index, forKey: .index)
            try c.encode(delta, forKey: .delta)
            try c.encode(finish_reason, forKey: .finish_reason)  // null until the last chunk, as OpenAI sends it
        }
    }
    var id: String
    var object = "chat.completion.chunk"
    var created: Int
    var model: String
    var choices: [Choice]
    var usage: Usage?
    var accm: ACCMReport?
}
