// Autoregressive generation for a batch of prompts (input embeddings), with stop tokens, stop strings,
// a token limit and streamed text: every live sequence of the batch shares each forward pass.

import Models
import Tensor

/// One finished answer.
public struct Generation: Sendable {
    /// Generated ids, without a final stop token.
    public var tokens: [Int]
    /// The answer text (up to a stop string, if one appeared).
    public var text: String
    public var finishReason: FinishReason
    public var flops: Double
}

/// Runs generation; `decode` turns generated ids into text (used for stop strings and streaming).
public struct TextGenerator<Model: CausalLanguageModel>: Sendable {
    public let model: Model
    public let decode: @Sendable ([Int]) -> String
    /// FLOPs of `newTokens` positions after `cached` ones with logits for the last row.
    public let stepFLOPs: @Sendable (_ newTokens: Int, _ cached: Int) -> Double

    public init(model: Model, decode: @escaping @Sendable ([Int]) -> String,
                stepFLOPs: @escaping @Sendable (Int, Int) -> Double) {
        self.model = model
        self.decode = decode
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
        for o in options { try o.validate() }
        var states = options.map { SequenceState(options: $0) }
        var caches = zip(prompts, options).map { model.makeCache(capacity: $0.shape[0] + $1.maxNewTokens) }
        var inputs = prompts
        var active = Array(prompts.indices)
        while !active.isEmpty {
            for i in active { states[i].flops += stepFLOPs(inputs[i].shape[0], caches[i].length) }
            var batchCaches = active.map { i in
                var moved = KVCache(layers: 0, width: 0, reservingCapacity: 0)
                swap(&moved, &caches[i])
                return moved
            }
            let outputs = try model.forward(active.map { inputs[$0] }, caches: &batchCaches, recordHiddenStates: false)
            let lastRows = Tensor.concatenateRows(outputs.map { $0.hidden.rows(($0.hidden.rowCount - 1)..<$0.hidden.rowCount) })
            let logits = model.logits(lastRows)
            guard logits.isFinite else {
                let step = active.map { states[$0].tokens.count }.max() ?? 0
                throw ModelError.nonFinite(
                    "the language model's logits hold NaN or infinity at step \(step); its weights may be corrupt "
                        + "(NaN or Inf in the checkpoint), or a norm epsilon is 0")
            }
            var stillActive: [Int] = []
            for (slot, i) in active.enumerated() {
                caches[i] = batchCaches[slot]
                let token = states[i].sampler.next(logits.rows(slot..<(slot + 1)))
                if states[i].accept(token, decode: decode, onText: { onText?(i, $0) ?? true }) {
                    inputs[i] = try model.embed([token])
                    stillActive.append(i)
                }
            }
            active = stillActive
        }
        return states.map { Generation(tokens: $0.tokens, text: $0.text, finishReason: $0.finish ?? .length, flops: $0.flops) }
    }
}

/// One sequence's progress: tokens, text, what has been streamed, and why it ended.
private struct SequenceState {
    let options: GenerationOptions
    var sampler: TokenSampler
    var tokens: [Int] = []
    var text = ""
    var streamed = 0  // unicode scalars of `text` already handed out
    var finish: FinishReason?
    var flops = 0.0

    init(options: GenerationOptions) {
        self.options = options
        sampler = TokenSampler(options.sampling)
    }

    /// Takes the next token; returns whether the sequence goes on.
    mutating func accept(_ token: Int, decode: ([Int]) -> String, onText: (String) -> Bool) -> Bool {
        if options.stopTokenIDs.contains(token) {
            finish = .stopToken
        } else {
            tokens.append(token)
            text = decode(tokens)
            if let stop = options.stopStrings.compactMap({ text.firstRange(of: $0) }).min(by: { $0.lowerBound < $1.lowerBound }) {
                text = String(text[..<stop.lowerBound])
                finish = .stopString
            } else if tokens.count >= options.maxNewTokens {
                finish = .length
            }
        }
        if !stream(onText, final: finish != nil) {
            finish = .cancelled
        }
        return finish == nil
    }

    /// Hands out the text that can no longer change: everything when final, otherwise without a trailing
    /// replacement character (an incomplete UTF-8 sequence) or a tail that may begin a stop string.
    mutating func stream(_ onText: (String) -> Bool, final: Bool) -> Bool {
        let scalars = Array(text.unicodeScalars)
        var end = scalars.count
        if !final {
            while end > streamed && scalars[end - 1] == "\u{FFFD}" { end -= 1 }
            let held = options.stopStrings.map { stop in
                let stopScalars = Array(stop.unicodeScalars)
                return (1..<max(stopScalars.count, 1)).reversed().first { k in
                    k <= end && Array(scalars[(end - k)..<end]) == Array(stopScalars[..<k])
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
