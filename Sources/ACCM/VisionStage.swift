// Stage 1: preprocess the image, run the CLIP vision tower once, decide which patches to keep, and hand
// on the kept patches' features (for the language model) and the pruned patches' joint-space embeddings
// (for the caption model).

import Models
import Tensor

/// The vision stage: CLIP vision (+ the text tower for question-guided pruning) and the pruners.
public struct VisionStage: Sendable {
    public let vision: CLIP.Vision
    public let text: CLIP.Text
    /// Question → CLIP text-tower ids of the tower's context length.
    public let encodeQuestion: @Sendable (String) throws -> [Int]
    /// Image → normalised pixels `[3, imageSize, imageSize]`.
    public let preprocess: @Sendable (ImageInput) throws -> Tensor
    /// Which hidden state feeds the language model (LLaVA's `vision_feature_layer`, −2 = penultimate).
    public let featureLayer: Int

    public init(
        vision: CLIP.Vision, text: CLIP.Text, featureLayer: Int = -2,
        encodeQuestion: @escaping @Sendable (String) throws -> [Int],
        preprocess: @escaping @Sendable (ImageInput) throws -> Tensor
    ) throws {
        guard vision.projectionDim != nil, vision.projectionDim == text.projectionDim else {
            throw ModelError.invalidConfig("the vision stage needs a CLIP checkpoint whose two towers project into one space")
        }
        let layers = vision.config.layerCount
        guard (-(layers + 1)...layers).contains(featureLayer) else {
            throw ModelError.invalidConfig("vision feature layer \(featureLayer) is outside the tower's \(layers + 1) hidden states")
        }
        self.vision = vision
        self.text = text
        self.featureLayer = featureLayer
        self.encodeQuestion = encodeQuestion
        self.preprocess = preprocess
    }

    /// Patches per image (class token excluded).
    public var patchCount: Int { vision.config.visionTokenCount - 1 }

    /// Runs a batch of requests; every image goes through the tower in one batch.
    public func callAsFunction(_ requests: [VisionRequest]) throws -> [VisionResult] {
        guard !requests.isEmpty else { return [] }
        for r in requests where !(r.pruning == .none) && !(1...patchCount).contains(r.budget) {
            throw PruningError.invalidBudget(budget: r.budget, patches: patchCount)
        }
        let pixels = try requests.map { try preprocess($0.image) }
        let output = try vision(Tensor.stack(pixels))
        let tokens = try required(output.tokenEmbeddings, "per-token embeddings")
        let layer = featureLayer < 0 ? output.hiddenStates.count + featureLayer : featureLayer
        let features = output.hiddenStates[layer]
        let attention = requests.contains { $0.pruning.needsClassAttention } ? output.classAttention : nil
        let guided = requests.indices.filter { requests[$0].pruning.needsQuestionSimilarity }
        let questionEmbeddings = try guided.isEmpty ? nil : text(guided.map { try encodeQuestion(requests[$0].question) }).textEmbeddings

        let imageFLOPs = vision.config.visionFLOPs(images: 1, projectionDim: vision.projectionDim)
        return try requests.indices.map { i in
            let request = requests[i]
            let patches = tokens.slice(i).rows(1..<(patchCount + 1))
            var evidence = PruningEvidence(patchCount: patchCount)
            var flops = imageFLOPs
            if let attention { evidence.classAttention = attention.slice(i).scalars }
            if let slot = guided.firstIndex(of: i), let questionEmbeddings {
                evidence.questionSimilarity = cosineSimilarities(patches, questionEmbeddings.slice(slot))
                flops += text.config.textFLOPs(texts: 1, length: text.contextLength, projectionDim: text.projectionDim)
            }
            let kept = try request.pruning.keptIndices(budget: request.budget, evidence: evidence)
            let keptSet = Set(kept)
            let pruned = (0..<patchCount).filter { !keptSet.contains($0) }
            return VisionResult(
                keptFeatures: features.slice(i).gatherRows(kept.map { $0 + 1 }),
                keptIndices: kept,
                prunedEmbeddings: patches.gatherRows(pruned),
                patchCount: patchCount,
                flops: flops,
                unprunedFLOPs: imageFLOPs)
        }
    }

    private func required(_ value: Tensor?, _ what: String) throws -> Tensor {
        guard let value else { throw ModelError.invalidConfig("the vision tower gives no \(what)") }
        return value
    }
}

/// Cosine similarity of every row of `rows [N, P]` with `vector [P]`.
func cosineSimilarities(_ rows: Tensor, _ vector: Tensor) -> [Float] {
    let v = vector.scalars
    let vNorm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
    let width = rows.lastDimension
    return rows.withUnsafeBufferPointer { p in
        (0..<rows.rowCount).map { r in
            var dot: Float = 0, norm: Float = 0
            for j in 0..<width {
                let x = p[r * width + j]
                dot += x * v[j]
                norm += x * x
            }
            let denominator = norm.squareRoot() * vNorm
            return denominator > 0 ? dot / denominator : 0
        }
    }
}
