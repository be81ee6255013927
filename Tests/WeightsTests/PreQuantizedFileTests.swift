import Foundation
import Tensor
@testable import Weights
import XCTest

/// A checkpoint written back with its matrices in the formats a model took them in (what `accm quantize`
/// writes) reads into the same matrices, borrowed from the mapping, without quantizing again.
final class PreQuantizedFileTests: XCTestCase {
    private var directory: TemporaryDirectory!

    override func setUpWithError() throws { directory = try TemporaryDirectory() }
    override func tearDown() { directory.remove() }

    private func values(_ count: Int, seed: UInt64) -> [Float] {
        var random = SplitMix64(seed: seed)
        return (0..<count).map { _ in Float(Int(random.next() % 2001) - 1000) / 997 }
    }

    /// A checkpoint with an fp32 Linear weight [8, 64], a bf16 one [4, 64], a Conv1D (input-major) weight
    /// [64, 16], a 48-wide matrix (not whole blocks) and a norm vector.
    private func writeCheckpoint(_ name: String = "source.safetensors") throws -> String {
        let bf16 = values(4 * 64, seed: 2).map { UInt16(truncatingIfNeeded: $0.bitPattern >> 16) }
        return try directory.write(name, SafeTensorsWriter.file([
            .f32("a.weight", shape: [8, 64], values(8 * 64, seed: 1)),
            .bf16("b.weight", shape: [4, 64], bits: bf16),
            .f32("c.weight", shape: [64, 16], values(64 * 16, seed: 3)),
            .f32("narrow.weight", shape: [4, 48], values(4 * 48, seed: 4)),
            .f32("norm.weight", shape: [64], values(64, seed: 5)),
        ], metadata: ["format": "pt"]))
    }

    /// Takes every tensor of `store` as a model would, recording the matrices.
    private func load(_ store: WeightStore) throws -> (matrices: [String: WeightMatrix], norm: Tensor, recorded: MatrixRecorder) {
        let recorder = MatrixRecorder()
        return try WeightStore.$matrixRecorder.withValue(recorder) {
            let matrices = [
                "a.weight": try store.matrix("a.weight", rows: 8, columns: 64),
                "b.weight": try store.matrix("b.weight", rows: 4, columns: 64),
                "c.weight": try store.matrix("c.weight", rows: 16, columns: 64, inputMajor: true),
                "narrow.weight": try store.matrix("narrow.weight", rows: 4, columns: 48),
            ]
            let norm = try store.tensor("norm.weight", shape: [64])
            try store.verifyAllUsed()
            return (matrices, norm, recorder)
        }
    }

    private func assertBitwiseEqual(_ a: Tensor, _ b: Tensor, _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.shape, b.shape, message, file: file, line: line)
        XCTAssertEqual(a.scalars.map(\.bitPattern), b.scalars.map(\.bitPattern), message, file: file, line: line)
    }

    func testAWrittenFileReadsBackWithEveryTensorAlignedToItsElementSize() throws {
        let path = directory.path + "/written.safetensors"
        let floats: [Float] = [1, -2, 3.5], halves: [UInt16] = [0x3C00, 0xBC00], bytes: [UInt8] = [7, 8, 9]
        try SafeTensorsFile.write([
            SafeTensorsOutput(name: "bytes", dtype: .u8, shape: [3]) { try bytes.withUnsafeBytes($0) },
            SafeTensorsOutput(name: "halves", dtype: .f16, shape: [2]) { try halves.withUnsafeBytes($0) },
            SafeTensorsOutput(name: "floats", dtype: .f32, shape: [3]) { try floats.withUnsafeBytes($0) },
        ], metadata: ["format": "pt", "note": "a \"quoted\" value"], to: path)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path + ".partial"))
        let file = try SafeTensorsFile(path: path)
        XCTAssertEqual(file.metadata, ["format": "pt", "note": "a \"quoted\" value"])
        XCTAssertEqual(try file.tensor(named: "floats").scalars, floats)
        XCTAssertEqual(try file.tensor(named: "halves").scalars, [1, -1])
        XCTAssertEqual(Array(file.file.bytes[file.entries["bytes"]!.byteRange]), bytes)
        for entry in file.entries.values {
            XCTAssertEqual(entry.byteRange.lowerBound % entry.dtype.size, 0, "\(entry.name) starts unaligned")
        }
    }

    func testAQuantizedCopyReadsBackIntoTheSameMatrices() throws {
        for format in [WeightFormat.int8, .int4] {
            let original = try load(WeightStore(files: [SafeTensorsFile(path: writeCheckpoint())], location: "source", matrixFormat: format))
            let copyPath = directory.path + "/\(format).safetensors"
            try WeightStore(files: [SafeTensorsFile(path: writeCheckpoint())], location: "source")
                .writeCopy(to: copyPath, matrices: original.recorded.matrices(in: "source"))

            let copyFile = try SafeTensorsFile(path: copyPath)
            XCTAssertEqual(copyFile.metadata[QuantizedLayout.metadataKey], QuantizedLayout.version)
            XCTAssertEqual(copyFile.entries["a.weight"]?.dtype, QuantizedLayout.valueDType(format))
            XCTAssertEqual(copyFile.entries["c.weight"]?.shape, [16, format == .int8 ? 64 : 32], "written output-major")
            XCTAssertEqual(copyFile.entries["a.weight.scales"]?.shape, [8, 2])
            XCTAssertEqual(copyFile.entries["narrow.weight"]?.dtype, .f32, "not whole blocks: kept as stored")

            let copy = try load(WeightStore(files: [copyFile], location: "copy"))  // no format: as stored
            for (name, matrix) in original.matrices {
                let read = copy.matrices[name]!
                XCTAssertEqual(read.format, matrix.format, "\(format) \(name)")
                assertBitwiseEqual(read.dequantized(), matrix.dequantized(), "\(format) \(name)")
                if case .quantized(let values, let scales) = read.payload {
                    // int8 is used where it is mapped; int4 is moved into the interleaved layout its kernels read.
                    XCTAssertEqual(values.isBorrowed && scales.isBorrowed, format == .int8, "\(format) \(name) borrowed")
                }
            }
            assertBitwiseEqual(copy.norm, original.norm, "norm")
        }
    }

    func testAMatrixKeptInItsStoredTypeIsCopiedByteForByte() throws {
        let source = try SafeTensorsFile(path: writeCheckpoint())
        let taken = try load(WeightStore(files: [source], location: "source"))
        let copyPath = directory.path + "/copy.safetensors"
        try WeightStore(files: [source], location: "source").writeCopy(to: copyPath, matrices: taken.recorded.matrices(in: "source"))
        let copy = try SafeTensorsFile(path: copyPath)
        XCTAssertNil(copy.metadata[QuantizedLayout.metadataKey], "nothing quantized")
        XCTAssertEqual(Set(copy.entries.keys), Set(source.entries.keys))
        for (name, entry) in source.entries {
            let written = copy.entries[name]!
            XCTAssertEqual(written.dtype, entry.dtype, name)
            XCTAssertEqual(written.shape, entry.shape, name)
            XCTAssertEqual(Array(copy.file.bytes[written.byteRange]), Array(source.file.bytes[entry.byteRange]), name)
        }
    }

    func testAPreQuantizedMatrixIsConvertedWhenAnotherFormatIsAskedFor() throws {
        let int4 = try load(WeightStore(files: [SafeTensorsFile(path: writeCheckpoint())], location: "source", matrixFormat: .int4))
        let copyPath = directory.path + "/int4.safetensors"
        try WeightStore(files: [SafeTensorsFile(path: writeCheckpoint())], location: "source")
            .writeCopy(to: copyPath, matrices: int4.recorded.matrices(in: "source"))
        let asF32 = try load(WeightStore(files: [SafeTensorsFile(path: copyPath)], location: "copy", matrixFormat: .f32))
        XCTAssertEqual(asF32.matrices["a.weight"]?.format, .f32)
        assertBitwiseEqual(asF32.matrices["a.weight"]!.dequantized(), int4.matrices["a.weight"]!.dequantized(), "int4 read as f32")
        XCTAssertEqual(asF32.matrices["c.weight"]?.shape, [16, 64])
    }

    func testQuantizedValuesOutsideTheLayoutAreRefusedByName() throws {
        let scales = RawTensor.f16("w.scales", shape: [2, 2], bits: [0x3C00, 0x3C00, 0x3C00, 0x3C00])
        let values = RawTensor(name: "w", dtype: "I8", shape: [2, 64], bytes: [UInt8](repeating: 1, count: 128))
        func store(_ tensors: [RawTensor], metadata: [String: String]?) throws -> WeightStore {
            let path = try directory.write("bad-\(UUID().uuidString).safetensors", SafeTensorsWriter.file(tensors, metadata: metadata))
            return try WeightStore(files: [SafeTensorsFile(path: path)], location: "bad")
        }
        let layout = [QuantizedLayout.metadataKey: QuantizedLayout.version]

        assertThrows(WeightsError.self, { try store([values, scales], metadata: nil).matrix("w", rows: 2, columns: 64) }) {
            XCTAssertEqual($0, .unsupportedDType(name: "w", dtype: "I8"), "an I8 tensor of an unmarked file is not weights")
        }
        assertThrows(WeightsError.self, { try store([values, scales], metadata: [QuantizedLayout.metadataKey: "v9"]).matrix("w", rows: 2, columns: 64) }) {
            XCTAssertTrue("\($0)".contains("'v9'"), "\($0)")
        }
        assertThrows(WeightsError.self, { try store([values], metadata: layout).matrix("w", rows: 2, columns: 64) }) {
            guard case .missingTensor(name: "w.scales", _) = $0 else { return XCTFail("\($0)") }
        }
        assertThrows(WeightsError.self, { try store([values, scales], metadata: layout).matrix("w", rows: 2, columns: 96) }) {
            XCTAssertEqual($0, .wrongShape(name: "w", expected: [2, 96], found: [2, 64], in: "bad"))
        }
        let wideScales = RawTensor.f16("w.scales", shape: [2, 1], bits: [0x3C00, 0x3C00])
        assertThrows(WeightsError.self, { try store([values, wideScales], metadata: layout).matrix("w", rows: 2, columns: 64) }) {
            XCTAssertEqual($0, .wrongShape(name: "w.scales", expected: [2, 2], found: [2, 1], in: "bad"))
        }
        let read = try store([values, scales], metadata: layout).matrix("w", rows: 2, columns: 64)
        XCTAssertEqual(read.format, .int8)
        XCTAssertEqual(read.dequantized().scalars, [Float](repeating: 1, count: 128))
    }
}
