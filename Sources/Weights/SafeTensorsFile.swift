// The safetensors format: [u64 little-endian N][N bytes of JSON header][data]. Tensors are row-major,
// little-endian, at header offsets relative to the start of the data. Nothing in the file is trusted.

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Tensor

/// One tensor's place in a safetensors file.
public struct SafeTensorEntry: Sendable, Equatable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    /// Byte range inside the file (already offset past the header).
    public let byteRange: Range<Int>
    public var count: Int { shape.reduce(1, *) }
}

/// A memory-mapped safetensors file with a validated header.
public struct SafeTensorsFile: Sendable {
    public let file: MappedFile
    public let entries: [String: SafeTensorEntry]
    public let metadata: [String: String]

    /// The largest header accepted (the reference implementation's limit).
    public static let maximumHeaderSize = 100_000_000

    /// Maps and validates `path`.
    public init(path: String) throws {
        try self.init(file: MappedFile(path: path))
    }

    public init(file: MappedFile) throws {
        self.file = file
        let bytes = file.bytes
        func corrupt(_ reason: String) -> WeightsError { .corruptFile(path: file.path, reason: reason) }
        guard bytes.count >= 8 else { throw corrupt("file of \(bytes.count) bytes is too short for a header") }
        let headerSize = UInt64(littleEndian: bytes.loadUnaligned(as: UInt64.self))
        guard headerSize <= UInt64(Self.maximumHeaderSize) else { throw corrupt("header size \(headerSize) is too large") }
        let dataStart = 8 + Int(headerSize)
        guard dataStart <= bytes.count else {
            throw corrupt("header of \(headerSize) bytes runs past the end of the file (\(bytes.count) bytes)")
        }
        let headerBytes = Data(bytes[8..<dataStart])
        let raw: [String: HeaderValue]
        do {
            raw = try JSONDecoder().decode([String: HeaderValue].self, from: headerBytes)
        } catch {
            throw corrupt("header is not valid JSON: \(error)")
        }
        var entries: [String: SafeTensorEntry] = [:]
        var metadata: [String: String] = [:]
        let dataSize = bytes.count - dataStart
        for (name, value) in raw {
            switch value {
            case .metadata(let m):
                guard name == "__metadata__" else { throw corrupt("'\(name)' is not a tensor description") }
                metadata = m
            case .tensor(let t):
                guard name != "__metadata__" else { throw corrupt("__metadata__ must map strings to strings") }
                guard let dtype = DType(rawValue: t.dtype) else { throw corrupt("tensor '\(name)' has unknown dtype \(t.dtype)") }
                guard t.shape.allSatisfy({ $0 >= 0 }), t.data_offsets.count == 2 else {
                    throw corrupt("tensor '\(name)' has an invalid shape or offsets")
                }
                let (begin, end) = (t.data_offsets[0], t.data_offsets[1])
                let (elements, overflow) = t.shape.reduce((1, false)) { acc, d in
                    let (p, o) = acc.0.multipliedReportingOverflow(by: d)
                    return (p, acc.1 || o)
                }
                guard !overflow, begin >= 0, begin <= end, end <= dataSize else {
                    throw corrupt("tensor '\(name)' lies outside the data (offsets \(begin)..<\(end), data \(dataSize) bytes)")
                }
                guard end - begin == elements * dtype.size else {
                    throw corrupt("tensor '\(name)' has \(end - begin) bytes for shape \(t.shape) of \(dtype.rawValue)")
                }
                entries[name] = SafeTensorEntry(
                    name: name, dtype: dtype, shape: t.shape, byteRange: (dataStart + begin)..<(dataStart + end))
            }
        }
        let ordered = entries.values.sorted { $0.byteRange.lowerBound < $1.byteRange.lowerBound }
        for (a, b) in zip(ordered, ordered.dropFirst()) where b.byteRange.lowerBound < a.byteRange.upperBound {
            throw corrupt("tensors '\(a.name)' and '\(b.name)' overlap")
        }
        self.entries = entries
        self.metadata = metadata
    }

    /// The tensor `name` as fp32: borrowed from the mapping when it is aligned f32, converted otherwise.
    public func tensor(named name: String) throws -> Tensor {
        guard let entry = entries[name] else { throw WeightsError.missingTensor(name: name, in: file.path) }
        guard entry.dtype.isSupportedFloat else {
            throw WeightsError.unsupportedDType(name: name, dtype: entry.dtype.rawValue)
        }
        let source = file.bytes.baseAddress.map { $0 + entry.byteRange.lowerBound }
        guard let source, entry.count > 0 else { return Tensor(shape: entry.shape) }
        if entry.dtype == .f32, Int(bitPattern: source) % MemoryLayout<Float>.alignment == 0 {
            let storage = TensorStorage(
                borrowing: source.assumingMemoryBound(to: Float.self), count: entry.count, owner: file)
            return Tensor(shape: entry.shape, storage: storage)
        }
        var out = Tensor(uninitializedShape: entry.shape)
        out.withUnsafeMutableBufferPointer { Conversion.toFloat(source, dtype: entry.dtype, count: entry.count, into: $0.baseAddress!) }
        return out
    }

    /// The integer tensor `name` (I64 or I32), flattened.
    public func integers(named name: String) throws -> [Int] {
        guard let entry = entries[name] else { throw WeightsError.missingTensor(name: name, in: file.path) }
        guard let base = file.bytes.baseAddress, entry.count > 0 else { return [] }
        let source = base + entry.byteRange.lowerBound
        switch entry.dtype {
        case .i64: return (0..<entry.count).map { Int(Int64(littleEndian: source.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self))) }
        case .i32: return (0..<entry.count).map { Int(Int32(littleEndian: source.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self))) }
        default: throw WeightsError.unsupportedDType(name: name, dtype: entry.dtype.rawValue)
        }
    }
}

/// A header value: a tensor description, or the string map under `__metadata__`.
private enum HeaderValue: Decodable {
    struct TensorInfo: Decodable {
        let dtype: String
        let shape: [Int]
        let data_offsets: [Int]
    }
    case tensor(TensorInfo)
    case metadata([String: String])

    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let tensor = try? container.decode(TensorInfo.self) {
            self = .tensor(tensor)
        } else {
            self = .metadata(try container.decode([String: String].self))
        }
    }
}
