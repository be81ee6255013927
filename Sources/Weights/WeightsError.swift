// Everything that can be wrong with a checkpoint, said so that a user can act on it.

/// A checkpoint that cannot be used, and why.
public enum WeightsError: Error, Equatable, CustomStringConvertible {
    case cannotOpen(path: String, reason: String)
    case corruptFile(path: String, reason: String)
    case missingTensor(name: String, in: String)
    /// The checkpoint's tensor does not have the shape its config implies.
    case wrongShape(name: String, expected: [Int], found: [Int], in: String)
    case unsupportedDType(name: String, dtype: String)
    case unusedTensors(names: [String], in: String)
    case invalidConfig(path: String, reason: String)

    public var description: String {
        switch self {
        case .cannotOpen(let path, let reason): "cannot open \(path): \(reason)"
        case .corruptFile(let path, let reason): "\(path) is not a valid safetensors file: \(reason)"
        case .missingTensor(let name, let place): "tensor '\(name)' is missing from \(place)"
        case .wrongShape(let name, let expected, let found, let place):
            "tensor '\(name)' in \(place) has shape \(found), but its config.json implies \(expected)"
        case .unsupportedDType(let name, let dtype):
            "tensor '\(name)' has dtype \(dtype); supported are F32, F16, BF16 (floats) and I64, I32 (integers)"
        case .unusedTensors(let names, let place):
            "\(place) holds \(names.count) tensor(s) the model does not use, e.g. \(names.prefix(5).joined(separator: ", "))"
        case .invalidConfig(let path, let reason): "invalid config \(path): \(reason)"
        }
    }
}
