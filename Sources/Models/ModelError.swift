// Errors of model loading and of model inputs.

/// A model that cannot be built, or an input a model cannot take.
public enum ModelError: Error, Equatable, CustomStringConvertible {
    /// The checkpoint asks for something the engine does not implement.
    case unsupported(String)
    /// A config value is out of range or inconsistent.
    case invalidConfig(String)
    /// An input that does not fit the model (wrong shape, token out of the vocabulary, too long).
    case invalidInput(String)
    /// A model produced NaN or infinite values (corrupt weights, or an input that overflows).
    case nonFinite(String)

    public var description: String {
        switch self {
        case .unsupported(let what): "unsupported: \(what)"
        case .invalidConfig(let what): "invalid model config: \(what)"
        case .invalidInput(let what): "invalid input: \(what)"
        case .nonFinite(let what): "non-finite values: \(what)"
        }
    }
}
