// The tensors of a Hugging Face model directory: one file, a sharded set with an index, or any
// safetensors files; every tensor a model takes is recorded, so a load can fail on leftovers.

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Synchronization
import Tensor

/// All tensors of a checkpoint (possibly sharded), looked up by their checkpoint names.
public final class WeightStore: @unchecked Sendable {
    // Invariant: `used` is only touched while a model is being built, from one thread.
    public let location: String
    let files: [SafeTensorsFile]
    let fileOfTensor: [String: Int]
    /// Makes every requested tensor instead of reading it (benchmarks at real shapes without a checkpoint):
    /// writes elements `range` of the row-major tensor `name` of `shape` at the pointer.
    let synthesizer: Synthesizer?
    private var used: Set<String> = []
    /// Matrices asked for in a block-quantized format whose input dimension is not a whole number of blocks,
    /// kept in their stored type instead (as llama.cpp does for such tensors).
    public private(set) var keptInStoredFormat: [String] = []

    /// Writes elements `range` of the row-major tensor `name` of `shape` at the pointer; called from several
    /// threads at once for disjoint ranges.
    public typealias Synthesizer = @Sendable (
        _ name: String, _ shape: [Int], _ range: Range<Int>, _ destination: UnsafeMutablePointer<Float>
    ) -> Void

    /// The format linear maps, language-model heads and token-embedding tables are kept in (`matrix(_:...)`);
    /// nil keeps each in its stored type (f32, bf16 or f16; a synthetic store makes f32). Every other tensor
    /// (norms, biases, position and patch embeddings) is fp32.
    public let matrixFormat: WeightFormat?

    /// Names of every tensor in the checkpoint.
    public var names: [String] { fileOfTensor.keys.sorted() }

    /// Where the matrices handed out by stores are collected, when set (`$matrixRecorder.withValue`): what
    /// `accm quantize` writes back to disk in the formats they were made in.
    @TaskLocal public static var matrixRecorder: MatrixRecorder?

    /// Opens the safetensors files of `directory`: those named by `model.safetensors.index.json` when it
    /// exists, else `model.safetensors`, else every `*.safetensors` file in it.
    public convenience init(directory: String, matrixFormat: WeightFormat? = nil) throws {
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
        try self.init(files: paths.map { try SafeTensorsFile(path: $0) }, location: directory, matrixFormat: matrixFormat)
    }

    /// Wraps already opened files; a tensor name may appear in only one of them.
    public init(files: [SafeTensorsFile], location: String, matrixFormat: WeightFormat? = nil) throws {
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
        self.matrixFormat = matrixFormat
    }

    /// A store with no files that makes every tensor a model asks for with `synthesize` (optional tensors
    /// are reported absent, so models take their default: tied heads, no projection).
    public init(location: String, matrixFormat: WeightFormat? = nil, synthesize: @escaping Synthesizer) {
        self.files = []
        self.fileOfTensor = [:]
        self.location = location
        self.synthesizer = synthesize
        self.matrixFormat = matrixFormat
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

    /// Bytes of the checkpoint's safetensors files, all shards together.
    public var fileBytes: Int { files.reduce(0) { $0 + $1.file.bytes.count } }

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
            return Self.synthesized(name, shape: shape, synthesizer)
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

    /// The weight matrix `name` of `rows` outputs × `columns` inputs, in `matrixFormat` (or its stored type),
    /// marked as used. The checkpoint holds it `[rows, columns]` (PyTorch `Linear`), or `[columns, rows]` when
    /// `inputMajor` (GPT-2's `Conv1D`). Stored bf16/f16 kept as they are stay in the mapped file; a conversion
    /// runs a block of rows at a time, so no fp32 copy of the whole matrix is made (except for input-major
    /// matrices, converted through one fp32 matrix at load).
    public func matrix(_ name: String, rows: Int, columns: Int, inputMajor: Bool = false) throws -> WeightMatrix {
        let shape = inputMajor ? [columns, rows] : [rows, columns]
        if let synthesizer {
            used.insert(name)
            let target = resolvedFormat(name, stored: .f32, columns: columns)
            if target == .f32 || inputMajor {
                let t = Self.synthesized(name, shape: shape, synthesizer)
                let m = inputMajor ? WeightMatrix(inputMajor: t) : WeightMatrix(t)
                return target == .f32 ? m : m.converted(to: target)
            }
            return WeightMatrix.build(target, rows: rows, columns: columns) { range, out in
                synthesizer(name, shape, (range.lowerBound * columns)..<(range.upperBound * columns), out)
            }
        }
        guard let i = fileOfTensor[name] else { throw WeightsError.missingTensor(name: name, in: location) }
        let file = files[i], entry = file.entries[name]!
        if let quantized = try preQuantizedFormat(of: entry, in: file) {
            let matrix = try preQuantizedMatrix(entry, format: quantized, in: file, rows: rows, columns: columns)
            used.formUnion([name, QuantizedLayout.scalesName(of: name)])
            Self.matrixRecorder?.record(matrix, named: name, in: location)
            return matrix
        }
        guard entry.shape == shape else {
            throw WeightsError.wrongShape(name: name, expected: shape, found: entry.shape, in: location)
        }
        guard let stored = entry.dtype.matrixFormat else {
            throw WeightsError.unsupportedDType(name: name, dtype: entry.dtype.rawValue)
        }
        let target = resolvedFormat(name, stored: stored, columns: columns)
        let matrix: WeightMatrix
        if target == .f32 || inputMajor {
            let t = try file.tensor(named: name)
            let m = inputMajor ? WeightMatrix(inputMajor: t) : WeightMatrix(t)
            matrix = target == .f32 ? m : m.converted(to: target)
        } else if let base = file.file.bytes.baseAddress, entry.count > 0 {
            let source = base + entry.byteRange.lowerBound
            if target == stored {
                matrix = WeightMatrix(
                    half: WeightBytes(borrowing: source, count: entry.byteRange.count, owner: file.file),
                    format: target, rows: rows, columns: columns)
            } else {
                let dtype = entry.dtype
                matrix = WeightMatrix.build(target, rows: rows, columns: columns) { range, out in
                    Conversion.toFloat(source + range.lowerBound * columns * dtype.size, dtype: dtype,
                                       count: range.count * columns, into: out)
                }
            }
        } else {
            matrix = WeightMatrix(Tensor(shape: shape))
        }
        used.insert(name)
        Self.matrixRecorder?.record(matrix, named: name, in: location)
        return matrix
    }

    /// The block-quantized format `entry` holds when `file` is a pre-quantized file (`QuantizedLayout`) and
    /// `entry` the values of one of its matrices; nil for any other tensor.
    func preQuantizedFormat(of entry: SafeTensorEntry, in file: SafeTensorsFile) throws -> WeightFormat? {
        guard let format = QuantizedLayout.format(ofValues: entry.dtype),
              let layout = file.metadata[QuantizedLayout.metadataKey] else { return nil }
        guard layout == QuantizedLayout.version else {
            throw WeightsError.corruptFile(
                path: file.file.path,
                reason: "its quantized layout '\(layout)' is not the one this build reads ('\(QuantizedLayout.version)')")
        }
        return format
    }

    /// The pre-quantized matrix `entry` of `rows × columns` (see `QuantizedLayout`): borrowed from the mapping
    /// when it is kept in its stored format, else converted a block of rows at a time.
    private func preQuantizedMatrix(
        _ entry: SafeTensorEntry, format stored: WeightFormat, in file: SafeTensorsFile, rows: Int, columns: Int
    ) throws -> WeightMatrix {
        let block = WeightFormat.quantBlock
        let valueShape = [rows, WeightMatrix.quantizedRowBytes(stored, columns: columns)]
        guard columns % block == 0, entry.shape == valueShape else {
            throw WeightsError.wrongShape(name: entry.name, expected: valueShape, found: entry.shape, in: location)
        }
        let scalesName = QuantizedLayout.scalesName(of: entry.name)
        guard let scales = file.entries[scalesName] else {
            throw WeightsError.missingTensor(name: scalesName, in: file.file.path)
        }
        guard scales.dtype == .f16 else {
            throw WeightsError.corruptFile(path: file.file.path, reason: "'\(scalesName)' is \(scales.dtype.rawValue), scales are F16")
        }
        guard scales.shape == [rows, columns / block] else {
            throw WeightsError.wrongShape(name: scalesName, expected: [rows, columns / block], found: scales.shape, in: location)
        }
        guard let base = file.file.bytes.baseAddress else { return WeightMatrix(Tensor(shape: [rows, columns])) }
        let read = WeightMatrix.quantized(
            rowMajor: WeightBytes(borrowing: base + entry.byteRange.lowerBound, count: entry.byteRange.count, owner: file.file),
            scales: WeightBytes(borrowing: base + scales.byteRange.lowerBound, count: scales.byteRange.count, owner: file.file),
            format: stored, rows: rows, columns: columns)
        if case .quantized(let values, _) = read.payload, !values.isBorrowed {
            // int4 was copied into the interleaved layout: the mapped pages it read need not stay resident.
            file.file.dropPages(entry.byteRange)
            file.file.dropPages(scales.byteRange)
        }
        let target = matrixFormat ?? stored
        return target == stored ? read : read.converted(to: target)
    }

    /// `matrixFormat` (or `stored`), except that a block-quantized format falls back to `stored` when
    /// `columns` is not a whole number of blocks.
    private func resolvedFormat(_ name: String, stored: WeightFormat, columns: Int) -> WeightFormat {
        let wanted = matrixFormat ?? stored
        if wanted.isBlockQuantized && columns % WeightFormat.quantBlock != 0 {
            keptInStoredFormat.append(name)
            return stored
        }
        return wanted
    }

    private static func synthesized(_ name: String, shape: [Int], _ synthesizer: Synthesizer) -> Tensor {
        var t = Tensor(uninitializedShape: shape)
        t.withUnsafeMutableBufferPointer { buffer in
            let base = UnsafeSendable(buffer.baseAddress!)
            Parallelism.forEachChunk(count: buffer.count, grain: 1 << 16) { range in
                synthesizer(name, shape, range, base.value + range.lowerBound)
            }
        }
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
    public func matrix(_ name: String, rows: Int, columns: Int, inputMajor: Bool = false) throws -> WeightMatrix {
        try store.matrix(prefix + name, rows: rows, columns: columns, inputMajor: inputMajor)
    }
    public func contains(_ name: String) -> Bool { store.contains(prefix + name) }
    public func scope(_ sub: String) -> WeightScope { WeightScope(store: store, prefix: prefix + sub) }
}

/// Carries a pointer to disjoint per-thread ranges across `Parallelism.forEachChunk`.
private struct UnsafeSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// The matrices stores hand out while it is `WeightStore.matrixRecorder`, by store location and tensor name.
public final class MatrixRecorder: Sendable {
    private let recorded = Mutex<[String: [String: WeightMatrix]]>([:])

    public init() {}

    func record(_ matrix: WeightMatrix, named name: String, in location: String) {
        recorded.withLock { $0[location, default: [:]][name] = matrix }
    }

    /// The matrices the store at `location` handed out, by name.
    public func matrices(in location: String) -> [String: WeightMatrix] {
        recorded.withLock { $0[location] ?? [:] }
    }
}
