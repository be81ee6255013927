// Reading a model's config.json into its Codable configuration.

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Decodes `config.json` files.
public enum ConfigFile {
    /// Decodes `directory/config.json` as `T`; errors name the file and the offending key.
    public static func load<T: Decodable>(_ type: T.Type, from directory: String) throws -> T {
        try decode(type, path: directory + "/config.json")
    }

    /// Decodes the JSON file at `path` as `T`.
    public static func decode<T: Decodable>(_ type: T.Type, path: String) throws -> T {
        guard FileSystem.exists(path) else { throw WeightsError.cannotOpen(path: path, reason: "no such file") }
        let data = try FileSystem.read(path)
        do {
            return try JSONDecoder().decode(type, from: data)
        } catch let error as DecodingError {
            throw WeightsError.invalidConfig(path: path, reason: describe(error))
        } catch {
            throw WeightsError.invalidConfig(path: path, reason: "\(error)")
        }
    }

    private static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.map(\.stringValue).joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let context):
            let at = path(context)
            return "missing key '\(at.isEmpty ? key.stringValue : at + "." + key.stringValue)'"
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            return "wrong type at '\(path(context))': \(context.debugDescription)"
        case .dataCorrupted(let context):
            return path(context).isEmpty ? context.debugDescription : "'\(path(context))': \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }
}
