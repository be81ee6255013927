// The bounds every request is held to before any stage allocates for it, and the typed refusal that names
// the field, the value and the limit. `ACCMPipeline.admit` applies them; `accm ask`, `accm eval` and (next)
// the cluster and the gateway all go through it.

import Images

/// Upper bounds on what one request may ask for (the models' own contexts are checked on top of these).
public struct RequestLimits: Sendable, Equatable {
    /// Largest question, in UTF-8 bytes (checked before it is tokenized).
    public var maxQuestionBytes: Int
    /// Most requests answered together.
    public var maxBatch: Int
    /// Most stop strings, and the longest one in UTF-8 bytes.
    public var maxStopStrings: Int
    public var maxStopStringBytes: Int
    /// What an encoded image may be.
    public var image: ImageLimits
    /// Most earlier exchanges in a conversation, and the most UTF-8 bytes of its texts (system + history).
    public var maxConversationTurns: Int
    public var maxConversationBytes: Int

    public init(maxQuestionBytes: Int = 8192, maxBatch: Int = 256, maxStopStrings: Int = 16,
                maxStopStringBytes: Int = 256, image: ImageLimits = .default, maxConversationTurns: Int = 64,
                maxConversationBytes: Int = 65536) {
        self.maxConversationTurns = maxConversationTurns
        self.maxConversationBytes = maxConversationBytes
        self.maxQuestionBytes = maxQuestionBytes
        self.maxBatch = maxBatch
        self.maxStopStrings = maxStopStrings
        self.maxStopStringBytes = maxStopStringBytes
        self.image = image
    }

    /// 8 KiB questions, batches of 256, 16 stop strings of 256 bytes, `ImageLimits.default`, conversations of
    /// 64 earlier exchanges and 64 KiB.
    public static let `default` = RequestLimits()

    /// The checks that need no model: question bytes and emptiness, lower bounds of the budget and of
    /// `max_new_tokens`, sampling, stop strings, the encoded image's size. (`ACCMPipeline.admit` adds the
    /// models' own bounds; in the cluster each stage's worker applies its part.)
    public func check(_ request: ACCMRequest) throws(RequestError) {
        let question = request.question
        let bytes = question.utf8.count
        guard bytes <= maxQuestionBytes else { throw .questionTooLong(bytes: bytes, limit: maxQuestionBytes) }
        guard question.unicodeScalars.contains(where: { !$0.isPythonWhitespace }) else { throw .emptyQuestion }
        let conversation = request.conversation
        guard conversation.history.count <= maxConversationTurns else {
            throw .invalidConversation("\(conversation.history.count) earlier exchanges, over the limit of \(maxConversationTurns)")
        }
        guard conversation.textBytes <= maxConversationBytes else {
            throw .invalidConversation("its earlier messages are \(conversation.textBytes) bytes, over the limit of "
                + "\(maxConversationBytes) bytes")
        }
        if let turn = conversation.imageTurn {
            guard request.image != nil else { throw .invalidConversation("it places an image in exchange \(turn), but the request has none") }
            guard conversation.history.indices.contains(turn) else {
                throw .invalidConversation("the image is placed in exchange \(turn) of \(conversation.history.count)")
            }
        }
        if request.image != nil, request.pruning != .none, request.budget < 1 {
            throw .budgetOutOfRange(budget: request.budget, patches: 0)
        }
        let generation = request.generation
        guard generation.maxNewTokens >= 1 else {
            throw .maxNewTokensOutOfRange(value: generation.maxNewTokens, limit: 0)
        }
        do {
            try generation.sampling.validate()
        } catch {
            throw .invalidSampling("\(error)")
        }
        guard generation.stopStrings.count <= maxStopStrings else {
            throw .invalidStop("\(generation.stopStrings.count) stop strings, over the limit of \(maxStopStrings)")
        }
        for stop in generation.stopStrings {
            guard !stop.isEmpty else { throw .invalidStop("a stop string is empty") }
            guard stop.utf8.count <= maxStopStringBytes else {
                throw .invalidStop("a stop string is \(stop.utf8.count) bytes, over the limit of \(maxStopStringBytes)")
            }
        }
        if case .encoded(let image) = request.image, image.count > self.image.maxBytes {
            throw .image(.tooManyBytes(count: image.count, limit: self.image.maxBytes))
        }
    }
}

/// Why a request was refused before any stage ran.
public enum RequestError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The question is empty or only whitespace.
    case emptyQuestion
    /// The question has more UTF-8 bytes than `RequestLimits.maxQuestionBytes`.
    case questionTooLong(bytes: Int, limit: Int)
    /// The question has more tokens than `model`'s context leaves room for.
    case questionTooManyTokens(model: String, tokens: Int, limit: Int, room: String)
    /// The whole prompt (question, caption, visual tokens) leaves the decoder no room for an answer.
    case promptTooLong(tokens: Int, context: Int)
    /// The visual-token budget is outside 1...patches (patches 0: not known where it was checked).
    case budgetOutOfRange(budget: Int, patches: Int)
    /// `max_new_tokens` is below 1 or above the decoder's context (limit 0: not known where it was checked).
    case maxNewTokensOutOfRange(value: Int, limit: Int)
    /// Temperature or top-p out of range.
    case invalidSampling(String)
    /// Too many stop strings, an empty one or one that is too long.
    case invalidStop(String)
    /// The image could not be decoded within the limits.
    case image(ImageError)
    /// The decoded image could not be preprocessed.
    case preprocessing(PreprocessingError)
    /// Pixels sent preprocessed do not have the vision tower's shape, or are not finite.
    case invalidPixels(String)
    /// More requests in one batch than `RequestLimits.maxBatch`.
    case batchTooLarge(count: Int, limit: Int)
    /// The conversation around the question is over a limit or inconsistent.
    case invalidConversation(String)

    /// The request field that was refused.
    public var field: String {
        switch self {
        case .emptyQuestion, .questionTooLong, .questionTooManyTokens, .promptTooLong: "question"
        case .budgetOutOfRange: "budget"
        case .maxNewTokensOutOfRange: "max_new_tokens"
        case .invalidSampling: "sampling"
        case .invalidStop: "stop"
        case .image, .preprocessing, .invalidPixels: "image"
        case .batchTooLarge: "batch"
        case .invalidConversation: "conversation"
        }
    }

    public var description: String {
        switch self {
        case .emptyQuestion:
            "the question is empty; ask something about the image"
        case .questionTooLong(let bytes, let limit):
            "the question is \(bytes) bytes, over the limit of \(limit) bytes (\(bytes - limit) too many)"
        case .questionTooManyTokens(let model, let tokens, let limit, let room):
            "the question is \(tokens) tokens for \(model), which holds at most \(limit) (\(tokens - limit) too many; "
                + "\(room)); shorten the question"
        case .promptTooLong(let tokens, let context):
            "the prompt is \(tokens) tokens with its caption and visual tokens, leaving no room for an answer in the "
                + "decoder's context of \(context); shorten the question or keep fewer visual tokens"
        case .budgetOutOfRange(let budget, let patches) where patches < 1:
            "the visual-token budget \(budget) must be at least 1"
        case .budgetOutOfRange(let budget, let patches):
            "the visual-token budget \(budget) is outside 1...\(patches) (the image has \(patches) patches)"
        case .maxNewTokensOutOfRange(let value, let limit) where limit < 1:
            "max_new_tokens \(value) must be at least 1"
        case .maxNewTokensOutOfRange(let value, let limit):
            "max_new_tokens \(value) is outside 1...\(limit) (the decoder's context)"
        case .invalidSampling(let what):
            "invalid sampling options: \(what)"
        case .invalidStop(let what):
            "invalid stop strings: \(what)"
        case .image(let error):
            "\(error)"
        case .preprocessing(let error):
            "\(error)"
        case .invalidPixels(let what):
            "invalid pixels: \(what)"
        case .batchTooLarge(let count, let limit):
            "a batch of \(count) requests is over the limit of \(limit)"
        case .invalidConversation(let what):
            "invalid conversation: \(what)"
        }
    }
}
