// Autoregressive generation for a batch of prompts (input embeddings), with stop tokens, stop strings,
// a token limit and streamed text: every live sequence of the batch shares each forward pass.

import Models
import Tensor
import Tokenizers

/// One finished answer.
public struct Generation: Sendable {
    /// Generated ids, without a final stop token.
    public var tokens: [Int]
    /// The answer text (up to a stop string, if one appeared).
    public var text: String
    public var finishReason: FinishReason
    public var flops: Double
}

/// Runs generation; `decode` turns generated ids into text (used for stop strings and streaming), or, when
/// given, a fresh `detokenizer` per sequence turns each new id into the text it completes (linear in the
/// answer's length, where decoding the whole answer at every step is quadratic).
public struct TextGenerator<Model: CausalLanguageModel>: Sendable {
    public let model: Model
    public let decode: @Sendable ([Int]) -> String
    public let detokenizer: (@Sendable () -> StreamingDetokenizer)?
    /// FLOPs of `newTokens` positions after `cached` ones with logits for the last row.
    public let stepFLOPs: @Sendable (_ newTokens: Int, _ cached: Int) -> Double

    public init(model: Model, decode: @escaping @Sendable ([Int]) -> String,
                detokenizer: (@Sendable () -> StreamingDetokenizer)? = nil,
                stepFLOPs: @escaping @Sendable (Int, Int) -> Double) {
        self.model = model
        self.decode = decode
        self.detokenizer = detokenizer
        self.stepFLOPs = stepFLOPs
    }

    /// Generates a continuation of every prompt `[T, hiddenSize]`. `onText(i, delta)` receives request `i`'s
    /// text as it becomes final (never a broken character, never part of a stop string); returning false
    /// cancels that request.
    public func callAsFunction(
        _ prompts: [Tensor], options: [GenerationOptions],
        onText: ((_ request: Int, _ delta: String) -> Bool)? = nil
    ) throws -> [Generation] {
        guard prompts.count == options.count else {
            throw ModelError.invalidInput("\(prompts.count) prompts with \(options.count) option sets")
        }
        var batch = GenerationBatch(self)
        for (i, (prompt, o)) in zip(prompts, options).enumerated() { try batch.join(i, prompt: prompt, options: o) }
        var results = [Generation?](repeating: nil, count: prompts.count)
        while !batch.isEmpty {
            for (id, generation) in try batch.step(onText: { onText?($0, $1) ?? true }) { results[id] = generation }
        }
        return results.map { $0! }
    }
}

/// Sequences generated together, one forward pass over the weights per step for all of them: a sequence
/// may join between steps (its prompt is that step's input for it) and leaves when it finishes, so a
/// decoder can batch continuously.
public struct GenerationBatch<Model: CausalLanguageModel> {
    private struct Live {
        let id: Int
        var state: SequenceState
        var cache: KVCache
        var input: Tensor
    }
    private let generator: TextGenerator<Model>
    private var live: [Live] = []

    public init(_ generator: TextGenerator<Model>) {
        self.generator = generator
    }

    public var isEmpty: Bool { live.isEmpty }
    public var count: Int { live.count }

    /// Adds a sequence with its prompt `[T, hiddenSize]`; `id` names it in what `step` returns.
    public mutating func join(_ id: Int, prompt: Tensor, options: GenerationOptions) throws {
        try options.validate()
        guard prompt.rank == 2, prompt.shape[0] >= 1 else {
            throw ModelError.invalidInput("a prompt must be [T ≥ 1, hiddenSize], got \(prompt.shape)")
        }
        live.append(Live(id: id, state: SequenceState(options: options, detokenizer: generator.detokenizer?()),
                         cache: generator.model.makeCache(capacity: prompt.shape[0] + options.maxNewTokens), input: prompt))
    }

    /// Drops sequence `id` (cancelled, or past its deadline) before the next step; false if it is not here.
    @discardableResult
    public mutating func remove(_ id: Int) -> Bool {
        guard let index = live.firstIndex(where: { $0.id == id }) else { return false }
        live.remove(at: index)
        return true
    }

    /// One forward pass for every live sequence and one token for each; returns the sequences that finished.
    /// `onText(id, delta)` streams text; returning false cancels that sequence. When the pass itself fails
    /// (non-finite logits), every live sequence is dropped and the error thrown.
    public mutating func step(onText: (_ id: Int, _ delta: String) -> Bool) throws -> [(id: Int, generation: Generation)] {
        guard !live.isEmpty else { return [] }
        let model = generator.model
        for i in live.indices { live[i].state.flops += generator.stepFLOPs(live[i].input.shape[0], live[i].cache.length) }
        var caches = live.indices.map { i in
            var moved = KVCache(layers: 0, width: 0, reservingCapacity: 0)
            swap(&moved, &live[i].cache)
            return moved
        }
        let outputs: [DecoderOutput]
        do {
            outputs = try model.forward(live.map(\.input), caches: &caches, recordHiddenStates: false)
        } catch {
            live.removeAll()
            throw error
        }
        let lastRows = Tensor.concatenateRows(outputs.map { $0.hidden.rows(($0.hidden.rowCount - 1)..<$0.hidden.rowCount) })
        let logits = model.logits(lastRows)
        guard logits.isFinite else {
            let step = live.map(\.state.tokens.count).max() ?? 0
            live.removeAll()
            throw ModelError.nonFinite(
                "the language model's logits hold NaN or infinity at step \(step); its weights may be corrupt "
                    + "(NaN or Inf in the checkpoint), or a norm epsilon is 0")
        }
        var finished: [(id: Int, generation: Generation)] = []
        var still: [Live] = []
        for (slot, var sequence) in live.enumerated() {
            sequence.cache = caches[slot]
            let token = sequence.state.sampler.next(logits.rows(slot..<(slot + 1)))
            let id = sequence.id
            if sequence.state.accept(token, decode: generator.decode, onText: { onText(id, $0) }) {
                sequence.input = try model.embed([token])
                still.append(sequence)
            } else {
                let s = sequence.state
                finished.append((id, Generation(tokens: s.tokens, text: s.text, finishReason: s.finish ?? .length, flops: s.flops)))
            }
        }
        live = still
        return finished
    }
}

/// One sequence's progress: tokens, text, what has been streamed, and why it ended.
struct SequenceState {
    let options: GenerationOptions
    var sampler: TokenSampler
    var tokens: [Int] = []
    var text = ""
    /// `text`'s scalars, kept beside it so that streaming a token's text does not rebuild them.
    var scalars: [Unicode.Scalar] = []
    var streamed = 0  // scalars of `text` already handed out
    var finish: FinishReason?
    var flops = 0.0

    /// Turns each new id into the text it completes; nil: the whole answer is decoded at every step.
    var detokenizer: StreamingDetokenizer?

    init(options: GenerationOptions, detokenizer: StreamingDetokenizer? = nil) {
        self.options = options
        sampler = TokenSampler(options.sampling)
        self.detokenizer = detokenizer
    }

    /// Takes the next token; returns whether the sequence goes on.
    mutating func accept(_ token: Int, decode: ([Int]) -> String, onText: (String) -> Bool) -> Bool {
        if options.stopTokenIDs.contains(token) {
            finish = .stopToken
        } else {
            tokens.append(token)
            if detokenizer != nil {
                append(detokenizer!.append(token))
            } else {
                text = decode(tokens)
                scalars = Array(text.unicodeScalars)
            }
            if let stop = options.stopStrings.compactMap({ text.firstRange(of: $0) }).min(by: { $0.lowerBound < $1.lowerBound }) {
                text = String(text[..<stop.lowerBound])
                scalars = Array(text.unicodeScalars)
                finish = .stopString
            } else if tokens.count >= options.maxNewTokens {
                finish = .length
            }
        }
        if finish == .stopToken || finish == .length, detokenizer != nil {
            append(detokenizer!.finish())  // bytes held back for a character that never completed
        }
        if !stream(onText, final: finish != nil) {
            finish = .cancelled
        }
        return finish == nil
    }

    private mutating func append(_ delta: String) {
        text += delta
        scalars += delta.unicodeScalars
    }

    /// Hands out the text that can no longer change: everything when final, otherwise without a trailing
    /// replacement character (an incomplete UTF-8 sequence) or a tail that may begin a stop string.
    mutating func stream(_ onText: (String) -> Bool, final: Bool) -> Bool {
        var end = scalars.count
        if !final {
            while end > streamed && scalars[end - 1] == "\u{FFFD}" { end -= 1 }
            let held = options.stopStrings.map { stop in
                let stopScalars = Array(stop.unicodeScalars)
                return (1..<max(stopScalars.count, 1)).reversed().first { k in
                    k <= end && scalars[(end - k)..<end].elementsEqual(stopScalars[..<k])
                } ?? 0
            }.max() ?? 0
            end -= held
        }
        guard end > streamed else { return true }
        var delta = String.UnicodeScalarView()
        delta.append(contentsOf: scalars[streamed..<end])
        streamed = end
        return onText(String(delta))
    }
}
