// Admission: every field of a request checked against `RequestLimits` and the models' contexts, and its image
// decoded and preprocessed, before any stage allocates for it. What comes out holds pixels of the tower's
// shape and a question that fits every model it will meet, so one request's bad input costs that request
// an error and nothing else.

import Images
import Models
import Tensor

extension ACCMPipeline {
    /// The request with its image preprocessed into pixels, or the reason it cannot be answered.
    public func admit(_ request: ACCMRequest) throws(RequestError) -> ACCMRequest {
        let patches = vision.patchCount
        if request.image != nil, request.pruning != .none {
            guard (1...patches).contains(request.budget) else {
                throw .budgetOutOfRange(budget: request.budget, patches: patches)
            }
        }
        if request.image != nil, case .accm(_, _, let picks?) = request.pruning, !(0...patches).contains(picks) {
            throw .budgetOutOfRange(budget: picks, patches: patches)
        }
        let context = decoder.languageModel.config.maxPositions
        guard (1...context).contains(request.generation.maxNewTokens) else {
            throw .maxNewTokensOutOfRange(value: request.generation.maxNewTokens, limit: context)
        }
        try limits.check(request)
        try checkTokens(request)
        var admitted = request
        if let image = request.image { admitted.image = .pixels(try pixels(image)) }
        return admitted
    }

    /// Whether the caption stage runs for `request` (a caption is asked for and something is pruned).
    public func captions(_ request: ACCMRequest) -> Bool {
        request.image != nil && request.compensate && request.pruning != .none && request.budget < vision.patchCount
    }

    /// The question against the caption model's context (when it captions) and the decoder's.
    private func checkTokens(_ request: ACCMRequest) throws(RequestError) {
        let captioning = captions(request)
        if captioning {
            let tokens = caption.encode(Self.guidingText(request.question)).count
            let limit = caption.questionTokenLimit
            let gpt2 = caption.languageModel.config
            guard tokens <= limit else {
                throw .questionTooManyTokens(
                    model: "the caption model", tokens: tokens, limit: limit,
                    room: "its context of \(gpt2.maxPositions) keeps \(caption.mapper.config.prefixLength) for the "
                        + "visual prefix and \(caption.options.maxNewTokens) for the caption")
            }
        }
        let context = decoder.languageModel.config.maxPositions
        let hasImage = request.image != nil
        let visual = !hasImage ? 0 : request.pruning == .none ? vision.patchCount : request.budget
        let template = decoder.promptSegments(question: "", caption: nil, hasImage: hasImage).reduce(0) { $0 + $1.count }
        let prompt = decoder.promptSegments(question: request.question, caption: nil, conversation: request.conversation,
                                            hasImage: hasImage).reduce(0) { $0 + $1.count }
        let captionRoom = captioning ? decoder.captionTokenReserve(captionTokens: caption.options.maxNewTokens) : 0
        let limit = context - template - visual - captionRoom - 1
        guard prompt - template <= limit else {
            throw .questionTooManyTokens(
                model: request.conversation.history.isEmpty && request.conversation.system == nil
                    ? "the decoder" : "the decoder (with the conversation before it)", tokens: prompt - template, limit: max(limit, 0),
                room: "its context of \(context) keeps \(template) for the template, \(visual) for visual tokens, "
                    + (captioning ? "\(captionRoom) for the caption " : "") + "and 1 for the answer")
        }
    }

    /// Pixels of the vision tower's input shape, decoded and preprocessed from an encoded image.
    private func pixels(_ image: ImageInput) throws(RequestError) -> Tensor {
        let side = vision.vision.config.imageSize
        let expected = [vision.vision.config.channelCount, side, side]
        let pixels: Tensor
        do {
            pixels = try vision.preprocess(image)
        } catch let error as ImageError {
            throw .image(error)
        } catch let error as PreprocessingError {
            throw .preprocessing(error)
        } catch {
            throw .invalidPixels("\(error)")
        }
        guard pixels.shape == expected else {
            throw .invalidPixels("shape \(pixels.shape), the vision tower takes \(expected)")
        }
        guard pixels.isFinite else { throw .invalidPixels("they hold NaN or infinity") }
        return pixels
    }
}
