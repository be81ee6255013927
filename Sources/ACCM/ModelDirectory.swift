// An ACCM model directory: one Hugging Face sub-directory per component and a small manifest
// (`accm.json`) naming them, loaded into the four stages.
//
//   accm.json                  the manifest (below)
//   vision/                    CLIPModel: vision + text towers with projections, CLIP tokenizer,
//                              preprocessor_config.json (the pruner's CLIP; its vision tower also
//                              gives the language model its visual features, as in LLaVA-1.5)
//   caption/mapper/            accm_caption_mapper (Scripts/accm_modules.py)
//   caption/gpt2/              GPT2LMHeadModel + GPT-2 tokenizer
//   selector/text/             CLIPModel or CLIPTextModelWithProjection (LongCLIP) + CLIP tokenizer
//   selector/scorer/           accm_caption_selector
//   llava/                     LlavaForConditionalGeneration (projector + LLaMA) + LLaMA tokenizer
//
// {"format": 1, "vision": "vision", "caption_mapper": "caption/mapper", "caption_language_model":
//  "caption/gpt2", "selector_text_encoder": "selector/text", "selector": "selector/scorer", "llava": "llava",
//  "image_aspect_ratio": "pad", "vision_feature_layer": -2, "caption_stop": ".", "caption_beams": 3,
//  "caption_max_new_tokens": 67, "weights": {"llava": "int4"}}
//
// "weights" (optional) is the format each component keeps its weight matrices in: one of "stored" (the
// checkpoint's own type, the default), "f32", "bf16", "f16", "int8", "int4" for every component, or an
// object naming components (the keys above: "vision", "caption_mapper", ...). See WeightFormatChoice.
// "kv_cache" (optional): "f32" (exact, the default) or "f16" (half the memory), the type the language models'
// KV caches (the decoder's and the caption model's) store keys and values in.

import Images
import Models
import Tensor
import Tokenizers
import Weights

/// The manifest of an ACCM model directory.
public struct ModelManifest: Decodable, Sendable {
    public var format: Int
    public var vision: String
    public var captionMapper: String
    public var captionLanguageModel: String
    public var selectorTextEncoder: String
    public var selector: String
    public var llava: String
    public var imageAspectRatio: ImageAspectRatio
    public var visionFeatureLayer: Int
    public var captionStop: String
    public var captionBeams: Int
    public var captionMaxNewTokens: Int
    /// The weight format per component (empty: every component as stored).
    public var weights: WeightFormatChoice
    /// The type the language models' KV caches store keys and values in.
    public var kvCache: KVCacheFormat

    enum CodingKeys: String, CodingKey {
        case format, vision, selector, llava
        case captionMapper = "caption_mapper", captionLanguageModel = "caption_language_model"
        case selectorTextEncoder = "selector_text_encoder", imageAspectRatio = "image_aspect_ratio"
        case visionFeatureLayer = "vision_feature_layer", captionStop = "caption_stop"
        case captionBeams = "caption_beams", captionMaxNewTokens = "caption_max_new_tokens", weights
        case kvCache = "kv_cache"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        format = try c.decodeInteger(.format, in: -largestConfigSize...largestConfigSize)
        guard format == 1 else {
            throw DecodingError.dataCorruptedError(forKey: .format, in: c, debugDescription: "unknown manifest format \(format) (this build reads 1)")
        }
        vision = try c.decode(String.self, forKey: .vision)
        captionMapper = try c.decode(String.self, forKey: .captionMapper)
        captionLanguageModel = try c.decode(String.self, forKey: .captionLanguageModel)
        selectorTextEncoder = try c.decode(String.self, forKey: .selectorTextEncoder)
        selector = try c.decode(String.self, forKey: .selector)
        llava = try c.decode(String.self, forKey: .llava)
        imageAspectRatio = ImageAspectRatio(rawValue: try c.decodeChoice(
            .imageAspectRatio, allowed: ImageAspectRatio.allCases.map(\.rawValue), default: "pad"))!
        visionFeatureLayer = try c.decodeInteger(.visionFeatureLayer, in: -1024...1024, default: -2)
        captionStop = try c.decodeIfPresent(String.self, forKey: .captionStop) ?? "."
        captionBeams = try c.decodeInteger(.captionBeams, in: 1...Self.largestBeamCount, default: 3)
        captionMaxNewTokens = try c.decodeSize(.captionMaxNewTokens, default: 67)
        weights = try c.decodeIfPresent(WeightFormatChoice.self, forKey: .weights) ?? WeightFormatChoice()
        kvCache = KVCacheFormat(rawValue: try c.decodeChoice(
            .kvCache, allowed: KVCacheFormat.allCases.map(\.rawValue), default: KVCacheFormat.f32.rawValue))!
    }

    /// The most caption beams a manifest may ask for (each is a GPT-2 sequence in every step).
    public static let largestBeamCount = 16
}

/// How an image that is not square reaches the vision tower's square input.
public enum ImageAspectRatio: String, Sendable, CaseIterable {
    /// LLaVA-1.5: centre it on a square filled with the processor's mean colour, then resize.
    case pad
    /// CLIP's own preprocessing: resize the shortest side, then centre-crop.
    case crop
}

/// An ACCM model directory: its manifest and where each component lives.
public struct ModelDirectory: Sendable {
    public let path: String
    public let manifest: ModelManifest
    /// User text is tokenized as text unless this is set (see `ACCMPipeline.load`).
    public let parseSpecialTokens: Bool
    /// The weight format of each component: the manifest's, with `weightSettings` applied over it.
    public let weights: WeightFormatChoice
    /// The KV cache format of the language models: the manifest's, or `kvCache` when given.
    public let kvCache: KVCacheFormat

    /// Reads `directory/accm.json`; `weightSettings` ("int8", "llava=int4", as `--weights` takes them) override
    /// the manifest's "weights", `kvCache` (as `--kv-cache`) its "kv_cache".
    public init(_ path: String, parseSpecialTokens: Bool = false, weightSettings: [String] = [],
                kvCache: KVCacheFormat? = nil) throws {
        self.path = path
        self.manifest = try ConfigFile.decode(ModelManifest.self, path: path + "/accm.json")
        self.parseSpecialTokens = parseSpecialTokens
        var weights = manifest.weights
        try weights.apply(settings: weightSettings)
        self.weights = weights
        self.kvCache = kvCache ?? manifest.kvCache
    }

    /// The format `component`'s weight matrices are kept in (nil: as stored).
    public func matrixFormat(_ component: ModelComponent) -> WeightFormat? { weights.format(for: component) }

    /// The absolute path of a component directory named in the manifest.
    public func component(_ relative: String) -> String { path + "/" + relative }
}

extension VisionStage {
    /// Loads the vision stage alone: `vision/` (both CLIP towers, the tokenizer, the preprocessor).
    public static func load(_ model: ModelDirectory, imageLimits: ImageLimits = .default) throws -> VisionStage {
        let parse = model.parseSpecialTokens
        let clipDirectory = model.component(model.manifest.vision)
        let clipTokenizer = try CLIPTokenizer(directory: clipDirectory)
        let clipText = try CLIP.Text(directory: clipDirectory, matrixFormat: model.matrixFormat(.vision))
        let preprocessor = try CLIPImagePreprocessor(
            contentsOf: clipDirectory + "/preprocessor_config.json", padToSquare: model.manifest.imageAspectRatio == .pad)
        let contextLength = clipText.contextLength
        return try VisionStage(
            vision: CLIP.Vision(directory: clipDirectory, matrixFormat: model.matrixFormat(.vision)), text: clipText, featureLayer: model.manifest.visionFeatureLayer,
            encodeQuestion: { try clipTokenizer.encode($0, contextLength: contextLength, parseSpecialTokens: parse) },
            preprocess: { image in
                switch image {
                case .pixels(let pixels): return pixels
                case .encoded(let bytes): return try preprocessor(ImageDecoder.decode(bytes, limits: imageLimits))
                }
            })
    }
}

extension CaptionStage {
    /// Loads the caption stage alone: `caption/mapper/` and `caption/gpt2/` (with its tokenizer).
    public static func load(_ model: ModelDirectory) throws -> CaptionStage {
        let parse = model.parseSpecialTokens
        let manifest = model.manifest
        let gpt2Directory = model.component(manifest.captionLanguageModel)
        let gpt2Tokenizer = try loadTokenizer(directory: gpt2Directory)
        let stopIDs = gpt2Tokenizer.encode(manifest.captionStop, addSpecialTokens: false)
        guard stopIDs.count == 1 else {
            throw ModelError.invalidConfig("the caption stop text '\(manifest.captionStop)' is not one GPT-2 token")
        }
        var languageModel = try GPT2(directory: gpt2Directory, matrixFormat: model.matrixFormat(.captionLanguageModel))
        languageModel.cacheFormat = model.kvCache
        return try CaptionStage(
            mapper: CaptionMapper(directory: model.component(manifest.captionMapper), matrixFormat: model.matrixFormat(.captionMapper)),
            languageModel: languageModel,
            options: BeamSearchOptions(beams: manifest.captionBeams, maxNewTokens: manifest.captionMaxNewTokens,
                                       stopTokenID: stopIDs[0]),
            encode: { gpt2Tokenizer.encode($0, addSpecialTokens: false, parseSpecialTokens: parse) },
            decode: { gpt2Tokenizer.decode($0, skipSpecialTokens: true) })
    }
}

extension SelectorStage {
    /// Loads the selector stage alone: `selector/text/` (a CLIP or LongCLIP text tower) and `selector/scorer/`.
    public static func load(_ model: ModelDirectory) throws -> SelectorStage {
        let parse = model.parseSpecialTokens
        let textDirectory = model.component(model.manifest.selectorTextEncoder)
        let tokenizer = try CLIPTokenizer(directory: textDirectory)
        let text = try CLIP.Text(directory: textDirectory, matrixFormat: model.matrixFormat(.selectorTextEncoder))
        let context = text.contextLength
        return try SelectorStage(
            text: text,
            selector: CaptionSelector(directory: model.component(model.manifest.selector), matrixFormat: model.matrixFormat(.selector)),
            encode: { try tokenizer.encode($0, contextLength: context, parseSpecialTokens: parse) })
    }
}

extension DecoderStage {
    /// Loads the decoder stage alone: the projector and the LLaMA language model of `llava/`, with its tokenizer.
    /// The checkpoint's own vision tower (`vision_tower.*`), when it has one, is skipped by rule: the vision
    /// stage's CLIP gives the features (as LLaVA-1.5 uses that same frozen CLIP); any other unread tensor is an error.
    public static func load(_ model: ModelDirectory) throws -> DecoderStage {
        let parse = model.parseSpecialTokens
        let llavaDirectory = model.component(model.manifest.llava)
        let llamaTokenizer = try loadTokenizer(directory: llavaDirectory)
        guard let eos = llamaTokenizer.specialTokens.eos else {
            throw ModelError.invalidConfig("the LLaVA tokenizer in \(llavaDirectory) names no end-of-sequence token")
        }
        struct LlavaTextConfig: Decodable { let text_config: LlamaConfiguration }
        let llamaConfig = try ConfigFile.load(LlavaTextConfig.self, from: llavaDirectory).text_config
        let llavaConfig = try ConfigFile.load(LlavaConfiguration.self, from: llavaDirectory)
        let store = try WeightStore(directory: llavaDirectory, matrixFormat: model.matrixFormat(.llava))
        guard store.contains("language_model.model.embed_tokens.weight") else {
            throw ModelError.unsupported("LLaVA checkpoint layout in \(llavaDirectory): expected language_model.model.* tensors")
        }
        let projectorPrefix = store.contains("model.multi_modal_projector.linear_1.weight")
            ? "model.multi_modal_projector." : "multi_modal_projector."
        let projector = try LlavaProjector(store.scope(projectorPrefix), config: llavaConfig)
        var languageModel = try Llama(store: store, config: llamaConfig, prefix: "language_model.")
        languageModel.cacheFormat = model.kvCache
        try store.verifyAllUsed(ignoring: { name in
            name.hasPrefix("vision_tower.") || name.hasPrefix("model.vision_tower.") || name.hasSuffix("rotary_emb.inv_freq")
        })
        return try DecoderStage(
            projector: projector, languageModel: languageModel, endOfSequenceID: eos,
            // Without BOS = the authors' `tokenizer(text).input_ids[1:]` (tokenizer_image_token's chunks, the
            // caption): only the template's leading BOS goes; "<s>" written in the text stays a token when parsed,
            // as there.
            encode: { text, bos in llamaTokenizer.encode(text, addSpecialTokens: bos, parseSpecialTokens: parse) },
            decode: { llamaTokenizer.decode($0, skipSpecialTokens: true) },
            detokenizer: { llamaTokenizer.streamingDetokenizer(skipSpecialTokens: true) })
    }
}

extension ACCMPipeline {
    /// Loads every stage of the model directory `directory` (see the layout above), each component's matrices
    /// in the format the manifest's "weights" and then `weightSettings` give it. User text (the question,
    /// and the caption the decoder reads) is tokenized as text unless `parseSpecialTokens` (what the authors'
    /// code does, kept for the parity fixtures): then text spelling `</s>` or `<image>` becomes that token.
    public static func load(
        directory: String, limits: RequestLimits = .default, parseSpecialTokens: Bool = false, weightSettings: [String] = [],
        kvCache: KVCacheFormat? = nil
    ) throws -> ACCMPipeline {
        let model = try ModelDirectory(directory, parseSpecialTokens: parseSpecialTokens, weightSettings: weightSettings,
                                       kvCache: kvCache)
        return ACCMPipeline(
            vision: try VisionStage.load(model, imageLimits: limits.image), caption: try CaptionStage.load(model),
            selector: try SelectorStage.load(model), decoder: try DecoderStage.load(model), limits: limits)
    }
}
