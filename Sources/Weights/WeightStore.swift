// The tensors of a Hugging Face model directory: one file, a sharded set with an index, or any
// safetensors files; every tensor a model takes is recorded, so a load can fail on leftovers.

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Tensor

/// All tensors of a checkpoint (possibly sharded), looked up by their checkpoint names.
public final class WeightStore: @unchecked Sendable {
    // Invariant: `used` is only touched while a model is being built, from one thread.
    public let location: String
    private let files: [SafeTensorsFile]
    private let fileOfTensor: [String: Int]
    /// Makes every requested tensor instead of reading it (benchmarks at real shapes without a checkpoint).
    private let synthesizer: (@Sendable (_ name: String, _ shape: [Int]) -> Tensor)?
    private var used: Set<String> = []

    /// Names of every tensor in the checkpoint.
    public var names: [String] { fileOfTensor.keys.sorted() }

    /// Opens the safetensors files of `directory`: those named by `model.safetensors.index.json` when it
    /// exists, else `model.safetensors`, else every `*.safetensors` file in it.
    public convenience init(directory: String) throws {
        let index = directory + "/model.safetensors.index.json"
        let paths: [String]
        if FileSystem.exists(index) {
            paths = try Self.shardPaths(indexPath: index, directory: directory)
        } else if FileSystem.exists(directory + "/model.safetensors") {
            paths = [directory + "/model.safetensors"]
        } else {
            let found = try FileSystem.list(directory).filter { $0.hasSuffix(".safetensors") }.sorted()
            guard !found.isEmpty else {
                throw WeightsError.cannotOpen(path: directory, reason: "no *.safetensors files in the directory")
            }
            paths = found.map { directory + "/" + $0 }
        }
        try self.init(files: paths.map { try SafeTensorsFile(path: $0) }, location: directory)
    }

    /// Wraps already opened files; a tensor name may appear in only one of them.
    public init(files: [SafeTensorsFile], location: String) throws {
        var fileOfTensor: [String: Int] = [:]
        for (i, file) in files.enumerated() {
            for name in file.entries.keys {
                if let other = fileOfTensor[name] {
                    throw WeightsError.corruptFile(
                        path: file.file.path, reason: "tensor '\(name)' is also in \(files[other].file.path)")
                }
                fileOfTensor[name] = i
            }
        }
        self.files = files
        self.fileOfTensor = fileOfTensor
        self.location = location
        self.synthesizer = nil
    }

    /// A store with no files that makes every tensor a model asks for with `synthesize` (optional tensors
    /// are reported absent, so models take their default: tied heads, no projection).
    public init(location: String, synthesize: @escaping @Sendable (_ name: String, _ shape: [Int]) -> Tensor) {
        self.files = []
        self.fileOfTensor = [:]
        self.location = location
        self.synthesizer = synthesize
    }

    private static func shardPaths(indexPath: String, directory: String) throws -> [String] {
        struct Index: Decodable { let weight_map: [String: String] }
        let index: Index
        do {
            index = try JSONDecoder().decode(Index.self, from: FileSystem.read(indexPath))
        } catch let error as WeightsError {
            throw error
        } catch {
            throw WeightsError.corruptFile(path: indexPath, reason: "not a valid index: \(error)")
        }
        let shards = Set(index.weight_map.values).sorted()
        for shard in shards where shard.contains("/") || shard.hasPrefix(".") {
            throw WeightsError.corruptFile(path: indexPath, reason: "shard name '\(shard)' leaves the directory")
        }
        return shards.map { directory + "/" + $0 }
    }

    /// Whether the checkpoint holds `name`.
    /// Whether the checkpoint has `name` (a synthetic store has every tensor it is asked for).
    public func contains(_ name: String) -> Bool { synthesizer != nil || fileOfTensor[name] != nil }

    /// The dtype and shape `name` is stored with.
    public func entry(_ name: String) -> SafeTensorEntry? {
        fileOfTensor[name].flatMap { files[$0].entries[name] }
    }

    /// The tensor `name` as fp32, checked against `shape`, and marked as used.
    public func tensor(_ name: String, shape: [Int]) throws -> Tensor {
        if let synthesizer {
            used.insert(name)
            return synthesizer(name, shape)
        }
        guard let i = fileOfTensor[name] else { throw WeightsError.missingTensor(name: name, in: location) }
        let entry = files[i].entries[name]!
        guard entry.shape == shape else {
            throw WeightsError.wrongShape(name: name, expected: shape, found: entry.shape, in: location)
        }
        let t = try files[i].tensor(named: name)
        used.insert(name)
        return t
    }

    /// Throws `unusedTensors` if a tensor under `prefix` was not taken by the model (names matching
    /// `ignoring`, such as non-persistent buffers, are allowed to remain).
    public func verifyAllUsed(under prefix: String = "", ignoring: (String) -> Bool = { _ in false }) throws {
        let left = fileOfTensor.keys.filter { $0.hasPrefix(prefix) && !used.contains($0) && !ignoring($0) }.sorted()
        if !left.isEmpty { throw WeightsError.unusedTensors(names: left, in: location) }
    }

    /// A view that prefixes every name with `prefix`.
    public func scope(_ prefix: String) -> WeightScope { WeightScope(store: self, prefix: prefix) }
}

/// Names under a common prefix (`"text_model.encoder.layers.3."`), as models read their submodules.
public struct WeightScope: Sendable {
    public let store: WeightStore
    public let prefix: String

    public func tensor(_ name: String, shape: [Int]) throws -> Tensor {
        try store.tensor(prefix + name, shape: shape)
    }
    public func contains(_ name: String) -> Bool { store.contains(prefix + name) }
    public func scope(_ sub: String) -> WeightScope { WeightScope(store: store, prefix: prefix + sub) }
}
