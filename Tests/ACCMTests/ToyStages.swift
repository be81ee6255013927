import ACCM
import Foundation
import Models
import Tensor
import Weights

/// The four stages built from the engine's fixture models, with a toy tokenizer whose ids are character
/// codes (so prompts and outputs are easy to follow) and a random selector whose width fits the CLIP
/// fixture's text projection (16).
enum ToyStages {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/engine")

    static func path(_ name: String) -> String { fixtures.appendingPathComponent(name).path }

    /// Character codes folded into a vocabulary; "\n" keeps id 10.
    static func characters(_ text: String, vocabulary: Int) -> [Int] {
        text.unicodeScalars.map { Int($0.value) % vocabulary }
    }

    static func text(_ ids: [Int]) -> String {
        String(String.UnicodeScalarView(ids.compactMap { Unicode.Scalar($0) }))
    }

    /// Start token 98, characters, end token 99, padding 0, to the CLIP fixture's context length of 20.
    static func clipIDs(_ text: String) -> [Int] {
        let ids = [98] + characters(text, vocabulary: 97).prefix(18).map { max($0, 1) } + [99]
        return ids + Array(repeating: 0, count: 20 - ids.count)
    }

    static func vision() throws -> VisionStage {
        let clip = path("clip")
        return try VisionStage(
            vision: CLIP.Vision(directory: clip), text: CLIP.Text(directory: clip), encodeQuestion: clipIDs,
            preprocess: { image in
                guard case .pixels(let p) = image else { throw ModelError.invalidInput("pixels only") }
                return p
            })
    }

    static func caption(maxNewTokens: Int) throws -> CaptionStage {
        try CaptionStage(
            mapper: CaptionMapper(directory: path("mapper")), languageModel: GPT2(directory: path("gpt2")),
            options: BeamSearchOptions(beams: 3, maxNewTokens: maxNewTokens, stopTokenID: 46),
            encode: { characters($0, vocabulary: 120) }, decode: text)
    }

    static func selector(layers: Int, seed: UInt64) throws -> SelectorStage {
        let config = try JSONDecoder().decode(CaptionSelectorConfiguration.self, from: Data("""
            {"model_type": "accm_caption_selector", "hidden_size": 16, "num_heads": 2, "intermediate_size": 32,
             "num_layers": \(layers)}
            """.utf8))
        let selector = try CaptionSelector(WeightStore.random(seed: seed, scale: 0.3).scope(""), config: config)
        return try SelectorStage(text: CLIP.Text(directory: path("clip")), selector: selector, encode: clipIDs)
    }

    /// The LLaMA inside the LLaVA fixture (tensors under `language_model.`, config under `text_config`).
    static func llavaLanguageModel() throws -> Llama {
        struct Wrapper: Decodable { let text_config: LlamaConfiguration }
        let config = try ConfigFile.decode(Wrapper.self, path: path("llava") + "/config.json").text_config
        return try Llama(store: WeightStore(directory: path("llava")), config: config, prefix: "language_model.")
    }

    static func decoder() throws -> DecoderStage {
        try DecoderStage(
            projector: LlavaProjector(directory: path("llava")), languageModel: llavaLanguageModel(),
            endOfSequenceID: 2,
            encode: { text, bos in (bos ? [1] : []) + characters(text, vocabulary: 128) }, decode: text)
    }
}
