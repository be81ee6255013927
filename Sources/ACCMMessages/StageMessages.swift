// What travels into and out of each stage. Everything here is tensors, token ids, strings and small
// parameters, so the same values can cross a process boundary (the cluster frames them as protobuf
// envelopes + raw tensor frames) as well as a function call (the embedded pipeline).

import TensorCore

/// The image of a request, either still encoded (JPEG/PNG bytes, the smallest thing to send) or already
/// preprocessed pixels `[3, H, W]`.
public enum ImageInput: Sendable {
    case encoded([UInt8])
    case pixels(Tensor)
}

// MARK: - Vision stage

/// Input of the vision stage: the image, the question that guides pruning, and the budget.
public struct VisionRequest: Sendable {
    public var image: ImageInput
    /// The text that guides question-aware pruning (the question's first line in the reference).
    public var question: String
    /// Visual tokens to keep (ignored by `PruningMethod.none`).
    public var budget: Int
    public var pruning: PruningMethod

    public init(image: ImageInput, question: String, budget: Int, pruning: PruningMethod) {
        self.image = image
        self.question = question
        self.budget = budget
        self.pruning = pruning
    }
}

/// Output of the vision stage.
public struct VisionResult: Sendable {
    /// Kept patches' features from the language model's vision layer (before the projector), `[K, C]`,
    /// in ascending patch order.
    public var keptFeatures: Tensor
    /// The kept patch indices (raster order, class token excluded), ascending.
    public var keptIndices: [Int]
    /// The pruned patches' embeddings in CLIP's joint space, `[N − K, P]`, ascending patch order
    /// (what the caption stage reads).
    public var prunedEmbeddings: Tensor
    /// Patches in the image (N).
    public var patchCount: Int
    public var flops: Double
    /// What the vision stage of the same answer costs unpruned (the tower alone: no question guidance).
    public var unprunedFLOPs: Double

    public init(keptFeatures: Tensor, keptIndices: [Int], prunedEmbeddings: Tensor, patchCount: Int, flops: Double,
                unprunedFLOPs: Double) {
        self.keptFeatures = keptFeatures
        self.keptIndices = keptIndices
        self.prunedEmbeddings = prunedEmbeddings
        self.patchCount = patchCount
        self.flops = flops
        self.unprunedFLOPs = unprunedFLOPs
    }
}

// MARK: - Caption stage

/// Input of the caption stage.
public struct CaptionRequest: Sendable {
    public var question: String
    /// The pruned patches' joint-space embeddings `[M, P]` (M may be 0).
    public var prunedEmbeddings: Tensor

    public init(question: String, prunedEmbeddings: Tensor) {
        self.question = question
        self.prunedEmbeddings = prunedEmbeddings
    }
}

/// Output of the caption stage: every beam, best first.
public struct CaptionResult: Sendable {
    public var candidates: [String]
    /// The candidates' GPT-2 ids (up to and including the stop token when the beam stopped).
    public var tokens: [[Int]]
    /// Length-normalised log-probabilities of the candidates.
    public var scores: [Float]
    public var flops: Double

    public init(candidates: [String], tokens: [[Int]], scores: [Float], flops: Double) {
        self.candidates = candidates
        self.tokens = tokens
        self.scores = scores
        self.flops = flops
    }
}

// MARK: - Selector stage

/// Input of the selector stage.
public struct SelectionRequest: Sendable {
    public var question: String
    public var candidates: [String]

    public init(question: String, candidates: [String]) {
        self.question = question
        self.candidates = candidates
    }
}

/// Output of the selector stage.
public struct SelectionResult: Sendable {
    /// One logit per candidate.
    public var scores: [Float]
    /// Index of the winning candidate (the highest score; the first on ties).
    public var chosen: Int
    public var flops: Double

    public init(scores: [Float], chosen: Int, flops: Double) {
        self.scores = scores
        self.chosen = chosen
        self.flops = flops
    }
}

// MARK: - Decoder stage

/// Input of the decoder stage.
public struct DecodeRequest: Sendable {
    public var question: String
    /// The system text and earlier exchanges.
    public var conversation: Conversation
    /// The selected caption, or nil to answer from the visual tokens alone.
    public var caption: String?
    /// Kept patch features before the projector `[K, C]`; nil: a text-only prompt (no image in it).
    public var visualFeatures: Tensor?
    public var generation: GenerationOptions
    /// Patches in the image before pruning (what the unpruned answer's cost is counted with); nil: no pruning.
    public var patchCount: Int?

    public init(question: String, caption: String?, visualFeatures: Tensor?, generation: GenerationOptions,
                patchCount: Int? = nil, conversation: Conversation = .single) {
        self.question = question
        self.conversation = conversation
        self.caption = caption
        self.visualFeatures = visualFeatures
        self.generation = generation
        self.patchCount = patchCount
    }
}

/// Output of the decoder stage.
public struct DecodeResult: Sendable {
    public var text: String
    public var tokens: [Int]
    public var finishReason: FinishReason
    /// Prompt length in tokens, visual tokens included.
    public var promptTokens: Int
    public var flops: Double
    /// What the decoder stage of the same answer costs unpruned: every patch through the projector and the
    /// decoder over a prompt with every patch and no caption, generating as many tokens.
    public var unprunedFLOPs: Double

    public init(text: String, tokens: [Int], finishReason: FinishReason, promptTokens: Int, flops: Double,
                unprunedFLOPs: Double) {
        self.text = text
        self.tokens = tokens
        self.finishReason = finishReason
        self.promptTokens = promptTokens
        self.flops = flops
        self.unprunedFLOPs = unprunedFLOPs
    }
}
