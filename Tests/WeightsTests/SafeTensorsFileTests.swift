import Foundation
import Tensor
import Weights
import XCTest

final class SafeTensorsFileTests: XCTestCase {
    private var directory: TemporaryDirectory!

    override func setUpWithError() throws {
        directory = try TemporaryDirectory()
    }

    override func tearDown() {
        directory?.remove()
        directory = nil
    }

    private func open(_ bytes: [UInt8], name: String = "model.safetensors") throws -> SafeTensorsFile {
        try SafeTensorsFile(path: directory.write(name, bytes))
    }

    /// Asserts that opening `bytes` fails with `corruptFile` for this file, its reason mentioning `mention`.
    private func assertRejected(_ bytes: [UInt8], mentioning mention: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let path = try directory.write("bad-\(UUID().uuidString).safetensors", bytes)
        assertThrows(WeightsError.self, { try SafeTensorsFile(path: path) }, file: file, line: line) { error in
            guard case .corruptFile(let errorPath, let reason) = error else {
                return XCTFail("expected corruptFile, got \(error)", file: file, line: line)
            }
            XCTAssertEqual(errorPath, path, file: file, line: line)
            XCTAssertTrue(reason.contains(mention), "reason '\(reason)' does not mention '\(mention)'", file: file, line: line)
            XCTAssertTrue(error.description.contains(path), "description '\(error)' does not name the file", file: file, line: line)
        }
    }

    /// Whether `tensor`'s elements live inside `file`'s read-only mapping (borrowed rather than copied).
    private func isInsideMapping(_ tensor: Tensor, of file: SafeTensorsFile) -> Bool {
        let mapping = file.file.bytes
        let start = Int(bitPattern: mapping.baseAddress), end = start + mapping.count
        let address = tensor.withUnsafeBufferPointer { Int(bitPattern: $0.baseAddress) }
        return address >= start && address < end
    }

    // MARK: reading floats

    func testAlignedF32IsReadWithItsShapeAndValues() throws {
        let values: [Float] = [1, -2.5, 3.25, .pi, -0, 1e-30, 7e30, -.infinity, 0.1, 42, 5, 6]
        let bytes = SafeTensorsWriter.file([.f32("w", shape: [3, 4], values), .f32("b", shape: [2], [9, -9])])
        let file = try open(bytes)
        let w = try file.tensor(named: "w")
        XCTAssertEqual(w.shape, [3, 4])
        XCTAssertEqual(w.scalars.map(\.bitPattern), values.map(\.bitPattern))
        XCTAssertEqual(try file.tensor(named: "b").scalars, [9, -9])
        XCTAssertEqual(file.entries["w"]?.dtype, .f32)
        XCTAssertEqual(file.entries["w"]?.shape, [3, 4])
        XCTAssertEqual(file.entries["w"]?.count, 12)
        XCTAssertEqual(file.entries["w"]?.byteRange.count, 48)
        XCTAssertEqual(file.entries.count, 2)
        XCTAssertEqual(file.metadata, [:])
        XCTAssertTrue(isInsideMapping(w, of: file), "aligned F32 is borrowed from the mapping, not copied")
    }

    func testF32AtAnUnalignedOffsetIsReadCorrectly() throws {
        var rng = SplitMix64(seed: 0x5AFE)
        let values = (0..<37).map { _ in Float.random(in: -100...100, using: &rng) }
        for remainder in [1, 2, 3, 5, 7] {
            let bytes = SafeTensorsWriter.file(
                [.f32("a", shape: [37], values), .f32("b", shape: [1, 2], [11, 12])], dataAlignmentRemainder: remainder)
            let file = try open(bytes, name: "unaligned-\(remainder).safetensors")
            XCTAssertEqual(file.entries["a"]!.byteRange.lowerBound % 4, remainder % 4, "the data is misaligned")
            XCTAssertEqual(try file.tensor(named: "a").scalars, values, "data offset ≡ \(remainder) mod 8")
            XCTAssertEqual(try file.tensor(named: "b").scalars, [11, 12])
            XCTAssertEqual(try file.tensor(named: "b").shape, [1, 2])
            // Misaligned floats must not be borrowed: they are copied into aligned memory.
            let a = try file.tensor(named: "a")
            XCTAssertFalse(isInsideMapping(a, of: file), "misaligned F32 must be copied")
            XCTAssertEqual(a.withUnsafeBufferPointer { Int(bitPattern: $0.baseAddress) } % MemoryLayout<Float>.alignment, 0)
        }
    }

    func testBorrowedTensorOutlivesItsFileAndCopiesBeforeBeingWritten() throws {
        let path = try directory.write("model.safetensors", SafeTensorsWriter.file([.f32("w", shape: [2, 2], [1, 2, 3, 4])]))
        var tensor = try SafeTensorsFile(path: path).tensor(named: "w")  // the file value is gone after this line
        XCTAssertEqual(tensor.scalars, [1, 2, 3, 4])
        // The mapping is read-only: writing must copy first (and not crash).
        tensor.withUnsafeMutableBufferPointer { $0[0] = 100 }
        XCTAssertEqual(tensor.scalars, [100, 2, 3, 4])
        XCTAssertEqual(try SafeTensorsFile(path: path).tensor(named: "w").scalars, [1, 2, 3, 4])
    }

    func testScalarAndEmptyTensorsAreRead() throws {
        let file = try open(SafeTensorsWriter.file([
            .f32("scalar", shape: [], [6.5]), .f32("empty", shape: [0, 4], []), .f16("empty16", shape: [3, 0], bits: []),
        ]))
        let scalar = try file.tensor(named: "scalar")
        XCTAssertEqual(scalar.shape, [])
        XCTAssertEqual(scalar.scalars, [6.5])
        XCTAssertEqual(try file.tensor(named: "empty").shape, [0, 4])
        XCTAssertEqual(try file.tensor(named: "empty").count, 0)
        XCTAssertEqual(try file.tensor(named: "empty16").shape, [3, 0])
    }

    // MARK: F16 and BF16

    private func assertSameFloat(_ actual: Float, _ expected: Float, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        if expected.isNaN {
            XCTAssertTrue(actual.isNaN, "\(what): \(actual) is not NaN", file: file, line: line)
        } else {
            XCTAssertEqual(actual.bitPattern, expected.bitPattern, "\(what): \(actual) != \(expected)", file: file, line: line)
        }
    }

    func testF16SpecialValuesConvertExactly() throws {
        let cases: [(UInt16, Float)] = [
            (0x0000, 0), (0x8000, -0.0), (0x3C00, 1), (0xBC00, -1), (0x3800, 0.5), (0x4000, 2),
            (0x7BFF, 65504), (0xFBFF, -65504),
            (0x0001, 0x1p-24), (0x8001, -0x1p-24), (0x03FF, 1023 * 0x1p-24), (0x0400, 0x1p-14),
            (0x3555, 0x1.554p-2), (0x7C00, .infinity), (0xFC00, -.infinity),
            (0x7E00, .nan), (0x7C01, .nan), (0xFE00, .nan),
        ]
        // After a one-byte tensor, so the F16 data sits at an odd offset.
        let file = try open(SafeTensorsWriter.file([
            .u8("pad", shape: [1], [0xAA]), .f16("h", shape: [cases.count], bits: cases.map(\.0)),
        ]))
        let converted = try file.tensor(named: "h").scalars
        XCTAssertEqual(converted.count, cases.count)
        for (i, (bits, expected)) in cases.enumerated() {
            assertSameFloat(converted[i], expected, String(format: "half 0x%04X", bits))
        }
        XCTAssertEqual(converted[1].sign, .minus, "-0 keeps its sign")
        XCTAssertEqual(converted[0].sign, .plus)
    }

    #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
    func testF16ConversionAgreesWithSwiftsFloat16ForEveryBitPattern() throws {
        var rng = SplitMix64(seed: 0x5AFE)
        let random = (0..<4096).map { _ in UInt16.random(in: .min ... .max, using: &rng) }
        let every = (0...UInt16.max).map { $0 }
        let file = try open(SafeTensorsWriter.file([
            .f16("random", shape: [64, 64], bits: random), .f16("every", shape: [65_536], bits: every),
        ]))
        for (name, bits) in [("random", random), ("every", every)] {
            let converted = try file.tensor(named: name).scalars
            XCTAssertEqual(converted.count, bits.count)
            var mismatches = 0
            for (b, f) in zip(bits, converted) {
                let expected = Float(Float16(bitPattern: b))
                if expected.isNaN ? !f.isNaN : f.bitPattern != expected.bitPattern {
                    mismatches += 1
                    if mismatches <= 5 { XCTFail("\(name): half \(String(format: "0x%04X", b)) gave \(f), expected \(expected)") }
                }
            }
            XCTAssertEqual(mismatches, 0, name)
        }
    }
    #endif

    func testBF16ConvertsByWideningTheBitPattern() throws {
        var rng = SplitMix64(seed: 0x5AFE)
        let fixed: [(UInt16, Float)] = [
            (0x0000, 0), (0x8000, -0.0), (0x3F80, 1), (0xC020, -2.5), (0x4049, 3.140625),
            (0x7F7F, 0x1.FEp127), (0x0001, 0x1p-133), (0x0080, 0x1p-126),
            (0x7F80, .infinity), (0xFF80, -.infinity), (0x7FC0, .nan),
        ]
        let random = (0..<1000).map { _ in UInt16.random(in: .min ... .max, using: &rng) }
        let file = try open(SafeTensorsWriter.file([
            .u8("pad", shape: [3], [1, 2, 3]),
            .bf16("fixed", shape: [fixed.count], bits: fixed.map(\.0)),
            .bf16("random", shape: [10, 100], bits: random),
        ]))
        let converted = try file.tensor(named: "fixed").scalars
        for (i, (bits, expected)) in fixed.enumerated() {
            assertSameFloat(converted[i], expected, String(format: "bf16 0x%04X", bits))
        }
        let randomConverted = try file.tensor(named: "random")
        XCTAssertEqual(randomConverted.shape, [10, 100])
        for (b, f) in zip(random, randomConverted.scalars) {
            assertSameFloat(f, Float(bitPattern: UInt32(b) << 16), String(format: "bf16 0x%04X", b))
        }
    }

    // MARK: integers and metadata

    func testI64AndI32AreReadAsIntegers() throws {
        let longs: [Int64] = [0, 1, -1, 49_406, 1 << 40, .max, .min]
        let ints: [Int32] = [7, -7, .max, .min, 0, 255]
        let file = try open(SafeTensorsWriter.file([
            .u8("pad", shape: [1], [0]),  // misaligns what follows
            .i64("ids", shape: [1, 7], longs), .i32("small", shape: [2, 3], ints),
        ]))
        XCTAssertEqual(try file.integers(named: "ids"), longs.map(Int.init))
        XCTAssertEqual(try file.integers(named: "small"), ints.map(Int.init))
        XCTAssertEqual(file.entries["ids"]?.dtype, .i64)
        XCTAssertEqual(file.entries["small"]?.shape, [2, 3])
    }

    func testMetadataIsParsed() throws {
        let file = try open(SafeTensorsWriter.file(
            [.f32("w", shape: [1], [1])], metadata: ["format": "pt", "note": "a \"quoted\" value"]))
        XCTAssertEqual(file.metadata, ["format": "pt", "note": "a \"quoted\" value"])
        XCTAssertNil(file.entries["__metadata__"])
        XCTAssertEqual(Array(file.entries.keys), ["w"])
    }

    func testAskingForFloatsOfAnIntegerTensorIsAnUnsupportedDType() throws {
        let file = try open(SafeTensorsWriter.file([
            .i64("ids", shape: [2], [1, 2]), .f32("w", shape: [1], [1]), .u8("mask", shape: [2], [0, 1]),
        ]))
        XCTAssertThrowsError(try file.tensor(named: "ids")) {
            XCTAssertEqual($0 as? WeightsError, .unsupportedDType(name: "ids", dtype: "I64"))
        }
        XCTAssertThrowsError(try file.tensor(named: "mask")) {
            XCTAssertEqual($0 as? WeightsError, .unsupportedDType(name: "mask", dtype: "U8"))
        }
        XCTAssertThrowsError(try file.integers(named: "w")) {
            XCTAssertEqual($0 as? WeightsError, .unsupportedDType(name: "w", dtype: "F32"))
        }
    }

    func testMissingTensorNameIsReported() throws {
        let file = try open(SafeTensorsWriter.file([.f32("w", shape: [1], [1])]))
        XCTAssertThrowsError(try file.tensor(named: "nope")) {
            XCTAssertEqual($0 as? WeightsError, .missingTensor(name: "nope", in: file.file.path))
        }
        XCTAssertThrowsError(try file.integers(named: "nope")) {
            XCTAssertEqual($0 as? WeightsError, .missingTensor(name: "nope", in: file.file.path))
        }
    }

    // MARK: malformed files

    func testFileShorterThanTheHeaderLengthIsRejected() throws {
        try assertRejected([], mentioning: "too short")
        try assertRejected([1, 0, 0, 0, 0], mentioning: "too short")
    }

    func testHeaderLengthLargerThanTheFileIsRejected() throws {
        let header = "{}"
        try assertRejected(SafeTensorsWriter.file(header: header, declaredHeaderLength: 1000), mentioning: "past the end")
        try assertRejected(SafeTensorsWriter.file(header: header, declaredHeaderLength: 3), mentioning: "past the end")
        try assertRejected(SafeTensorsWriter.file(header: header, declaredHeaderLength: .max), mentioning: "too large")
        try assertRejected(SafeTensorsWriter.file(header: header, declaredHeaderLength: 200_000_000), mentioning: "too large")
    }

    func testHeaderThatIsNotJSONIsRejected() throws {
        try assertRejected(SafeTensorsWriter.file(header: "{not json"), mentioning: "JSON")
        try assertRejected(SafeTensorsWriter.file(header: "[1, 2]"), mentioning: "JSON")
        try assertRejected(SafeTensorsWriter.file(header: ""), mentioning: "JSON")
        try assertRejected(
            SafeTensorsWriter.file(header: #"{"w":{"dtype":"F32","shape":[1]}}"#, data: [0, 0, 0, 0]), mentioning: "JSON")
    }

    func testUnknownDTypeIsRejected() throws {
        try assertRejected(
            SafeTensorsWriter.file(header: #"{"w":{"dtype":"F17","shape":[1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]),
            mentioning: "unknown dtype F17")
    }

    func testByteCountThatDoesNotMatchTheShapeIsRejected() throws {
        try assertRejected(
            SafeTensorsWriter.file(header: #"{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}}"#, data: Array(repeating: 0, count: 24)),
            mentioning: "20 bytes")
        try assertRejected(
            SafeTensorsWriter.file(header: #"{"w":{"dtype":"F16","shape":[4],"data_offsets":[0,16]}}"#, data: Array(repeating: 0, count: 16)),
            mentioning: "16 bytes")
    }

    func testOffsetsPastTheEndOfTheDataAreRejected() throws {
        let data = [UInt8](repeating: 0, count: 16)
        try assertRejected(
            SafeTensorsWriter.file(header: #"{"w":{"dtype":"F32","shape":[6],"data_offsets":[0,24]}}"#, data: data),
            mentioning: "outside")
        try assertRejected(
            SafeTensorsWriter.file(header: #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[16,20]}}"#, data: data),
            mentioning: "outside")
        try assertRejected(
            SafeTensorsWriter.file(header: #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}"#, data: data),
            mentioning: "outside")
        try assertRejected(
            SafeTensorsWriter.file(header: #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}"#, data: data),
            mentioning: "outside")
        // An element count that overflows Int.
        try assertRejected(
            SafeTensorsWriter.file(
                header: #"{"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,16]}}"#, data: data),
            mentioning: "outside")
    }

    func testInvalidShapesAndOffsetListsAreRejected() throws {
        let data = [UInt8](repeating: 0, count: 8)
        try assertRejected(
            SafeTensorsWriter.file(header: #"{"w":{"dtype":"F32","shape":[-1,-2],"data_offsets":[0,8]}}"#, data: data),
            mentioning: "invalid shape")
        try assertRejected(
            SafeTensorsWriter.file(header: #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4,8]}}"#, data: data),
            mentioning: "invalid shape")
    }

    func testOverlappingTensorsAreRejected() throws {
        let data = [UInt8](repeating: 0, count: 24)
        try assertRejected(
            SafeTensorsWriter.file(
                header: #"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}"#,
                data: data),
            mentioning: "overlap")
        try assertRejected(
            SafeTensorsWriter.file(
                header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#,
                data: data),
            mentioning: "overlap")
    }

    func testMetadataThatIsNotAStringMapIsRejected() throws {
        try assertRejected(SafeTensorsWriter.file(header: #"{"w":{"format":"pt"}}"#), mentioning: "'w' is not a tensor description")
        try assertRejected(
            SafeTensorsWriter.file(header: #"{"__metadata__":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]),
            mentioning: "__metadata__")
    }

    func testFileTruncatedInTheMiddleOfTheDataIsRejectedWhenOpened() throws {
        let whole = SafeTensorsWriter.file([
            .f32("a", shape: [4], [1, 2, 3, 4]), .f32("b", shape: [8], [Float](repeating: 5, count: 8)),
        ])
        XCTAssertNoThrow(try open(whole, name: "whole.safetensors"))
        try assertRejected(Array(whole.dropLast(10)), mentioning: "'b' lies outside the data")
    }

    func testMissingFileCannotBeOpened() {
        let path = directory.path + "/absent.safetensors"
        assertThrows(WeightsError.self, { try SafeTensorsFile(path: path) }) { error in
            guard case .cannotOpen(let errorPath, _) = error else { return XCTFail("expected cannotOpen, got \(error)") }
            XCTAssertEqual(errorPath, path)
        }
        assertThrows(WeightsError.self, { try SafeTensorsFile(path: self.directory.path) }) { error in
            guard case .cannotOpen(_, let reason) = error else { return XCTFail("expected cannotOpen, got \(error)") }
            XCTAssertTrue(reason.contains("not a regular file"), reason)
        }
    }
}
