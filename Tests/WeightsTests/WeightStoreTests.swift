import Foundation
import Tensor
import Weights
import XCTest

final class WeightStoreTests: XCTestCase {
    private var directory: TemporaryDirectory!

    override func setUpWithError() throws {
        directory = try TemporaryDirectory()
    }

    override func tearDown() {
        directory?.remove()
        directory = nil
    }

    private func index(_ weightMap: [String: String]) -> String {
        let pairs = weightMap.sorted { $0.key < $1.key }.map { "\"\($0.key)\": \"\($0.value)\"" }
        return #"{"metadata": {"total_size": 0}, "weight_map": {"# + pairs.joined(separator: ", ") + "}}"
    }

    // MARK: finding the files

    func testSingleModelFileIsOpened() throws {
        try directory.write("model.safetensors", SafeTensorsWriter.file([
            .f32("b", shape: [2], [3, 4]), .f32("a", shape: [1, 2], [1, 2]),
        ]))
        // Ignored: model.safetensors takes precedence over other safetensors files.
        try directory.write("extra.safetensors", SafeTensorsWriter.file([.f32("extra", shape: [1], [0])]))
        let store = try WeightStore(directory: directory.path)
        XCTAssertEqual(store.names, ["a", "b"])
        XCTAssertEqual(store.location, directory.path)
        XCTAssertEqual(try store.tensor("a", shape: [1, 2]).scalars, [1, 2])
        XCTAssertEqual(try store.tensor("b", shape: [2]).scalars, [3, 4])
        XCTAssertTrue(store.contains("a"))
        XCTAssertFalse(store.contains("extra"))
        XCTAssertEqual(store.entry("a")?.shape, [1, 2])
        XCTAssertEqual(store.entry("a")?.dtype, .f32)
        XCTAssertNil(store.entry("extra"))
    }

    func testShardedCheckpointIsOpenedThroughItsIndex() throws {
        try directory.write("model-00001-of-00002.safetensors", SafeTensorsWriter.file([
            .f32("layers.0.w", shape: [2, 2], [1, 2, 3, 4]), .f32("embed", shape: [3], [7, 8, 9]),
        ]))
        try directory.write("model-00002-of-00002.safetensors", SafeTensorsWriter.file([
            .f16("layers.1.w", shape: [2], bits: [0x3C00, 0xC000]), .i64("ids", shape: [2], [5, 6]),
        ]))
        // A stray file the index does not name is not read.
        try directory.write("stray.safetensors", SafeTensorsWriter.file([.f32("stray", shape: [1], [0])]))
        try directory.write("model.safetensors.index.json", text: index([
            "layers.0.w": "model-00001-of-00002.safetensors", "embed": "model-00001-of-00002.safetensors",
            "layers.1.w": "model-00002-of-00002.safetensors", "ids": "model-00002-of-00002.safetensors",
        ]))
        let store = try WeightStore(directory: directory.path)
        XCTAssertEqual(store.names, ["embed", "ids", "layers.0.w", "layers.1.w"])
        XCTAssertEqual(try store.tensor("layers.0.w", shape: [2, 2]).scalars, [1, 2, 3, 4])
        XCTAssertEqual(try store.tensor("embed", shape: [3]).scalars, [7, 8, 9])
        XCTAssertEqual(try store.tensor("layers.1.w", shape: [2]).scalars, [1, -2])
        XCTAssertEqual(store.entry("ids")?.dtype, .i64)
        XCTAssertFalse(store.contains("stray"))
    }

    func testDirectoryWithOnlyOtherSafetensorsNamesOpensThemAll() throws {
        try directory.write("vision.safetensors", SafeTensorsWriter.file([.f32("vision.w", shape: [1], [1])]))
        try directory.write("text.safetensors", SafeTensorsWriter.file([.f32("text.w", shape: [2], [2, 3])]))
        try directory.write("notes.txt", text: "not a checkpoint")
        try directory.write("config.json", text: "{}")
        let store = try WeightStore(directory: directory.path)
        XCTAssertEqual(store.names, ["text.w", "vision.w"])
        XCTAssertEqual(try store.tensor("text.w", shape: [2]).scalars, [2, 3])
        XCTAssertEqual(try store.tensor("vision.w", shape: [1]).scalars, [1])
    }

    func testEmptyDirectoryCannotBeOpened() throws {
        try directory.write("config.json", text: "{}")
        XCTAssertThrowsError(try WeightStore(directory: directory.path)) { error in
            guard case .cannotOpen(let path, let reason)? = error as? WeightsError else {
                return XCTFail("expected cannotOpen, got \(error)")
            }
            XCTAssertEqual(path, directory.path)
            XCTAssertTrue(reason.contains("no *.safetensors"), reason)
        }
    }

    func testMissingDirectoryCannotBeOpened() {
        let missing = directory.path + "/does-not-exist"
        XCTAssertThrowsError(try WeightStore(directory: missing)) { error in
            guard case .cannotOpen(let path, _)? = error as? WeightsError else {
                return XCTFail("expected cannotOpen, got \(error)")
            }
            XCTAssertEqual(path, missing)
        }
    }

    func testTensorPresentInTwoShardsIsAnError() throws {
        try directory.write("a.safetensors", SafeTensorsWriter.file([.f32("shared", shape: [1], [1]), .f32("x", shape: [1], [1])]))
        try directory.write("b.safetensors", SafeTensorsWriter.file([.f32("shared", shape: [1], [2])]))
        XCTAssertThrowsError(try WeightStore(directory: directory.path)) { error in
            guard case .corruptFile(_, let reason)? = error as? WeightsError else {
                return XCTFail("expected corruptFile, got \(error)")
            }
            XCTAssertTrue(reason.contains("'shared'"), reason)
            XCTAssertTrue(reason.contains("a.safetensors") || reason.contains("b.safetensors"), reason)
        }
    }

    func testIndexNamingAShardOutsideTheDirectoryIsAnError() throws {
        let inner = try directory.subdirectory("model")
        try directory.write("outside.safetensors", SafeTensorsWriter.file([.f32("w", shape: [1], [1])]))
        for shard in ["../outside.safetensors", "sub/model.safetensors", "/etc/model.safetensors", ".hidden.safetensors"] {
            try TemporaryDirectory.write(at: inner + "/model.safetensors.index.json", text: index(["w": shard]))
            XCTAssertThrowsError(try WeightStore(directory: inner), shard) { error in
                guard case .corruptFile(let path, let reason)? = error as? WeightsError else {
                    return XCTFail("\(shard): expected corruptFile, got \(error)")
                }
                XCTAssertEqual(path, inner + "/model.safetensors.index.json")
                XCTAssertTrue(reason.contains(shard), reason)
            }
        }
    }

    func testInvalidIndexAndMissingShardAreErrors() throws {
        try directory.write("model.safetensors.index.json", text: #"{"metadata": {}}"#)
        XCTAssertThrowsError(try WeightStore(directory: directory.path)) { error in
            guard case .corruptFile(_, let reason)? = error as? WeightsError else {
                return XCTFail("expected corruptFile, got \(error)")
            }
            XCTAssertTrue(reason.contains("not a valid index"), reason)
        }
        try directory.write("model.safetensors.index.json", text: index(["w": "model-00001-of-00001.safetensors"]))
        XCTAssertThrowsError(try WeightStore(directory: directory.path)) { error in
            guard case .cannotOpen(let path, _)? = error as? WeightsError else {
                return XCTFail("expected cannotOpen, got \(error)")
            }
            XCTAssertEqual(path, directory.path + "/model-00001-of-00001.safetensors")
        }
    }

    // MARK: taking tensors

    private func makeStore() throws -> WeightStore {
        try directory.write("model.safetensors", SafeTensorsWriter.file([
            .f32("text.a", shape: [2], [1, 2]), .f32("text.b", shape: [1], [3]),
            .f32("vision.a", shape: [2, 1], [4, 5]), .f32("vision.rotary.inv_freq", shape: [1], [6]),
        ]))
        return try WeightStore(directory: directory.path)
    }

    func testWrongShapeIsReportedWithBothShapes() throws {
        let store = try makeStore()
        XCTAssertThrowsError(try store.tensor("vision.a", shape: [1, 2])) {
            XCTAssertEqual($0 as? WeightsError, .wrongShape(name: "vision.a", expected: [1, 2], found: [2, 1], in: store.location))
        }
        XCTAssertThrowsError(try store.tensor("text.a", shape: [2, 1])) {
            XCTAssertEqual($0 as? WeightsError, .wrongShape(name: "text.a", expected: [2, 1], found: [2], in: store.location))
        }
        XCTAssertThrowsError(try store.tensor("missing", shape: [1])) {
            XCTAssertEqual($0 as? WeightsError, .missingTensor(name: "missing", in: store.location))
        }
    }

    func testVerifyAllUsedListsTheTensorsNotTaken() throws {
        let store = try makeStore()
        _ = try store.tensor("text.a", shape: [2])
        _ = try? store.tensor("vision.a", shape: [9])  // a failed take does not count as a use
        XCTAssertThrowsError(try store.verifyAllUsed()) {
            XCTAssertEqual(
                $0 as? WeightsError,
                .unusedTensors(names: ["text.b", "vision.a", "vision.rotary.inv_freq"], in: store.location))
            XCTAssertTrue("\($0)".contains("3 tensor(s)"), "\($0)")
        }
        _ = try store.tensor("text.b", shape: [1])
        XCTAssertNoThrow(try store.verifyAllUsed(under: "text."))
        XCTAssertThrowsError(try store.verifyAllUsed(under: "vision.")) {
            XCTAssertEqual($0 as? WeightsError, .unusedTensors(names: ["vision.a", "vision.rotary.inv_freq"], in: store.location))
        }
        XCTAssertThrowsError(try store.verifyAllUsed(under: "vision.", ignoring: { $0.hasSuffix("inv_freq") })) {
            XCTAssertEqual($0 as? WeightsError, .unusedTensors(names: ["vision.a"], in: store.location))
        }
        _ = try store.tensor("vision.a", shape: [2, 1])
        XCTAssertNoThrow(try store.verifyAllUsed(ignoring: { $0.hasSuffix("inv_freq") }))
        XCTAssertThrowsError(try store.verifyAllUsed())
    }

    func testTensorOfAnUnsupportedDTypeIsNotMarkedUsed() throws {
        try directory.write("model.safetensors", SafeTensorsWriter.file([
            .f32("w", shape: [1], [1]), .i64("position_ids", shape: [1, 3], [0, 1, 2]),
        ]))
        let store = try WeightStore(directory: directory.path)
        _ = try store.tensor("w", shape: [1])
        XCTAssertThrowsError(try store.tensor("position_ids", shape: [1, 3])) {
            XCTAssertEqual($0 as? WeightsError, .unsupportedDType(name: "position_ids", dtype: "I64"))
        }
        XCTAssertThrowsError(try store.verifyAllUsed()) {
            XCTAssertEqual($0 as? WeightsError, .unusedTensors(names: ["position_ids"], in: store.location))
        }
        XCTAssertNoThrow(try store.verifyAllUsed(ignoring: { $0 == "position_ids" }))
    }

    func testScopesPrefixNames() throws {
        let store = try makeStore()
        let vision = store.scope("vision.")
        XCTAssertEqual(vision.prefix, "vision.")
        XCTAssertTrue(vision.contains("a"))
        XCTAssertFalse(vision.contains("text.a"))
        XCTAssertEqual(try vision.tensor("a", shape: [2, 1]).scalars, [4, 5])
        let rotary = vision.scope("rotary.")
        XCTAssertEqual(rotary.prefix, "vision.rotary.")
        XCTAssertEqual(try rotary.tensor("inv_freq", shape: [1]).scalars, [6])
        // Taking through a scope marks the full name as used.
        XCTAssertNoThrow(try store.verifyAllUsed(under: "vision."))
    }

    func testStoreFromOpenedFilesRejectsDuplicateNames() throws {
        let first = try SafeTensorsFile(path: directory.write("one.safetensors", SafeTensorsWriter.file([.f32("w", shape: [1], [1])])))
        let second = try SafeTensorsFile(path: directory.write("two.safetensors", SafeTensorsWriter.file([.f32("w", shape: [1], [2])])))
        let third = try SafeTensorsFile(path: directory.write("three.safetensors", SafeTensorsWriter.file([.f32("v", shape: [1], [3])])))
        XCTAssertThrowsError(try WeightStore(files: [first, second], location: "pair")) { error in
            guard case .corruptFile(let path, let reason)? = error as? WeightsError else {
                return XCTFail("expected corruptFile, got \(error)")
            }
            XCTAssertEqual(path, second.file.path)
            XCTAssertTrue(reason.contains(first.file.path), reason)
        }
        let store = try WeightStore(files: [first, third], location: "pair")
        XCTAssertEqual(store.names, ["v", "w"])
        XCTAssertEqual(try store.tensor("v", shape: [1]).scalars, [3])
    }
}

extension TemporaryDirectory {
    static func write(at path: String, text: String) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    }
}
