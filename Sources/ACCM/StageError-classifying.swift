// Anything a stage throws, in the closed set of `StageErrorCode`s the wire and the clients see.

import Images
import Models

extension StageError {
    /// The closed-set form of an error a stage threw.
    public init(classifying error: Error) {
        switch error {
        case let error as StageError: self = error
        case let error as RequestError: self.init(error)
        case ModelError.nonFinite(let what): self.init(.nonFinite, what)
        case ModelError.invalidInput(let what): self.init(.invalidMessage, what)
        case PruningError.invalidBudget(let budget, let patches):
            self.init(RequestError.budgetOutOfRange(budget: budget, patches: patches))
        case let error as ImageError: self.init(RequestError.image(error))
        case let error as PreprocessingError: self.init(RequestError.preprocessing(error))
        default: self.init(.internal, "\(error)")
        }
    }
}
