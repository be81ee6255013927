// CURVE on the command line: `accm keygen`, and the key options of the coordinator's peers.

import ArgumentParser
import Cluster
import Foundation
import Transport

/// A worker's or client's CURVE keys: its own pair and the coordinator's public key.
struct CurveClientOptions: ParsableArguments {
    @Option(help: "This peer's secret key file (NAME.key_secret from `accm keygen`): connect with CURVE.")
    var curveSecret: String?

    @Option(help: "The coordinator's public key: its NAME.key file or the 40-character Z85 key.")
    var coordinatorKey: String?

    func validate() throws {
        if (curveSecret == nil) != (coordinatorKey == nil) {
            throw ValidationError("--curve-secret and --coordinator-key go together (CURVE needs both)")
        }
    }

    /// The keys, read and checked; nil for plain TCP.
    func load() throws -> (keys: CurveKeyPair, coordinatorKey: String)? {
        guard let curveSecret, let coordinatorKey else { return nil }
        return (try CurveKeyPair.load(secretFile: curveSecret), try CurveKeyPair.publicKey(fromFileOrLiteral: coordinatorKey))
    }

    /// A client's options with these keys (plain TCP without them).
    func clientOptions() throws -> ClusterClientOptions {
        ClusterClientOptions(curve: try load())
    }
}

/// The coordinator's CURVE keys and allow-lists.
struct CurveServerOptions: ParsableArguments {
    @Option(help: "The coordinator's secret key file (NAME.key_secret): both sockets require CURVE.")
    var curveSecret: String?

    @Option(help: "Public keys of the workers admitted: a folder of NAME.key files, or a file of Z85 keys, one per line.")
    var allowWorkers: String?

    @Option(help: "Public keys of the clients admitted (as --allow-workers).")
    var allowClients: String?

    @Flag(help: "Serve plain TCP on a non-loopback address (anyone who reaches it can register workers and submit).")
    var insecure = false

    func validate() throws {
        let given = [curveSecret, allowWorkers, allowClients].filter { $0 != nil }.count
        if given != 0 && given != 3 {
            throw ValidationError("--curve-secret, --allow-workers and --allow-clients go together")
        }
        if given == 3 && insecure { throw ValidationError("--insecure contradicts --curve-secret") }
    }

    func load() throws -> CoordinatorSecurity? {
        guard let curveSecret, let allowWorkers, let allowClients else { return nil }
        return CoordinatorSecurity(keys: try CurveKeyPair.load(secretFile: curveSecret),
                                   workers: try AllowList.load(allowWorkers), clients: try AllowList.load(allowClients))
    }
}

struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make a CURVE key pair: NAME.key (public: put it on allow-lists, give it to peers) and "
            + "NAME.key_secret (private, mode 0600), in pyzmq's format.")

    @Argument(help: "The key's name (the coordinator's log and `accm cluster status` show it).")
    var name: String

    @Option(help: "Folder to write the files into.")
    var dir = "."

    func run() throws {
        guard CurveKeyPair.isAvailable else { throw CommandError("this libzmq was built without CURVE") }
        let pair = try CurveKeyPair.generate()
        let (publicFile, secretFile) = try pair.write(to: dir, name: name)
        print("public key \(pair.publicKey)")
        print("wrote \(publicFile) and \(secretFile)")
    }
}
