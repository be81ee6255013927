// Anything a stage throws, in the closed set of `StageErrorCode`s the wire and the clients see.

import Models

extension StageError {
    /// The closed-set form of an error a stage threw.
    public init(classifying error: Error) {
        switch error {
        case let error as StageError: self = error
        case let error as RequestError: self.init(error)
        case ModelError.nonFinite(let what): self.init(.nonFinite, what)
        case ModelError.invalidInput(let what): self.init(.invalidMessage, what)
        default: self.init(.internal, "\(error)")
        }
    }
}
