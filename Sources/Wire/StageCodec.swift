// The stage messages of ACCMMessages as wire messages and back. Decoding checks that a message carries the
// body and the tensors its kind needs (names, ranks, widths where known); the checks against the models
// themselves (patch counts, budgets, contexts) are the stage's and `admit`'s.

import ACCMMessages
import TensorCore
import Transport

// MARK: Enums

extension Stage {
    public var wire: Accm_V1_Stage {
        switch self {
        case .vision: .vision
        case .caption: .caption
        case .selector: .selector
        case .decoder: .decoder
        }
    }

    public init?(wire: Accm_V1_Stage) {
        switch wire {
        case .vision: self = .vision
        case .caption: self = .caption
        case .selector: self = .selector
        case .decoder: self = .decoder
        default: return nil
        }
    }
}

extension StageErrorCode {
    public var wire: Accm_V1_ErrorCode {
        switch self {
        case .invalidRequest: .invalidRequest
        case .invalidMessage: .invalidMessage
        case .unsupportedSchema: .unsupportedSchema
        case .wrongStage: .wrongStage
        case .modelMismatch: .modelMismatch
        case .stageUnavailable: .stageUnavailable
        case .overloaded: .overloaded
        case .deadlineExceeded: .deadlineExceeded
        case .cancelled: .cancelled
        case .nonFinite: .nonFinite
        case .internal: .internal
        case .notRegistered: .notRegistered
        case .coordinatorLost: .coordinatorLost
        case .unauthenticated: .unauthenticated
        }
    }

    public init(wire: Accm_V1_ErrorCode) {
        switch wire {
        case .invalidRequest: self = .invalidRequest
        case .invalidMessage: self = .invalidMessage
        case .unsupportedSchema: self = .unsupportedSchema
        case .wrongStage: self = .wrongStage
        case .modelMismatch: self = .modelMismatch
        case .stageUnavailable: self = .stageUnavailable
        case .overloaded: self = .overloaded
        case .deadlineExceeded: self = .deadlineExceeded
        case .cancelled: self = .cancelled
        case .nonFinite: self = .nonFinite
        case .notRegistered: self = .notRegistered
        case .coordinatorLost: self = .coordinatorLost
        case .unauthenticated: self = .unauthenticated
        default: self = .internal
        }
    }
}

extension FinishReason {
    var wire: Accm_V1_FinishReason {
        switch self {
        case .stopToken: .stop
        case .stopString: .stopString
        case .length: .length
        case .cancelled: .cancelled
        }
    }

    init(wire: Accm_V1_FinishReason) throws(StageError) {
        switch wire {
        case .stop: self = .stopToken
        case .stopString: self = .stopString
        case .length: self = .length
        case .cancelled: self = .cancelled
        default: throw StageError(.invalidMessage, "unknown finish reason \(wire.rawValue)")
        }
    }
}

extension PruningMethod {
    public var wire: Accm_V1_Pruning {
        var p = Accm_V1_Pruning()
        switch self {
        case .none: p.kind = .none
        case .random(let seed): (p.kind, p.seed) = (.random, seed)
        case .uniform: p.kind = .uniform
        case .classAttention: p.kind = .classAttention
        case .textGuided(let ranking): (p.kind, p.leastSimilar) = (.textGuided, ranking == .leastSimilar)
        case .accm(let ranking, let cap, let picks):
            (p.kind, p.leastSimilar, p.capByHighestIndex) = (.accm, ranking == .leastSimilar, cap == .highestIndex)
            if let picks { p.textPicks = Int64(picks) }
        }
        return p
    }

    public init(wire p: Accm_V1_Pruning) throws(StageError) {
        let ranking: TextGuidedRanking = p.leastSimilar ? .leastSimilar : .mostSimilar
        switch p.kind {
        case .none: self = .none
        case .random: self = .random(seed: p.seed)
        case .uniform: self = .uniform
        case .classAttention: self = .classAttention
        case .textGuided: self = .textGuided(ranking)
        case .accm:
            guard !p.hasTextPicks || (0...Int64(Int32.max)).contains(p.textPicks) else {
                throw StageError(.invalidRequest, "text_picks \(p.textPicks) is out of range", field: "pruning")
            }
            self = .accm(ranking: ranking, cap: p.capByHighestIndex ? .highestIndex : .byScore,
                         textPicks: p.hasTextPicks ? Int(p.textPicks) : nil)
        default:
            throw StageError(.invalidRequest, "unknown pruning kind \(p.kind.rawValue)", field: "pruning")
        }
    }
}

extension GenerationOptions {
    public var wire: Accm_V1_Generation {
        var g = Accm_V1_Generation()
        g.maxNewTokens = Int64(maxNewTokens)
        g.temperature = sampling.temperature
        g.topP = sampling.topP
        g.seed = sampling.seed
        g.stopTokenIds = stopTokenIDs.sorted().map(Int64.init)
        g.stopStrings = stopStrings
        return g
    }

    /// The options a message asks for; values are bounded later by `admit` (only what cannot be represented
    /// is refused here).
    public init(wire g: Accm_V1_Generation) throws(StageError) {
        guard let maxNew = Int(exactly: g.maxNewTokens) else {
            throw StageError(.invalidRequest, "max_new_tokens \(g.maxNewTokens) is out of range", field: "max_new_tokens")
        }
        guard g.stopTokenIds.count <= 64, g.stopTokenIds.allSatisfy({ (0...Int64(Int32.max)).contains($0) }) else {
            throw StageError(.invalidRequest, "stop_token_ids must be at most 64 ids in 0...2^31", field: "stop")
        }
        self.init(maxNewTokens: maxNew, sampling: SamplingOptions(temperature: g.temperature, topP: g.topP, seed: g.seed),
                  stopTokenIDs: Set(g.stopTokenIds.map { Int($0) }), stopStrings: g.stopStrings)
    }
}

private func ints(_ values: [Int64], _ what: String) throws(StageError) -> [Int] {
    var out: [Int] = []
    out.reserveCapacity(values.count)
    for v in values {
        guard let i = Int(exactly: v) else { throw StageError(.invalidMessage, "\(what) holds \(v)") }
        out.append(i)
    }
    return out
}

// MARK: Envelopes

extension Envelope {
    /// An envelope for request `requestID` at `stage` (attempt, and milliseconds left until its deadline, as given).
    public static func make(requestID: String, stage: Stage? = nil, attempt: UInt32 = 0,
                            deadlineMilliseconds: Int64 = 0) -> Envelope {
        var e = Envelope()
        e.requestID = requestID
        if let stage { e.stage = stage.wire }
        e.attempt = attempt
        e.deadlineMs = deadlineMilliseconds
        return e
    }
}

extension WireMessage {
    /// An error message for request `requestID`.
    public static func error(_ error: StageError, requestID: String, stage: Stage? = nil, attempt: UInt32 = 0) -> WireMessage {
        var e = Envelope.make(requestID: requestID, stage: stage, attempt: attempt)
        var body = Accm_V1_Error()
        body.code = error.code.wire
        body.message = error.message
        body.field = error.field ?? ""
        body.retryAfterMs = UInt32(clamping: error.retryAfterMilliseconds ?? 0)
        e.error = body
        return WireMessage(e)
    }

    /// The error this message carries, if it is one.
    public var stageError: StageError? {
        guard case .error(let body)? = envelope.body else { return nil }
        return StageError(StageErrorCode(wire: body.code), body.message, field: body.field.isEmpty ? nil : body.field,
                          retryAfterMilliseconds: body.retryAfterMs > 0 ? Int(body.retryAfterMs) : nil)
    }

    // MARK: Vision

    public static func visionTask(_ r: VisionRequest, envelope: Envelope) -> WireMessage {
        var e = envelope
        var body = Accm_V1_VisionTask()
        body.question = r.question
        body.budget = Int64(r.budget)
        body.pruning = r.pruning.wire
        e.visionTask = body
        switch r.image {
        case .encoded(let bytes): return WireMessage(e, payloads: [("image", .bytes(Frame(copying: bytes)))])
        case .pixels(let pixels): return WireMessage(e, payloads: [("pixels", .floats(pixels))])
        }
    }

    public func visionRequest() throws(StageError) -> VisionRequest {
        guard case .visionTask(let body)? = envelope.body else { throw StageError(.invalidMessage, "not a vision task") }
        let image: ImageInput
        if let bytes = bytes("image") {
            image = .encoded(bytes.array)
        } else {
            image = .pixels(try floats("pixels", rank: 3))
        }
        guard let budget = Int(exactly: body.budget) else {
            throw StageError(.invalidRequest, "budget \(body.budget) is out of range", field: "budget")
        }
        return VisionRequest(image: image, question: body.question, budget: budget, pruning: try PruningMethod(wire: body.pruning))
    }

    public static func visionOutput(_ r: VisionResult, envelope: Envelope) -> WireMessage {
        var e = envelope
        var body = Accm_V1_VisionOutput()
        body.keptIndices = r.keptIndices.map(Int64.init)
        body.patchCount = Int64(r.patchCount)
        body.flops = r.flops
        body.unprunedFlops = r.unprunedFLOPs
        e.visionOutput = body
        return WireMessage(e, payloads: [("kept_features", .floats(r.keptFeatures)), ("pruned_embeddings", .floats(r.prunedEmbeddings))])
    }

    public func visionResult() throws(StageError) -> VisionResult {
        guard case .visionOutput(let body)? = envelope.body else { throw StageError(.invalidMessage, "not a vision output") }
        let kept = try floats("kept_features", rank: 2), pruned = try floats("pruned_embeddings", rank: 2)
        let indices = try ints(body.keptIndices, "kept_indices")
        guard indices.count == kept.shape[0], let patches = Int(exactly: body.patchCount),
              indices.count + pruned.shape[0] == patches else {
            throw StageError(.invalidMessage, "the vision output's \(indices.count) kept indices, kept features \(kept.shape), "
                + "pruned embeddings \(pruned.shape) and \(body.patchCount) patches do not agree")
        }
        return VisionResult(keptFeatures: kept, keptIndices: indices, prunedEmbeddings: pruned, patchCount: patches,
                            flops: body.flops, unprunedFLOPs: body.unprunedFlops)
    }

    // MARK: Caption

    public static func captionTask(_ r: CaptionRequest, envelope: Envelope) -> WireMessage {
        var e = envelope
        var body = Accm_V1_CaptionTask()
        body.question = r.question
        e.captionTask = body
        return WireMessage(e, payloads: [("pruned_embeddings", .floats(r.prunedEmbeddings))])
    }

    public func captionRequest() throws(StageError) -> CaptionRequest {
        guard case .captionTask(let body)? = envelope.body else { throw StageError(.invalidMessage, "not a caption task") }
        return CaptionRequest(question: body.question, prunedEmbeddings: try floats("pruned_embeddings", rank: 2))
    }

    public static func captionOutput(_ r: CaptionResult, envelope: Envelope) -> WireMessage {
        var e = envelope
        var body = Accm_V1_CaptionOutput()
        body.candidates = r.candidates
        body.tokens = r.tokens.map { ids in
            var list = Accm_V1_TokenList()
            list.ids = ids.map(Int64.init)
            return list
        }
        body.scores = r.scores
        body.flops = r.flops
        e.captionOutput = body
        return WireMessage(e)
    }

    public func captionResult() throws(StageError) -> CaptionResult {
        guard case .captionOutput(let body)? = envelope.body else { throw StageError(.invalidMessage, "not a caption output") }
        var tokens: [[Int]] = []
        for list in body.tokens { tokens.append(try ints(list.ids, "caption tokens")) }
        return CaptionResult(candidates: body.candidates, tokens: tokens, scores: body.scores, flops: body.flops)
    }

    // MARK: Selector

    public static func selectorTask(_ r: SelectionRequest, envelope: Envelope) -> WireMessage {
        var e = envelope
        var body = Accm_V1_SelectorTask()
        body.question = r.question
        body.candidates = r.candidates
        e.selectorTask = body
        return WireMessage(e)
    }

    public func selectionRequest() throws(StageError) -> SelectionRequest {
        guard case .selectorTask(let body)? = envelope.body else { throw StageError(.invalidMessage, "not a selector task") }
        return SelectionRequest(question: body.question, candidates: body.candidates)
    }

    public static func selectorOutput(_ r: SelectionResult, envelope: Envelope) -> WireMessage {
        var e = envelope
        var body = Accm_V1_SelectorOutput()
        body.scores = r.scores
        body.chosen = Int64(r.chosen)
        body.flops = r.flops
        e.selectorOutput = body
        return WireMessage(e)
    }

    public func selectionResult() throws(StageError) -> SelectionResult {
        guard case .selectorOutput(let body)? = envelope.body else { throw StageError(.invalidMessage, "not a selector output") }
        guard let chosen = Int(exactly: body.chosen) else { throw StageError(.invalidMessage, "chosen \(body.chosen)") }
        return SelectionResult(scores: body.scores, chosen: chosen, flops: body.flops)
    }

    // MARK: Decoder

    public static func decoderTask(_ r: DecodeRequest, envelope: Envelope) -> WireMessage {
        var e = envelope
        var body = Accm_V1_DecoderTask()
        body.question = r.question
        if let caption = r.caption { body.caption = caption }
        body.generation = r.generation.wire
        body.patchCount = Int64(r.patchCount ?? r.visualFeatures?.shape[0] ?? 0)
        body.conversation = r.conversation.wire
        e.decoderTask = body
        guard let features = r.visualFeatures else { return WireMessage(e) }
        return WireMessage(e, payloads: [("kept_features", .floats(features))])
    }

    public func decodeRequest() throws(StageError) -> DecodeRequest {
        guard case .decoderTask(let body)? = envelope.body else { throw StageError(.invalidMessage, "not a decoder task") }
        guard let patches = Int(exactly: body.patchCount), patches >= 0 else {
            throw StageError(.invalidMessage, "patch_count \(body.patchCount)")
        }
        let features = payloads.contains { $0.name == "kept_features" } ? try floats("kept_features", rank: 2) : nil
        return DecodeRequest(question: body.question, caption: body.hasCaption ? body.caption : nil,
                             visualFeatures: features, generation: try GenerationOptions(wire: body.generation),
                             patchCount: features == nil ? nil : patches,
                             conversation: try Conversation(wire: body.conversation))
    }

    public static func decoderOutput(_ r: DecodeResult, envelope: Envelope) -> WireMessage {
        var e = envelope
        var body = Accm_V1_DecoderOutput()
        body.text = r.text
        body.tokens = r.tokens.map(Int64.init)
        body.finishReason = r.finishReason.wire
        body.promptTokens = Int64(r.promptTokens)
        body.flops = r.flops
        body.unprunedFlops = r.unprunedFLOPs
        e.decoderOutput = body
        return WireMessage(e)
    }

    public func decodeResult() throws(StageError) -> DecodeResult {
        guard case .decoderOutput(let body)? = envelope.body else { throw StageError(.invalidMessage, "not a decoder output") }
        guard let prompt = Int(exactly: body.promptTokens) else { throw StageError(.invalidMessage, "prompt_tokens") }
        return DecodeResult(text: body.text, tokens: try ints(body.tokens, "tokens"),
                            finishReason: try FinishReason(wire: body.finishReason), promptTokens: prompt, flops: body.flops,
                            unprunedFLOPs: body.unprunedFlops)
    }

    // MARK: Client

    /// A SUBMIT of `request` (its image must be encoded: clients send files, not pixels).
    /// `deadlineMilliseconds`: how long the cluster may work on it (0: the coordinator's default).
    public static func submit(_ r: ACCMRequest, requestID: String, deadlineMilliseconds: Int64 = 0) -> WireMessage {
        var e = Envelope.make(requestID: requestID, deadlineMilliseconds: deadlineMilliseconds)
        var body = Accm_V1_Submit()
        body.question = r.question
        body.budget = Int64(r.budget)
        body.pruning = r.pruning.wire
        body.compensate = r.compensate
        body.generation = r.generation.wire
        body.conversation = r.conversation.wire
        e.submit = body
        switch r.image {
        case .encoded(let bytes)?: return WireMessage(e, payloads: [("image", .bytes(Frame(copying: bytes)))])
        case .pixels(let pixels)?: return WireMessage(e, payloads: [("pixels", .floats(pixels))])
        case nil: return WireMessage(e)
        }
    }

    public func submittedRequest() throws(StageError) -> ACCMRequest {
        guard case .submit(let body)? = envelope.body else { throw StageError(.invalidMessage, "not a submit") }
        let image: ImageInput?
        if let bytes = bytes("image") {
            image = .encoded(bytes.array)
        } else if payloads.contains(where: { $0.name == "pixels" }) {
            image = .pixels(try floats("pixels", rank: 3))
        } else {
            image = nil  // a text-only request
        }
        guard let budget = Int(exactly: body.budget) else {
            throw StageError(.invalidRequest, "budget \(body.budget) is out of range", field: "budget")
        }
        return ACCMRequest(image: image, question: body.question, budget: budget, pruning: try PruningMethod(wire: body.pruning),
                           compensate: body.compensate, generation: try GenerationOptions(wire: body.generation),
                           conversation: try Conversation(wire: body.conversation))
    }

    public static func answer(_ a: ACCMAnswer, requestID: String) -> WireMessage {
        var e = Envelope.make(requestID: requestID)
        var body = Accm_V1_Answer()
        body.text = a.text
        body.tokens = a.tokens.map(Int64.init)
        body.finishReason = a.finishReason.wire
        if let caption = a.caption { body.caption = caption }
        body.candidates = a.candidates.map { c in
            var w = Accm_V1_Candidate()
            (w.text, w.beamScore, w.selectorScore) = (c.text, c.beamScore, c.selectorScore)
            return w
        }
        body.candidateTokens = a.candidateTokens.map { ids in
            var list = Accm_V1_TokenList()
            list.ids = ids.map(Int64.init)
            return list
        }
        if let chosen = a.chosenCandidate { body.chosenCandidate = Int64(chosen) }
        body.keptIndices = a.keptIndices.map(Int64.init)
        body.patchCount = Int64(a.patchCount)
        body.promptTokens = Int64(a.promptTokens)
        body.costs = Stage.allCases.compactMap { stage in
            guard let flops = a.flops[stage] else { return nil }
            var cost = Accm_V1_StageCost()
            cost.stage = stage.wire
            cost.flops = flops
            cost.seconds = a.seconds[stage] ?? 0
            cost.queuedSeconds = a.queuedSeconds[stage] ?? 0
            return cost
        }
        body.unprunedFlops = a.unprunedFLOPs
        e.answer = body
        return WireMessage(e)
    }

    public func answer() throws(StageError) -> ACCMAnswer {
        guard case .answer(let body)? = envelope.body else { throw StageError(.invalidMessage, "not an answer") }
        var seconds: [Stage: Double] = [:], flops: [Stage: Double] = [:], queued: [Stage: Double] = [:]
        for cost in body.costs {
            guard let stage = Stage(wire: cost.stage) else { continue }
            flops[stage] = cost.flops
            seconds[stage] = cost.seconds
            if cost.queuedSeconds > 0 { queued[stage] = cost.queuedSeconds }
        }
        var candidateTokens: [[Int]] = []
        for list in body.candidateTokens { candidateTokens.append(try ints(list.ids, "candidate tokens")) }
        var answer = ACCMAnswer(
            text: body.text, tokens: try ints(body.tokens, "tokens"), finishReason: try FinishReason(wire: body.finishReason),
            caption: body.hasCaption ? body.caption : nil,
            candidates: body.candidates.map { CaptionCandidate(text: $0.text, beamScore: $0.beamScore, selectorScore: $0.selectorScore) },
            candidateTokens: candidateTokens, chosenCandidate: body.hasChosenCandidate ? Int(body.chosenCandidate) : nil,
            keptIndices: try ints(body.keptIndices, "kept_indices"), patchCount: Int(body.patchCount),
            promptTokens: Int(body.promptTokens), seconds: seconds, flops: flops, unprunedFLOPs: body.unprunedFlops)
        answer.queuedSeconds = queued
        return answer
    }

    public static func partial(_ delta: String, sequence: UInt64, requestID: String) -> WireMessage {
        var e = Envelope.make(requestID: requestID)
        var body = Accm_V1_PartialText()
        body.sequence = sequence
        body.delta = delta
        e.partial = body
        return WireMessage(e)
    }
}

// MARK: Conversation

extension Conversation {
    var wire: Accm_V1_Conversation {
        var w = Accm_V1_Conversation()
        if let system { w.system = system }
        w.history = history.map { exchange in
            var e = Accm_V1_Exchange()
            e.user = exchange.user
            e.assistant = exchange.assistant
            return e
        }
        if let imageTurn { w.imageTurn = Int64(imageTurn) }
        return w
    }

    init(wire: Accm_V1_Conversation) throws(StageError) {
        var turn: Int?
        if wire.hasImageTurn {
            guard let t = Int(exactly: wire.imageTurn), wire.history.indices.contains(t) else {
                throw StageError(.invalidRequest, "image_turn \(wire.imageTurn) is not one of the \(wire.history.count) "
                    + "earlier exchanges", field: "conversation")
            }
            turn = t
        }
        self.init(system: wire.hasSystem ? wire.system : nil,
                  history: wire.history.map { Exchange(user: $0.user, assistant: $0.assistant) }, imageTurn: turn)
    }
}
