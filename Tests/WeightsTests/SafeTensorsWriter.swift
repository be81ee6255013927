import Foundation
import XCTest

/// One tensor to write: its dtype name as the header spells it, shape and raw little-endian bytes.
struct RawTensor {
    var name: String
    var dtype: String
    var shape: [Int]
    var bytes: [UInt8]

    static func f32(_ name: String, shape: [Int], _ values: [Float]) -> RawTensor {
        RawTensor(name: name, dtype: "F32", shape: shape, bytes: values.flatMap { littleEndianBytes($0.bitPattern) })
    }
    static func f16(_ name: String, shape: [Int], bits: [UInt16]) -> RawTensor {
        RawTensor(name: name, dtype: "F16", shape: shape, bytes: bits.flatMap { littleEndianBytes($0) })
    }
    static func bf16(_ name: String, shape: [Int], bits: [UInt16]) -> RawTensor {
        RawTensor(name: name, dtype: "BF16", shape: shape, bytes: bits.flatMap { littleEndianBytes($0) })
    }
    static func i64(_ name: String, shape: [Int], _ values: [Int64]) -> RawTensor {
        RawTensor(name: name, dtype: "I64", shape: shape, bytes: values.flatMap { littleEndianBytes($0) })
    }
    static func i32(_ name: String, shape: [Int], _ values: [Int32]) -> RawTensor {
        RawTensor(name: name, dtype: "I32", shape: shape, bytes: values.flatMap { littleEndianBytes($0) })
    }
    static func u8(_ name: String, shape: [Int], _ values: [UInt8]) -> RawTensor {
        RawTensor(name: name, dtype: "U8", shape: shape, bytes: values)
    }
}

func littleEndianBytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    withUnsafeBytes(of: value.littleEndian) { Array($0) }
}

/// Builds safetensors files in memory: `[u64 LE header length][header JSON][data]`.
enum SafeTensorsWriter {
    /// A file from a literal header and data, so tests can write headers that are wrong on purpose.
    static func file(header: String, data: [UInt8] = [], declaredHeaderLength: UInt64? = nil) -> [UInt8] {
        let json = Array(header.utf8)
        return littleEndianBytes(declaredHeaderLength ?? UInt64(json.count)) + json + data
    }

    /// A well-formed file holding `tensors` back to back in the given order. The header is padded with
    /// spaces so that the data starts at a file offset `≡ dataAlignmentRemainder (mod 8)`: 0 gives the
    /// usual aligned layout, an odd value misaligns every tensor.
    static func file(
        _ tensors: [RawTensor], metadata: [String: String]? = nil, dataAlignmentRemainder: Int = 0
    ) -> [UInt8] {
        var fields: [String] = []
        if let metadata {
            let pairs = metadata.sorted { $0.key < $1.key }.map { "\(quoted($0.key)):\(quoted($0.value))" }
            fields.append("\"__metadata__\":{\(pairs.joined(separator: ","))}")
        }
        var offset = 0
        var data: [UInt8] = []
        for t in tensors {
            let shape = t.shape.map(String.init).joined(separator: ",")
            fields.append(
                "\(quoted(t.name)):{\"dtype\":\(quoted(t.dtype)),\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + t.bytes.count)]}")
            offset += t.bytes.count
            data += t.bytes
        }
        var header = "{" + fields.joined(separator: ",") + "}"
        while (8 + header.utf8.count) % 8 != dataAlignmentRemainder % 8 { header += " " }
        return file(header: header, data: data)
    }

    private static func quoted(_ s: String) -> String {
        let data = try! JSONSerialization.data(withJSONObject: [s], options: [])
        let array = String(decoding: data, as: UTF8.self)
        return String(array.dropFirst().dropLast())
    }
}

/// A fresh directory under the system's temporary directory, removed by `remove()`.
struct TemporaryDirectory {
    let url: URL
    var path: String { url.path }

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("WeightsTests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    /// Writes `bytes` to `name` inside the directory and returns the file's path.
    @discardableResult
    func write(_ name: String, _ bytes: [UInt8]) throws -> String {
        let file = url.appendingPathComponent(name)
        try Data(bytes).write(to: file)
        return file.path
    }

    @discardableResult
    func write(_ name: String, text: String) throws -> String {
        try write(name, Array(text.utf8))
    }

    func subdirectory(_ name: String) throws -> String {
        let sub = url.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: sub, withIntermediateDirectories: true)
        return sub.path
    }

    func remove() {
        try? FileManager.default.removeItem(at: url)
    }
}

/// Runs `body`, which must throw a `WeightsError`-like error, and hands it to `check`.
func assertThrows<E: Error>(
    _ type: E.Type, _ body: () throws -> Any, file: StaticString = #filePath, line: UInt = #line,
    _ check: (E) -> Void = { _ in }
) {
    do {
        _ = try body()
        XCTFail("expected an error of type \(type)", file: file, line: line)
    } catch let error as E {
        check(error)
    } catch {
        XCTFail("expected \(type), got \(error)", file: file, line: line)
    }
}

/// A small deterministic generator (SplitMix64) so every run sees the same inputs.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
