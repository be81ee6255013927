// A model at the real system's shapes with random weights, for benchmarks that cannot download one: CLIP
// ViT-L/14-336 + CLIP-L's text tower, ACCM's mapper + GPT-2 124M, LongCLIP-L + the selector, and LLaVA-1.5-7B's
// projector + the first `decoderLayers` LLaMA-7B-shaped layers (`ReferenceShapes.llava15`). Tokenizers come
// from a real model directory (the shipped family's: their ids fit every vocabulary). Answers are noise; the
// cost is the real one.

import Images
import Models
import Tensor
import Weights

/// `bench:N` names the random-weight model with N decoder layers.
public struct BenchModel: Sendable {
    public let decoderLayers: Int
    /// Where the tokenizers and the caption stop text come from.
    public let tokenizers: ModelDirectory
    /// The format each component's random matrices are made in (absent: fp32), without an fp32 copy.
    public let weights: WeightFormatChoice
    /// The KV cache format of the caption model and the decoder.
    public let kvCache: KVCacheFormat

    /// Parses "bench:N" (N in 1...32); nil for anything else.
    public init?(_ spec: String, tokenizers: ModelDirectory, weights: WeightFormatChoice = WeightFormatChoice(),
                 kvCache: KVCacheFormat = .f32) {
        guard spec.hasPrefix("bench:"), let n = Int(spec.dropFirst(6)), (1...32).contains(n) else { return nil }
        decoderLayers = n
        self.tokenizers = tokenizers
        self.weights = weights
        self.kvCache = kvCache
    }

    private func random(_ seed: UInt64, _ component: ModelComponent) -> WeightStore {
        .random(seed: seed, matrixFormat: weights.format(for: component))
    }

    /// What a worker registers as its model identity.
    public var identity: String { "bench-llava15-7b-\(decoderLayers)-layers" }

    private var shapes: ReferenceShapes {
        get throws {
            var shapes = try ReferenceShapes.llava15()
            shapes.decoder.layerCount = decoderLayers
            return shapes
        }
    }

    public func vision() throws -> VisionStage {
        let shapes = try shapes
        let real = try VisionStage.load(tokenizers)
        let preprocessor = try CLIPImagePreprocessor(
            configuration: PreprocessorConfiguration(size: .shortestEdge(336), cropHeight: 336, cropWidth: 336),
            padToSquare: true)
        let text = try CLIP.Text(store: random(11, .vision), config: shapes.questionText, projectionDim: shapes.projectionDim)
        let fit = Self.fitting(real.encodeQuestion, context: text.contextLength, endOfText: shapes.questionText.eosTokenId)
        return try VisionStage(
            vision: CLIP.Vision(store: random(10, .vision), config: shapes.vision, projectionDim: shapes.projectionDim),
            text: text, featureLayer: -2,
            encodeQuestion: fit,
            preprocess: { image in
                switch image {
                case .pixels(let pixels): return pixels
                case .encoded(let bytes): return try preprocessor(ImageDecoder.decode(bytes))
                }
            })
    }

    public func caption() throws -> CaptionStage {
        let shapes = try shapes
        let real = try CaptionStage.load(tokenizers)
        var languageModel = try GPT2(store: random(13, .captionLanguageModel), config: shapes.captionModel)
        languageModel.cacheFormat = kvCache
        return try CaptionStage(
            mapper: CaptionMapper(random(12, .captionMapper).scope(""), config: shapes.mapper),
            languageModel: languageModel,
            options: BeamSearchOptions(beams: real.options.beams, maxNewTokens: 24, stopTokenID: real.options.stopTokenID),
            encode: real.encode, decode: real.decode)
    }

    public func selector() throws -> SelectorStage {
        let shapes = try shapes
        let real = try SelectorStage.load(tokenizers)
        let text = try CLIP.Text(store: random(14, .selectorTextEncoder), config: shapes.selectorText, projectionDim: shapes.projectionDim)
        return try SelectorStage(
            text: text, selector: CaptionSelector(random(15, .selector).scope(""), config: shapes.selector),
            encode: Self.fitting(real.encode, context: text.contextLength, endOfText: shapes.selectorText.eosTokenId))
    }

    public func decoder() throws -> DecoderStage {
        let shapes = try shapes
        let real = try DecoderStage.load(tokenizers)
        let store = random(16, .llava)
        var languageModel = try Llama(store: store, config: shapes.decoder, prefix: "language_model.")
        languageModel.cacheFormat = kvCache
        return try DecoderStage(
            projector: LlavaProjector(store.scope("multi_modal_projector."), config: shapes.projector),
            languageModel: languageModel,
            endOfSequenceID: real.endOfSequenceID, encode: real.encode, decode: real.decode, detokenizer: real.detokenizer)
    }

    /// The real tokenizer's ids, cut to the tower's context with its end-of-text id last and padded with it.
    private static func fitting(
        _ encode: @escaping @Sendable (String) throws -> [Int], context: Int, endOfText: Int
    ) -> @Sendable (String) throws -> [Int] {
        { text in
            let ids = Array(try encode(text).prefix(context - 1)) + [endOfText]
            return ids + Array(repeating: endOfText, count: context - ids.count)
        }
    }

    public func pipeline() throws -> ACCMPipeline {
        ACCMPipeline(vision: try vision(), caption: try caption(), selector: try selector(), decoder: try decoder())
    }
}
