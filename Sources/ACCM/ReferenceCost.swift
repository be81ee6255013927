// What an answer would have cost at the shapes of the real system (CLIP ViT-L/14-336 + its text tower,
// the ClipCap mapper + GPT-2 124M, LongCLIP-L + the selector, LLaVA-1.5-7B), from the configurations alone.
// A tiny family's caption stage is a far larger share of its cost than beside a 7B decoder, so the table
// of a small model states both counts. Token counts are the answer's own (its tokenizers stand in for the
// real ones) and the budget keeps the same share of patches.

import Foundation
import Models

/// The configurations of the real system's components.
public struct ReferenceShapes: Sendable {
    public var vision: CLIPTowerConfiguration
    public var questionText: CLIPTowerConfiguration
    public var mapper: CaptionMapperConfiguration
    public var captionModel: GPT2Configuration
    public var selectorText: CLIPTowerConfiguration
    public var selector: CaptionSelectorConfiguration
    public var decoder: LlamaConfiguration
    public var projector: LlavaConfiguration
    /// Width of the joint CLIP space (the per-patch and question projections).
    public var projectionDim: Int

    /// CLIP ViT-L/14-336, GPT-2 124M with ACCM's mapper (prefix 20, 4 layers), LongCLIP-L (248 tokens) with
    /// ACCM's selector (4 layers, 8 heads, 1536), LLaVA-1.5-7B (Vicuna-7B, mlp2x_gelu projector).
    public static func llava15() throws -> ReferenceShapes {
        try ReferenceShapes(
            vision: decode(["hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24,
                            "num_attention_heads": 16, "image_size": 336, "patch_size": 14]),
            questionText: decode(["hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                                  "num_attention_heads": 12, "max_position_embeddings": 77]),
            mapper: decode(["model_type": "accm_caption_mapper", "input_size": 768, "hidden_size": 768,
                            "prefix_length": 20, "num_layers": 4, "num_heads": 8, "mlp_ratio": 2.0]),
            captionModel: decode([String: Any]()),
            selectorText: decode(["hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                                  "num_attention_heads": 12, "max_position_embeddings": 248]),
            selector: decode(["model_type": "accm_caption_selector", "hidden_size": 768, "num_heads": 8,
                              "intermediate_size": 1536, "num_layers": 4]),
            decoder: decode(["hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
                             "num_attention_heads": 32, "vocab_size": 32000, "max_position_embeddings": 4096]),
            projector: decode(["vision_config": ["hidden_size": 1024], "text_config": ["hidden_size": 4096]]),
            projectionDim: 768)
    }

    private static func decode<T: Decodable>(_ fields: [String: Any]) throws -> T {
        try JSONDecoder().decode(T.self, from: JSONSerialization.data(withJSONObject: fields))
    }

    /// Patches of the reference vision tower (576).
    public var patchCount: Int { vision.visionTokenCount - 1 }

    /// The cost of `answer` had it run at these shapes, per stage, keeping the same share of patches.
    /// `questionTokens` is the question's length in the caption model's tokens; `usedQuestionGuidance`
    /// says whether the pruner ran the CLIP text tower.
    public func flops(for answer: ACCMAnswer, questionTokens: Int, usedQuestionGuidance: Bool) -> [Stage: Double] {
        let kept = max(1, Int((Double(answer.keptIndices.count) / Double(answer.patchCount) * Double(patchCount)).rounded()))
        var cost: [Stage: Double] = [:]
        cost[.vision] = vision.visionFLOPs(images: 1, projectionDim: projectionDim)
            + (usedQuestionGuidance ? questionText.textFLOPs(texts: 1, length: questionText.maxPositions, projectionDim: projectionDim) : 0)
        if answer.chosenCandidate != nil, !answer.candidateTokens.isEmpty {
            cost[.caption] = mapper.flops(tokens: patchCount - kept) + beamSearchFLOPs(
                prompt: questionTokens + mapper.prefixLength, lengths: answer.candidateTokens.map(\.count))
            cost[.selector] = selectorText.textFLOPs(
                texts: answer.candidateTokens.count, length: selectorText.maxPositions, projectionDim: projectionDim)
                + selector.flops(candidates: answer.candidateTokens.count)
        }
        // The prompt's text (caption included) as the answer had it, with the reference's kept patches.
        let prompt = answer.promptTokens - answer.keptIndices.count + kept
        cost[.decoder] = projector.projectorFLOPs(tokens: kept)
            + decoder.generationFLOPs(promptTokens: prompt, sampledTokens: answer.sampledTokens)
        return cost
    }

    /// Cached beam search: the prompt once, then one token per live beam per step.
    private func beamSearchFLOPs(prompt: Int, lengths: [Int]) -> Double {
        var cost = captionModel.flops(newTokens: prompt, cached: 0, logitRows: 1)
        for step in 1..<max(lengths.max() ?? 1, 1) {
            let live = lengths.filter { $0 > step }.count
            cost += Double(live) * captionModel.flops(newTokens: 1, cached: prompt + step, logitRows: 1)
        }
        return cost
    }
}
