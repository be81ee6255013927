// Everything that can be wrong with tokenizer files, said so that a user can act on it.

/// Tokenizer files that cannot be used, and why.
public enum TokenizerError: Error, Equatable, CustomStringConvertible {
    case cannotRead(path: String, reason: String)
    case invalidJSON(path: String, reason: String)
    case invalidFile(path: String, reason: String)
    case unsupported(path: String, feature: String)
    case missingFiles(directory: String, reason: String)
    case mergeTokenNotInVocabulary(path: String, token: String)
    case badMergeLine(path: String, line: Int, text: String)
    case invalidContextLength(Int)

    public var description: String {
        switch self {
        case .cannotRead(let path, let reason): "cannot read \(path): \(reason)"
        case .invalidJSON(let path, let reason): "\(path) is not valid JSON: \(reason)"
        case .invalidFile(let path, let reason): "\(path) is not a usable tokenizer file: \(reason)"
        case .unsupported(let path, let feature): "\(path) uses \(feature), which this tokenizer does not implement"
        case .missingFiles(let directory, let reason): "no tokenizer in \(directory): \(reason)"
        case .mergeTokenNotInVocabulary(let path, let token):
            "\(path): the merge of '\(token)' names a token that is not in the vocabulary"
        case .badMergeLine(let path, let line, let text):
            "\(path): merge \(line) is '\(text)', expected two tokens separated by one space"
        case .invalidContextLength(let n): "context length \(n) leaves no room for the start and end tokens"
        }
    }
}
