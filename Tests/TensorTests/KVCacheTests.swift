@testable import Tensor
import XCTest

final class KVCacheTests: XCTestCase {
    private let width = 6
    /// Every test runs in both formats, with the rows stored whole (no head size) and head by head.
    private let variants = KVCacheFormat.allCases.flatMap { format in [nil, 2, 3].map { (format, $0) } }

    /// `rows` rows whose values encode (layer, kind, position, column) so any mix-up shows; every value
    /// (below 1024, in halves) is exact in f16 as well, so both cache formats must give them back unchanged.
    private func rows(layer: Int, values: Bool, positions: Range<Int>, tag: Float = 0) -> Tensor {
        precondition(layer < 3 && positions.upperBound <= 16 && (tag == 0 || tag == 0.5))
        var out: [Float] = []
        for p in positions {
            for c in 0..<width {
                out.append(tag + Float(layer) * 256 + (values ? 128 : 0) + Float(p) * 8 + Float(c))
            }
        }
        return Tensor(shape: [positions.count, width], values: out)
    }

    /// Appends positions `positions` to every layer and advances; returns each layer's buffers.
    @discardableResult
    private func appendAll(
        _ cache: inout KVCache, positions: Range<Int>, tag: Float = 0
    ) -> [KVLayerRows] {
        let result = (0..<cache.layerCount).map { layer in
            cache.append(
                layer: layer, keys: rows(layer: layer, values: false, positions: positions, tag: tag),
                values: rows(layer: layer, values: true, positions: positions, tag: tag))
        }
        cache.advance(by: positions.count)
        return result
    }

    private func assertHolds(
        _ buffers: KVLayerRows, layer: Int, expectedKeys: Tensor, expectedValues: Tensor,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertEqual(buffers.count, expectedKeys.rowCount, "count", file: file, line: line)
        XCTAssertEqual(buffers.keys.shape, [buffers.count, width], file: file, line: line)
        XCTAssertEqual(buffers.keys.scalars, expectedKeys.scalars, "keys of layer \(layer)", file: file, line: line)
        XCTAssertEqual(buffers.values.scalars, expectedValues.scalars, "values of layer \(layer)", file: file, line: line)
    }

    func testAppendingOneRowAtATimeAcrossGrowthKeepsEarlierRows() {
        for (format, headDim) in variants { testAppendingOneRowAtATimeAcrossGrowthKeepsEarlierRows(format, headDim: headDim) }
    }

    private func testAppendingOneRowAtATimeAcrossGrowthKeepsEarlierRows(_ format: KVCacheFormat, headDim: Int?) {
        var cache = KVCache(layers: 3, width: width, headDim: headDim, reservingCapacity: 1, format: format)
        for step in 0..<10 {
            let buffers = appendAll(&cache, positions: step..<(step + 1))
            XCTAssertEqual(cache.length, step + 1)
            for layer in 0..<3 {
                assertHolds(
                    buffers[layer], layer: layer,
                    expectedKeys: rows(layer: layer, values: false, positions: 0..<(step + 1)),
                    expectedValues: rows(layer: layer, values: true, positions: 0..<(step + 1)))
            }
        }
    }

    func testAppendingSeveralRowsAtOnceGrowsPastDoubleTheCapacity() {
        for (format, headDim) in variants { testAppendingSeveralRowsAtOnceGrowsPastDoubleTheCapacity(format, headDim: headDim) }
    }

    private func testAppendingSeveralRowsAtOnceGrowsPastDoubleTheCapacity(_ format: KVCacheFormat, headDim: Int?) {
        var cache = KVCache(layers: 2, width: width, headDim: headDim, reservingCapacity: 1, format: format)
        appendAll(&cache, positions: 0..<1)
        let buffers = appendAll(&cache, positions: 1..<8)  // 8 > 2 · 1
        appendAll(&cache, positions: 8..<9)
        let last = appendAll(&cache, positions: 9..<12)
        XCTAssertEqual(cache.length, 12)
        for layer in 0..<2 {
            assertHolds(
                buffers[layer], layer: layer,
                expectedKeys: rows(layer: layer, values: false, positions: 0..<8),
                expectedValues: rows(layer: layer, values: true, positions: 0..<8))
            assertHolds(
                last[layer], layer: layer,
                expectedKeys: rows(layer: layer, values: false, positions: 0..<12),
                expectedValues: rows(layer: layer, values: true, positions: 0..<12))
        }
    }

    func testAppendingToACopyLeavesTheOriginalUntouched() {
        for (format, headDim) in variants { testAppendingToACopyLeavesTheOriginalUntouched(format, headDim: headDim) }
    }

    private func testAppendingToACopyLeavesTheOriginalUntouched(_ format: KVCacheFormat, headDim: Int?) {
        var original = KVCache(layers: 2, width: width, headDim: headDim, reservingCapacity: 8, format: format)
        appendAll(&original, positions: 0..<3)
        let before = appendAll(&original, positions: 3..<4)

        var copy = original
        let copyBuffers = appendAll(&copy, positions: 4..<6, tag: 0.5)  // fits the shared capacity
        XCTAssertEqual(copy.length, 6)
        XCTAssertEqual(original.length, 4)

        // Buffers handed out before the copy was made still hold what they held.
        for layer in 0..<2 {
            assertHolds(
                before[layer], layer: layer,
                expectedKeys: rows(layer: layer, values: false, positions: 0..<4),
                expectedValues: rows(layer: layer, values: true, positions: 0..<4))
        }
        // The original continues with its own rows at positions 4 and 5.
        let originalBuffers = appendAll(&original, positions: 4..<6)
        for layer in 0..<2 {
            assertHolds(
                originalBuffers[layer], layer: layer,
                expectedKeys: rows(layer: layer, values: false, positions: 0..<6),
                expectedValues: rows(layer: layer, values: true, positions: 0..<6))
            // ... and did not overwrite the copy's rows.
            let copyKeys = Tensor.concatenateRows([
                rows(layer: layer, values: false, positions: 0..<4),
                rows(layer: layer, values: false, positions: 4..<6, tag: 0.5),
            ])
            let copyValues = Tensor.concatenateRows([
                rows(layer: layer, values: true, positions: 0..<4),
                rows(layer: layer, values: true, positions: 4..<6, tag: 0.5),
            ])
            assertHolds(copyBuffers[layer], layer: layer, expectedKeys: copyKeys, expectedValues: copyValues)
        }
        // And the copy, appended to again, still has its own rows.
        let copyAgain = appendAll(&copy, positions: 6..<7, tag: 0.5)
        let expectedKeys = Tensor.concatenateRows([
            rows(layer: 1, values: false, positions: 0..<4),
            rows(layer: 1, values: false, positions: 4..<7, tag: 0.5),
        ])
        let expectedValues = Tensor.concatenateRows([
            rows(layer: 1, values: true, positions: 0..<4),
            rows(layer: 1, values: true, positions: 4..<7, tag: 0.5),
        ])
        assertHolds(copyAgain[1], layer: 1, expectedKeys: expectedKeys, expectedValues: expectedValues)
    }

    func testTruncateDropsLaterPositionsAndAppendOverwritesThem() {
        for (format, headDim) in variants { testTruncateDropsLaterPositionsAndAppendOverwritesThem(format, headDim: headDim) }
    }

    private func testTruncateDropsLaterPositionsAndAppendOverwritesThem(_ format: KVCacheFormat, headDim: Int?) {
        var cache = KVCache(layers: 2, width: width, headDim: headDim, reservingCapacity: 4, format: format)
        appendAll(&cache, positions: 0..<5)
        var branch = cache
        cache.truncate(to: 2)
        XCTAssertEqual(cache.length, 2)
        XCTAssertEqual(branch.length, 5, "truncating one cache must not shorten a copy")

        let buffers = appendAll(&cache, positions: 2..<3, tag: 0.5)
        XCTAssertEqual(cache.length, 3)
        for layer in 0..<2 {
            assertHolds(
                buffers[layer], layer: layer,
                expectedKeys: Tensor.concatenateRows([
                    rows(layer: layer, values: false, positions: 0..<2),
                    rows(layer: layer, values: false, positions: 2..<3, tag: 0.5),
                ]),
                expectedValues: Tensor.concatenateRows([
                    rows(layer: layer, values: true, positions: 0..<2),
                    rows(layer: layer, values: true, positions: 2..<3, tag: 0.5),
                ]))
        }
        // The untruncated copy still has its five original positions.
        let branchBuffers = appendAll(&branch, positions: 5..<6)
        for layer in 0..<2 {
            assertHolds(
                branchBuffers[layer], layer: layer,
                expectedKeys: rows(layer: layer, values: false, positions: 0..<6),
                expectedValues: rows(layer: layer, values: true, positions: 0..<6))
        }

        cache.truncate(to: 0)
        XCTAssertEqual(cache.length, 0)
        let fresh = appendAll(&cache, positions: 0..<1, tag: 0.5)
        assertHolds(
            fresh[0], layer: 0,
            expectedKeys: rows(layer: 0, values: false, positions: 0..<1, tag: 0.5),
            expectedValues: rows(layer: 0, values: true, positions: 0..<1, tag: 0.5))
    }

    func testAppendingWithinCapacityWritesInPlaceWithoutCopyingTheBuffers() {
        for (format, headDim) in variants { testAppendingWithinCapacityWritesInPlaceWithoutCopyingTheBuffers(format, headDim: headDim) }
    }

    private func testAppendingWithinCapacityWritesInPlaceWithoutCopyingTheBuffers(_ format: KVCacheFormat, headDim: Int?) {
        // With no other reference to the buffers (no copy of the cache, no buffers held by the caller), an
        // append that fits must write into the same memory rather than copy every earlier position.
        var cache = KVCache(layers: 2, width: width, headDim: headDim, reservingCapacity: 16, format: format)
        var keyAddresses: [Int] = [], valueAddresses: [Int] = []
        for step in 0..<6 {
            for layer in 0..<2 {
                let appended = cache.append(
                    layer: layer, keys: rows(layer: layer, values: false, positions: step..<(step + 1)),
                    values: rows(layer: layer, values: true, positions: step..<(step + 1)))
                if layer == 1 {
                    keyAddresses.append(appended.storageAddress(ofKeys: true))
                    valueAddresses.append(appended.storageAddress(ofKeys: false))
                }
            }
            cache.advance(by: 1)
        }
        XCTAssertEqual(Set(keyAddresses).count, 1, "the key buffer was reallocated: \(keyAddresses)")
        XCTAssertEqual(Set(valueAddresses).count, 1, "the value buffer was reallocated: \(valueAddresses)")
        let last = cache.append(
            layer: 1, keys: rows(layer: 1, values: false, positions: 6..<7), values: rows(layer: 1, values: true, positions: 6..<7))
        assertHolds(
            last, layer: 1, expectedKeys: rows(layer: 1, values: false, positions: 0..<7),
            expectedValues: rows(layer: 1, values: true, positions: 0..<7))
    }

    func testEachHeadsPositionsLieTogetherInTheBuffer() {
        // Width 6 in heads of 2 with room for 4 positions: head h's position p starts at h·4·2 + p·2.
        var cache = KVCache(layers: 1, width: width, headDim: 2, reservingCapacity: 4)
        let keys = rows(layer: 0, values: false, positions: 0..<3)
        let appended = cache.append(layer: 0, keys: keys, values: rows(layer: 0, values: true, positions: 0..<3))
        XCTAssertEqual(appended.layout, KVLayerRows.HeadLayout(headDim: 2, capacity: 4))
        guard case .f32(let buffer, _) = appended.storage else { return XCTFail("an f32 cache stores fp32") }
        for head in 0..<3 {
            for p in 0..<3 {
                for c in 0..<2 {
                    XCTAssertEqual(buffer.scalars[head * 8 + p * 2 + c], keys[p, head * 2 + c], "head \(head), position \(p)")
                }
            }
        }
    }

    func testACacheMadeWithoutAHeadSizeStoresItsRowsWhole() {
        XCTAssertEqual(KVCache(layers: 1, width: 8, headDim: 4).headDim, 4)
        XCTAssertEqual(KVCache(layers: 1, width: 8).headDim, 8, "no head size: the rows are stored whole")
    }

    func testCacheReportsItsLayoutAndStartsEmpty() {
        let cache = KVCache(layers: 4, width: 12)
        XCTAssertEqual(cache.layerCount, 4)
        XCTAssertEqual(cache.width, 12)
        XCTAssertEqual(cache.length, 0)
        XCTAssertEqual(cache.format, .f32, "exact unless asked otherwise")
        XCTAssertEqual(KVCache.byteCount(layers: 32, width: 4096, positions: 660, format: .f16), 346_030_080)
        XCTAssertEqual(KVCache.byteCount(layers: 32, width: 4096, positions: 660, format: .f32), 692_060_160)
    }

    func testAnF16CacheRoundsToNearestEvenAndGivesBackTheRoundedValues() {
        var cache = KVCache(layers: 1, width: 4, reservingCapacity: 2, format: .f16)
        // 1 + 2⁻¹¹ is halfway between two f16 values (ties to even: 1), 1 + 3·2⁻¹¹ rounds up to 1 + 2⁻⁹;
        // 70000 overflows to infinity; 2⁻²⁴ is the smallest subnormal.
        let keys = Tensor(shape: [1, 4], values: [1 + 0x1p-11, 1 + 3 * 0x1p-11, 70_000, 0x1p-24])
        let appended = cache.append(layer: 0, keys: keys, values: keys)
        XCTAssertEqual(appended.keys.scalars, [1, 1 + 0x1p-9, .infinity, 0x1p-24])
        XCTAssertEqual(appended.values.scalars, appended.keys.scalars)
    }
}
