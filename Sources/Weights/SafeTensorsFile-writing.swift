// Writing a safetensors file, streamed tensor by tensor: a 7B checkpoint is never assembled in memory.

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One tensor to write: its header description and how to reach its little-endian bytes.
public struct SafeTensorsOutput {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    /// Hands the tensor's bytes (`shape`'s element count × `dtype.size` of them) to its argument.
    public let withBytes: ((UnsafeRawBufferPointer) throws -> Void) throws -> Void

    public var byteCount: Int { shape.reduce(1, *) * dtype.size }

    public init(name: String, dtype: DType, shape: [Int],
                withBytes: @escaping ((UnsafeRawBufferPointer) throws -> Void) throws -> Void) {
        (self.name, self.dtype, self.shape, self.withBytes) = (name, dtype, shape, withBytes)
    }
}

extension SafeTensorsFile {
    /// Writes `tensors` and `metadata` as a safetensors file at `path` (through `path.partial`, renamed when
    /// complete, so a failed write leaves no file that looks whole). Tensors are laid out widest element type
    /// first, so that each starts at a multiple of its element size.
    public static func write(_ tensors: [SafeTensorsOutput], metadata: [String: String] = [:], to path: String) throws {
        let names = Set(tensors.map(\.name))
        precondition(names.count == tensors.count && !names.contains("__metadata__"), "tensor names must be unique")
        let ordered = tensors.enumerated().sorted { a, b in
            a.element.dtype.size != b.element.dtype.size ? a.element.dtype.size > b.element.dtype.size : a.offset < b.offset
        }.map(\.element)
        var header = "{"
        if !metadata.isEmpty { header += "\"__metadata__\":" + (try jsonText(metadata)) }
        var offset = 0, first = metadata.isEmpty
        for t in ordered {
            if !first { header += "," }
            first = false
            let shape = t.shape.map(String.init).joined(separator: ",")
            header += try jsonText(t.name)
                + ":{\"dtype\":\"\(t.dtype.rawValue)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + t.byteCount)]}"
            offset += t.byteCount
        }
        header += "}"
        // The data starts 8-byte aligned: pad the header with spaces, as the reference writer does.
        while header.utf8.count % 8 != 0 { header += " " }

        let partial = path + ".partial"
        guard let stream = fopen(partial, "wb") else {
            throw WeightsError.cannotOpen(path: partial, reason: String(cString: strerror(errno)))
        }
        var closed = false
        defer { if !closed { fclose(stream); unlink(partial) } }
        func put(_ bytes: UnsafeRawBufferPointer) throws {
            guard bytes.count > 0 else { return }
            guard fwrite(bytes.baseAddress!, 1, bytes.count, stream) == bytes.count else {
                throw WeightsError.cannotOpen(path: partial, reason: "write failed: \(String(cString: strerror(errno)))")
            }
        }
        var headerLength = UInt64(header.utf8.count).littleEndian
        try withUnsafeBytes(of: &headerLength) { try put($0) }
        try Array(header.utf8).withUnsafeBytes { try put($0) }
        for t in ordered {
            try t.withBytes { bytes in
                precondition(bytes.count == t.byteCount, "\(bytes.count) bytes for \(t.name) of shape \(t.shape) in \(t.dtype.rawValue)")
                try put(bytes)
            }
        }
        closed = true
        guard fclose(stream) == 0 else {
            unlink(partial)
            throw WeightsError.cannotOpen(path: partial, reason: "close failed: \(String(cString: strerror(errno)))")
        }
        guard rename(partial, path) == 0 else {
            unlink(partial)
            throw WeightsError.cannotOpen(path: path, reason: "rename failed: \(String(cString: strerror(errno)))")
        }
    }

    private static func jsonText<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}
