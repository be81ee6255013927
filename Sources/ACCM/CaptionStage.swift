// Stage 2: the caption model. The mapper turns the pruned patches into a prefix of GPT-2 embeddings, the
// question's GPT-2 token embeddings go in front, and beam search writes one candidate caption per beam.

import Models
import Tensor

/// The caption stage: ACCM's mapper + GPT-2 + beam search.
public struct CaptionStage: Sendable {
    public let mapper: CaptionMapper
    public let languageModel: GPT2
    /// Question → GPT-2 ids (no special tokens).
    public let encode: @Sendable (String) -> [Int]
    /// GPT-2 ids → text.
    public let decode: @Sendable ([Int]) -> String
    public let options: BeamSearchOptions

    /// `options.stopTokenID` is the id of the text that ends a caption (ACCM: ".").
    public init(
        mapper: CaptionMapper, languageModel: GPT2, options: BeamSearchOptions,
        encode: @escaping @Sendable (String) -> [Int], decode: @escaping @Sendable ([Int]) -> String
    ) throws {
        guard mapper.config.hiddenSize == languageModel.hiddenSize else {
            throw ModelError.invalidConfig(
                "the caption mapper writes width \(mapper.config.hiddenSize), GPT-2 reads \(languageModel.hiddenSize)")
        }
        let room = languageModel.config.maxPositions - mapper.config.prefixLength - options.maxNewTokens
        guard room >= 1 else {
            throw ModelError.invalidConfig(
                "caption_max_new_tokens \(options.maxNewTokens) and the mapper's prefix_length \(mapper.config.prefixLength) "
                    + "leave no room for a question in GPT-2's n_positions \(languageModel.config.maxPositions)")
        }
        self.mapper = mapper
        self.languageModel = languageModel
        self.options = options
        self.encode = encode
        self.decode = decode
    }

    /// The most question tokens that fit GPT-2's context beside the visual prefix and a full-length caption.
    public var questionTokenLimit: Int {
        languageModel.config.maxPositions - mapper.config.prefixLength - options.maxNewTokens
    }

    /// Captions for a batch of requests; all beams of all requests share each GPT-2 step.
    public func callAsFunction(_ requests: [CaptionRequest]) throws -> [CaptionResult] {
        guard !requests.isEmpty else { return [] }
        var prompts: [Tensor] = []
        var mapperFLOPs: [Double] = []
        for request in requests {
            let pruned = request.prunedEmbeddings
            guard pruned.rank == 2, pruned.shape[1] == mapper.config.inputSize else {
                throw ModelError.invalidInput(
                    "the caption stage expects pruned embeddings [M, \(mapper.config.inputSize)], got \(pruned.shape)")
            }
            let question = encode(request.question)
            guard question.count <= questionTokenLimit else {
                throw RequestError.questionTooManyTokens(
                    model: "the caption model", tokens: question.count, limit: questionTokenLimit,
                    room: "its context of \(languageModel.config.maxPositions) keeps \(mapper.config.prefixLength) for "
                        + "the visual prefix and \(options.maxNewTokens) for the caption")
            }
            let prefix = try mapper(pruned.reshaped([1] + pruned.shape)).slice(0)
            prompts.append(question.isEmpty ? prefix : Tensor.concatenateRows([try languageModel.embed(question), prefix]))
            mapperFLOPs.append(mapper.config.flops(tokens: pruned.shape[0]))
        }
        let config = languageModel.config
        let search = BeamSearch(model: languageModel, options: options) {
            config.flops(newTokens: $0, cached: $1, logitRows: 1)
        }
        let result = try search(prompts)
        return requests.indices.map { i in
            CaptionResult(
                candidates: result.candidates[i].map { decode($0.tokens) },
                tokens: result.candidates[i].map(\.tokens),
                scores: result.candidates[i].map(\.score),
                flops: mapperFLOPs[i] + result.flops[i])
        }
    }
}
