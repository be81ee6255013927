// CurveZMQ keys, key files and allow-lists. Key files use pyzmq's layout (`zmq.auth.create_certificates`):
// `NAME.key` holds the public key, `NAME.key_secret` both keys, as `public-key = "Z85"` lines, so keys made
// with either tool work with the other.

import CZeroMQ
import Foundation

/// Why a key, a key file or an allow-list cannot be used.
public struct CurveKeyError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// A CURVE key pair, as 40-character Z85 strings.
public struct CurveKeyPair: Sendable, Equatable {
    public let publicKey: String
    public let secretKey: String

    /// Whether this libzmq was built with CURVE (Debian's is, through libsodium).
    public static var isAvailable: Bool { zmq_has("curve") == 1 }

    /// A new random key pair.
    public static func generate() throws -> CurveKeyPair {
        var publicKey = [CChar](repeating: 0, count: 41), secretKey = [CChar](repeating: 0, count: 41)
        guard zmq_curve_keypair(&publicKey, &secretKey) == 0 else {
            throw CurveKeyError("cannot make a CURVE key pair: this libzmq has no CURVE support")
        }
        return CurveKeyPair(publicKey: String(z85: publicKey), secretKey: String(z85: secretKey))
    }

    private init(publicKey: String, secretKey: String) {
        self.publicKey = publicKey
        self.secretKey = secretKey
    }

    /// The pair of a secret key (its public key derived from it).
    public init(secretKey: String) throws {
        _ = try Self.rawKey(secretKey, what: "secret key")
        var publicKey = [CChar](repeating: 0, count: 41)
        guard zmq_curve_public(&publicKey, secretKey) == 0 else {
            throw CurveKeyError("cannot derive the public key: this libzmq has no CURVE support")
        }
        self.init(publicKey: String(z85: publicKey), secretKey: secretKey)
    }

    /// Reads a secret key file (`NAME.key_secret`); its public key, when present, must match the secret one.
    public static func load(secretFile path: String) throws -> CurveKeyPair {
        let fields = try keyFileFields(path)
        guard let secret = fields["secret-key"] else {
            throw CurveKeyError("\(path) holds no secret-key (a public .key file was given where the .key_secret file is needed)")
        }
        let pair = try CurveKeyPair(secretKey: secret)
        if let stated = fields["public-key"], stated != pair.publicKey {
            throw CurveKeyError("\(path): its public-key is not the one its secret-key makes")
        }
        return pair
    }

    /// Writes `NAME.key` (public, mode 0644) and `NAME.key_secret` (mode 0600) into `directory`; refuses to
    /// overwrite either.
    public func write(to directory: String, name: String) throws -> (publicFile: String, secretFile: String) {
        guard !name.isEmpty, !name.contains("/") else { throw CurveKeyError("a key name must be non-empty, without '/'") }
        let publicFile = directory + "/" + name + ".key", secretFile = publicFile + "_secret"
        for file in [publicFile, secretFile] where FileManager.default.fileExists(atPath: file) {
            throw CurveKeyError("\(file) exists: not overwriting a key")
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let header = "#   ZeroMQ CURVE certificate (accm keygen)\n#   Public keys go on allow-lists; keep the _secret file private.\n"
        let metadata = "metadata\n    name = \"\(name)\"\ncurve\n"
        try write(header + metadata + "    public-key = \"\(publicKey)\"\n", to: publicFile, mode: 0o644)
        try write(header + metadata + "    public-key = \"\(publicKey)\"\n    secret-key = \"\(secretKey)\"\n",
                  to: secretFile, mode: 0o600)
        return (publicFile, secretFile)
    }

    private func write(_ text: String, to path: String, mode: mode_t) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode)
        guard fd >= 0 else { throw CurveKeyError("cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        guard Foundation.write(fd, bytes, bytes.count) == bytes.count else { throw CurveKeyError("cannot write \(path)") }
    }

    /// The 32 bytes a Z85 key encodes.
    static func rawKey(_ z85: String, what: String) throws -> [UInt8] {
        guard z85.utf8.count == 40 else {
            throw CurveKeyError("a CURVE \(what) is 40 Z85 characters, got \(z85.utf8.count)")
        }
        var raw = [UInt8](repeating: 0, count: 32)
        guard zmq_z85_decode(&raw, z85) != nil else { throw CurveKeyError("the CURVE \(what) is not valid Z85") }
        return raw
    }

    /// A public key given literally (40 Z85 characters) or as a key file.
    public static func publicKey(fromFileOrLiteral value: String) throws -> String {
        if value.utf8.count == 40, !FileManager.default.fileExists(atPath: value) {
            _ = try rawKey(value, what: "public key")
            return value
        }
        guard let key = try keyFileFields(value)["public-key"] else { throw CurveKeyError("\(value) holds no public-key") }
        _ = try rawKey(key, what: "public key in \(value)")
        return key
    }
}

/// `key = "value"` lines of a key file (ZPL as czmq and pyzmq write it; sections and comments skipped).
private func keyFileFields(_ path: String) throws -> [String: String] {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
        throw CurveKeyError("cannot read the key file \(path)")
    }
    var fields: [String: String] = [:]
    for line in text.split(separator: "\n") {
        let trimmed = line.trimmingCharacters(in: .whitespaces)
        guard !trimmed.hasPrefix("#"), let equals = trimmed.firstIndex(of: "=") else { continue }
        let key = trimmed[..<equals].trimmingCharacters(in: .whitespaces)
        var value = trimmed[trimmed.index(after: equals)...].trimmingCharacters(in: .whitespaces)
        if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") { value = String(value.dropFirst().dropLast()) }
        fields[key] = value
    }
    return fields
}

/// The public keys a CURVE server admits, each with a name (its file's name, or `key-N` in a list file).
public struct AllowList: Sendable {
    /// Raw 32-byte key → name.
    private(set) var names: [[UInt8]: String] = [:]

    public init() {}

    /// Every `*.key` file in a directory, or a file of keys (one Z85 key per line, `#` comments) or a single
    /// key file. An allow-list that admits nobody is refused.
    public static func load(_ path: String) throws -> AllowList {
        var list = AllowList()
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw CurveKeyError("the allow-list \(path) does not exist")
        }
        if isDirectory.boolValue {
            let files = try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasSuffix(".key") }.sorted()
            for file in files {
                try list.add(CurveKeyPair.publicKey(fromFileOrLiteral: path + "/" + file), name: String(file.dropLast(4)))
            }
        } else {
            let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            if text.contains("public-key") {
                let name = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
                try list.add(CurveKeyPair.publicKey(fromFileOrLiteral: path), name: name)
            } else {
                for (i, line) in text.split(separator: "\n").enumerated() {
                    let key = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)[0]
                        .trimmingCharacters(in: .whitespaces)
                    guard !key.isEmpty else { continue }
                    do {
                        try list.add(key, name: "\(URL(fileURLWithPath: path).lastPathComponent):\(i + 1)")
                    } catch {
                        throw CurveKeyError("\(path) line \(i + 1): \(error)")
                    }
                }
            }
        }
        guard !list.names.isEmpty else { throw CurveKeyError("the allow-list \(path) holds no public key") }
        return list
    }

    /// Admits `publicKey` (Z85) under `name`.
    public mutating func add(_ publicKey: String, name: String) throws {
        names[try CurveKeyPair.rawKey(publicKey, what: "public key")] = name
    }

    public var count: Int { names.count }

    /// The name of an admitted raw key, nil for a stranger.
    func name(of rawKey: [UInt8]) -> String? { names[rawKey] }
}

/// How a socket uses CURVE.
public enum CurveRole: Sendable {
    /// A bound socket that encrypts and admits only the allow-list's keys (checked by the thread's ZAP handler
    /// under `domain`; a peer that fails is refused and reported to the handler).
    case server(CurveKeyPair, domain: String, allow: AllowList)
    /// A connecting socket that authenticates with `keys` and accepts only the server holding `serverPublicKey`.
    case client(CurveKeyPair, serverPublicKey: String)
}

extension String {
    /// The text of a NUL-terminated Z85 buffer that libzmq filled.
    init(z85 buffer: [CChar]) {
        self.init(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
