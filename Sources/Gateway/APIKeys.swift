// The API keys the gateway accepts (`Authorization: Bearer KEY`): from a file (one per line, `#` comments)
// and from the environment (`ACCM_API_KEYS`, comma-separated). None configured: no key is asked for, which
// the command line allows only on a loopback address.

import Foundation

/// Accepted API keys.
public struct APIKeys: Sendable {
    private let keys: Set<String>

    public init(_ keys: Set<String>) {
        self.keys = keys
    }

    /// Keys from `file` (if given) and the `ACCM_API_KEYS` environment variable.
    public static func load(file: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> APIKeys {
        var keys = Set<String>()
        if let file {
            let text: String
            do {
                text = try String(contentsOfFile: file, encoding: .utf8)
            } catch {
                throw GatewayConfigurationError("cannot read the API key file \(file): \(error.localizedDescription)")
            }
            for line in text.split(whereSeparator: \.isNewline) {
                let key = line.trimmingCharacters(in: .whitespaces)
                if !key.isEmpty, !key.hasPrefix("#") { keys.insert(key) }
            }
            if keys.isEmpty { throw GatewayConfigurationError("the API key file \(file) holds no key") }
        }
        for key in (environment["ACCM_API_KEYS"] ?? "").split(separator: ",") {
            let key = key.trimmingCharacters(in: .whitespaces)
            if !key.isEmpty { keys.insert(key) }
        }
        return APIKeys(keys)
    }

    /// Whether any key is required.
    public var required: Bool { !keys.isEmpty }

    /// Whether an `Authorization` header value carries an accepted key (compared in constant time per key).
    func accepts(authorization: String?) -> Bool {
        guard required else { return true }
        guard let authorization, authorization.lowercased().hasPrefix("bearer ") else { return false }
        let offered = Array(authorization.dropFirst(7).trimmingCharacters(in: .whitespaces).utf8)
        var found = false
        for key in keys {
            let expected = Array(key.utf8)
            var difference = UInt8(expected.count == offered.count ? 0 : 1)
            for i in 0..<min(expected.count, offered.count) { difference |= expected[i] ^ offered[i] }
            if difference == 0 { found = true }
        }
        return found
    }
}

/// A gateway setting that cannot be used; the message names it.
public struct GatewayConfigurationError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
