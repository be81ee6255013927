// A request as a user sends it, and the answer with everything that led to it.

/// One question, about one image or none, with the chat that came before it.
public struct ACCMRequest: Sendable {
    /// nil: a text-only request (the vision, caption and selector stages are skipped).
    public var image: ImageInput?
    public var question: String
    /// The system text and earlier exchanges (none by default).
    public var conversation: Conversation
    /// Visual tokens to keep.
    public var budget: Int
    public var pruning: PruningMethod
    /// Whether to compensate the pruned tokens with a caption (false: pruning alone).
    public var compensate: Bool
    public var generation: GenerationOptions

    public init(image: ImageInput?, question: String, budget: Int, pruning: PruningMethod, compensate: Bool = true,
                generation: GenerationOptions = GenerationOptions(), conversation: Conversation = .single) {
        self.image = image
        self.question = question
        self.conversation = conversation
        self.budget = budget
        self.pruning = pruning
        self.compensate = compensate
        self.generation = generation
    }
}

/// The four stages, by name.
public enum Stage: String, Sendable, CaseIterable, Codable {
    case vision, caption, selector, decoder
}

/// The answer and everything that led to it.
public struct ACCMAnswer: Sendable {
    public var text: String
    public var tokens: [Int]
    public var finishReason: FinishReason
    /// The caption given to the decoder, if any.
    public var caption: String?
    /// Every candidate caption with its beam score and selector score.
    public var candidates: [CaptionCandidate]
    /// The candidates' caption-model token ids (same order as `candidates`).
    public var candidateTokens: [[Int]]
    /// Which candidate the selector chose (the one given to the decoder), if any.
    public var chosenCandidate: Int?
    public var keptIndices: [Int]
    public var patchCount: Int
    public var promptTokens: Int
    /// Wall time of each stage that ran (for a batch: the batch's time).
    public var seconds: [Stage: Double]
    /// Floating-point operations of each stage that ran.
    public var flops: [Stage: Double]
    /// What the same answer would cost without pruning or caption (the stages report their parts).
    public var unprunedFLOPs: Double
    /// How long the request waited for each stage that ran before its work began (queued, in transit, waiting
    /// for a batch slot); the cluster measures it, the in-process pipeline leaves it empty.
    public var queuedSeconds: [Stage: Double] = [:]

    public var totalFLOPs: Double { flops.values.reduce(0, +) }
    /// Tokens the decoder sampled: the answer's, plus the stop token when one ended it.
    public var sampledTokens: Int { tokens.count + (finishReason == .stopToken ? 1 : 0) }

    public init(
        text: String, tokens: [Int], finishReason: FinishReason, caption: String?, candidates: [CaptionCandidate],
        candidateTokens: [[Int]], chosenCandidate: Int?, keptIndices: [Int], patchCount: Int, promptTokens: Int,
        seconds: [Stage: Double], flops: [Stage: Double], unprunedFLOPs: Double
    ) {
        self.text = text
        self.tokens = tokens
        self.finishReason = finishReason
        self.caption = caption
        self.candidates = candidates
        self.candidateTokens = candidateTokens
        self.chosenCandidate = chosenCandidate
        self.keptIndices = keptIndices
        self.patchCount = patchCount
        self.promptTokens = promptTokens
        self.seconds = seconds
        self.flops = flops
        self.unprunedFLOPs = unprunedFLOPs
    }
}

/// One candidate caption, as the caption stage scored it and the selector scored it.
public struct CaptionCandidate: Sendable, Equatable, Codable {
    public var text: String
    /// Length-normalised log-probability of the caption's beam.
    public var beamScore: Float
    /// The selector's logit.
    public var selectorScore: Float

    public init(text: String, beamScore: Float, selectorScore: Float) {
        self.text = text
        self.beamScore = beamScore
        self.selectorScore = selectorScore
    }
}
