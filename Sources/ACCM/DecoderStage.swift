// Stage 4: the answer. LLaVA-1.5's `vicuna_v1` prompt with the projected kept visual tokens at the image
// position and "additional information: <caption>" right after the image line, then generation.

import Models
import Tensor
import Tokenizers

/// A LLaVA conversation template: the system text and the two roles, as `vicuna_v1` lays them out
/// (`system + " " + "USER: " + user + " " + "ASSISTANT:"`).
public struct ConversationTemplate: Sendable, Equatable {
    public var system: String
    public var user: String
    public var assistant: String

    public static let vicunaV1 = ConversationTemplate(
        system: "A chat between a curious user and an artificial intelligence assistant. "
            + "The assistant gives helpful, detailed, and polite answers to the user's questions.",
        user: "USER", assistant: "ASSISTANT")

    /// The text before the image placeholder and the text after it, for a question.
    public func split(question: String) -> (beforeImage: String, afterImage: String) {
        (system + " " + user + ": ", "\n" + question + " " + assistant + ":")
    }
}

/// The decoder stage: the LLaVA projector and the LLaMA language model.
public struct DecoderStage: Sendable {
    public let projector: LlavaProjector
    public let languageModel: Llama
    public let template: ConversationTemplate
    /// Text → LLaMA ids; the flag asks for the start-of-sequence token.
    public let encode: @Sendable (_ text: String, _ withBOS: Bool) -> [Int]
    /// LLaMA ids → text (special tokens skipped).
    public let decode: @Sendable ([Int]) -> String
    /// A fresh streaming detokenizer per answer (text made incrementally); nil: `decode` every step.
    public let detokenizer: (@Sendable () -> StreamingDetokenizer)?
    public let endOfSequenceID: Int

    public init(
        projector: LlavaProjector, languageModel: Llama,
        template: ConversationTemplate = .vicunaV1, endOfSequenceID: Int,
        encode: @escaping @Sendable (String, Bool) -> [Int], decode: @escaping @Sendable ([Int]) -> String,
        detokenizer: (@Sendable () -> StreamingDetokenizer)? = nil
    ) throws {
        guard projector.outputSize == languageModel.hiddenSize else {
            throw ModelError.invalidConfig(
                "the projector writes width \(projector.outputSize), the language model reads \(languageModel.hiddenSize)")
        }
        self.projector = projector
        self.languageModel = languageModel
        self.template = template
        self.endOfSequenceID = endOfSequenceID
        self.encode = encode
        self.decode = decode
        self.detokenizer = detokenizer
    }

    /// The prompt's token segments around the visual tokens: ids before the image, ids after it up to and
    /// including the image line's newline, the caption's ids, and the rest (question, assistant role). A
    /// conversation's earlier exchanges come first, each answer ended by the end-of-sequence token (`vicuna_v1`'s
    /// second separator); the image starts the user message `conversation.imageTurn` names (the question's by
    /// default). Without an image, the whole prompt is the first segment and the other three are empty.
    public func promptSegments(question: String, caption: String?, conversation: Conversation = .single,
                               hasImage: Bool = true) -> [[Int]] {
        let system = conversation.system ?? template.system
        let imageTurn = hasImage ? (conversation.imageTurn ?? conversation.history.count) : nil
        // Text runs between end-of-sequence tokens; `imageRun` is the run that the image splits, at `imageOffset`.
        var runs: [String] = [system + " "]
        var imageAt: (run: Int, offset: String.Index)?
        func userMessage(_ text: String, turn: Int) {
            runs[runs.count - 1] += template.user + ": "
            if turn == imageTurn {
                imageAt = (runs.count - 1, runs[runs.count - 1].endIndex)
                runs[runs.count - 1] += "\n"
            }
            runs[runs.count - 1] += text + " " + template.assistant + ":"
        }
        for (turn, exchange) in conversation.history.enumerated() {
            userMessage(exchange.user, turn: turn)
            runs[runs.count - 1] += " " + exchange.assistant
            runs.append("")
        }
        userMessage(question, turn: conversation.history.count)
        // Each run is tokenized on its own (as a tokenizer splits text at special tokens), the first with BOS.
        func tokens(_ runs: [String], first: Bool) -> [Int] {
            var ids: [Int] = []
            for (i, run) in runs.enumerated() {
                if i > 0 { ids.append(endOfSequenceID) }
                ids += encode(run, first && i == 0)
            }
            return ids
        }
        guard let imageAt else { return [tokens(runs, first: true), [], [], []] }
        let run = runs[imageAt.run]
        let head = tokens(Array(runs[..<imageAt.run]) + [String(run[..<imageAt.offset])], first: true)
        // The text after the image is tokenized as a whole (as LLaVA's tokenizer_image_token does) without
        // its start token; the caption goes right after the token that carries the image line's newline.
        let tail = tokens([String(run[imageAt.offset...])] + Array(runs[(imageAt.run + 1)...]), first: false)
        let newline = tail.firstIndex { decode([$0]).contains("\n") }.map { $0 + 1 } ?? 0
        let captionIDs = caption.map { encode("additional information: " + $0, false) } ?? []
        return [head, Array(tail[..<newline]), captionIDs, Array(tail[newline...])]
    }

    /// Tokens to keep free for a caption of `captionTokens` caption-model tokens: its "additional information: "
    /// lead and one decoder token per caption token (an estimate; the prompt is measured exactly once built).
    public func captionTokenReserve(captionTokens: Int) -> Int {
        encode("additional information: ", false).count + captionTokens
    }

    /// What the same answer costs with every patch and no caption: the projector over all patches, then the
    /// decoder over that prompt, generating as many tokens.
    func unprunedFLOPs(_ request: DecodeRequest, promptTokens: Int, sampledTokens: Int) -> Double {
        let kept = request.visualFeatures?.shape[0] ?? 0
        let patches = request.patchCount ?? kept
        let captionTokens = request.caption.map { encode("additional information: " + $0, false).count } ?? 0
        return projector.config.projectorFLOPs(tokens: patches)
            + languageModel.config.generationFLOPs(promptTokens: promptTokens - kept - captionTokens + patches,
                                                   sampledTokens: sampledTokens)
    }

    /// Answers a batch of requests (decode steps of all requests share each pass over the weights). An answer
    /// ends at the context's end (finish reason `length`) when `maxNewTokens` would run past it.
    /// `onText(i, delta)` streams request `i`'s answer; returning false cancels it.
    public func callAsFunction(
        _ requests: [DecodeRequest], onText: ((_ request: Int, _ delta: String) -> Bool)? = nil
    ) throws -> [DecodeResult] {
        var session = session()
        for (i, request) in requests.enumerated() { try session.join(i, request) }
        var results = [DecodeResult?](repeating: nil, count: requests.count)
        while !session.isEmpty {
            for (id, result) in try session.step(onText: { onText?($0, $1) ?? true }) { results[id] = result }
        }
        return results.map { $0! }
    }

    /// A continuous batch: requests join between decode steps and leave when they finish.
    public func session() -> DecodeSession {
        let config = languageModel.config
        return DecodeSession(stage: self, batch: GenerationBatch(TextGenerator(
            model: languageModel, decode: decode, detokenizer: detokenizer,
            stepFLOPs: { config.flops(newTokens: $0, cached: $1, logitRows: 1) })))
    }
}

/// Requests being answered together by one decoder stage; a request may join between steps.
public struct DecodeSession {
    private struct Joined {
        let request: DecodeRequest
        let promptTokens: Int
        let projectorFLOPs: Double
    }
    let stage: DecoderStage
    private var batch: GenerationBatch<Llama>
    private var joined: [Int: Joined] = [:]

    init(stage: DecoderStage, batch: GenerationBatch<Llama>) {
        self.stage = stage
        self.batch = batch
    }

    public var isEmpty: Bool { batch.isEmpty }
    /// Requests in the batch.
    public var count: Int { batch.count }

    /// Builds the request's prompt (template, projected visual tokens, caption, question) and adds it to the
    /// batch under `id`; throws (and adds nothing) for a request that cannot be answered.
    public mutating func join(_ id: Int, _ request: DecodeRequest) throws {
        let projector = stage.projector, languageModel = stage.languageModel
        if let features = request.visualFeatures {
            guard features.rank == 2, features.shape[1] == projector.inputSize else {
                throw ModelError.invalidInput(
                    "the decoder expects visual features [K, \(projector.inputSize)], got \(features.shape)")
            }
        }
        let context = languageModel.config.maxPositions
        guard (1...context).contains(request.generation.maxNewTokens) else {
            throw RequestError.maxNewTokensOutOfRange(value: request.generation.maxNewTokens, limit: context)
        }
        let segments = stage.promptSegments(question: request.question, caption: request.caption,
                                            conversation: request.conversation, hasImage: request.visualFeatures != nil)
        var parts = [try languageModel.embed(segments[0])]
        if let features = request.visualFeatures, features.shape[0] > 0 { parts.append(try projector(features)) }
        for segment in segments.dropFirst() where !segment.isEmpty { parts.append(try languageModel.embed(segment)) }
        let prompt = Tensor.concatenateRows(parts)
        let room = context - prompt.shape[0]
        guard room >= 1 else { throw RequestError.promptTooLong(tokens: prompt.shape[0], context: context) }
        var options = request.generation
        options.maxNewTokens = min(options.maxNewTokens, room)
        options.stopTokenIDs.insert(stage.endOfSequenceID)
        try batch.join(id, prompt: prompt, options: options)
        joined[id] = Joined(request: request, promptTokens: prompt.shape[0],
                            projectorFLOPs: projector.config.projectorFLOPs(tokens: request.visualFeatures?.shape[0] ?? 0))
    }

    /// Takes request `id` out of the batch unanswered (cancelled, or past its deadline).
    public mutating func leave(_ id: Int) {
        batch.remove(id)
        joined.removeValue(forKey: id)
    }

    /// One decode step for every request in the batch; returns those that finished. When the step fails,
    /// every request in the batch is dropped and the error thrown.
    public mutating func step(onText: (_ id: Int, _ delta: String) -> Bool) throws -> [(id: Int, result: DecodeResult)] {
        let finished: [(id: Int, generation: Generation)]
        do {
            finished = try batch.step(onText: onText)
        } catch {
            joined.removeAll()
            throw error
        }
        return finished.map { id, generation in
            let entry = joined.removeValue(forKey: id)!
            let sampled = generation.tokens.count + (generation.finishReason == .stopToken ? 1 : 0)
            return (id, DecodeResult(
                text: generation.text, tokens: generation.tokens, finishReason: generation.finishReason,
                promptTokens: entry.promptTokens, flops: entry.projectorFLOPs + generation.flops,
                unprunedFLOPs: stage.unprunedFLOPs(entry.request, promptTokens: entry.promptTokens, sampledTokens: sampled)))
        }
    }
}
