import Tensor
import XCTest

final class PatchEmbeddingTests: XCTestCase {
    /// Pixels whose value spells out where they are: `channel · 10000 + row · 100 + column`.
    private func labelledPixels(channels: Int, height: Int, width: Int) -> Tensor {
        var values: [Float] = []
        for c in 0..<channels {
            for y in 0..<height {
                for x in 0..<width { values.append(Float(c * 10_000 + y * 100 + x)) }
            }
        }
        return Tensor(shape: [channels, height, width], values: values)
    }

    private func checkOrdering(channels: Int, height: Int, width: Int, patch: Int, file: StaticString = #filePath, line: UInt = #line) {
        let pixels = labelledPixels(channels: channels, height: height, width: width)
        let patches = pixels.patches(size: patch)
        let (gridH, gridW) = (height / patch, width / patch)
        XCTAssertEqual(patches.shape, [gridH * gridW, channels * patch * patch], file: file, line: line)
        var expected: [Float] = []
        for gy in 0..<gridH {
            for gx in 0..<gridW {  // raster order across patches
                for c in 0..<channels {
                    for y in 0..<patch {
                        for x in 0..<patch {  // (channel, row, column) within a patch
                            expected.append(Float(c * 10_000 + (gy * patch + y) * 100 + gx * patch + x))
                        }
                    }
                }
            }
        }
        XCTAssertEqual(patches.scalars, expected, file: file, line: line)
        // Nothing from the dropped bottom rows or right columns.
        for v in patches.scalars {
            let row = (Int(v) % 10_000) / 100, column = Int(v) % 100
            XCTAssertLessThan(row, gridH * patch, file: file, line: line)
            XCTAssertLessThan(column, gridW * patch, file: file, line: line)
        }
    }

    func testPatchesAreRasterOrderedAndFlattenedAsChannelRowColumn() {
        checkOrdering(channels: 3, height: 6, width: 9, patch: 3)
    }

    func testPatchesDropTheBottomRemainder() {
        // 7 rows of patch 3: the last row is dropped, giving a 2 × 3 grid.
        let patches = labelledPixels(channels: 3, height: 7, width: 9).patches(size: 3)
        XCTAssertEqual(patches.shape, [6, 27])
        checkOrdering(channels: 3, height: 7, width: 9, patch: 3)
    }

    func testPatchesDropTheRightRemainder() {
        checkOrdering(channels: 2, height: 6, width: 8, patch: 3)
        checkOrdering(channels: 1, height: 5, width: 11, patch: 2)
    }

    func testPatchEmbeddingEqualsADirectConvolutionWithStrideEqualToKernel() {
        var rng = SeededGenerator(seed: 1)
        let (channels, height, width, patch, outChannels) = (3, 7, 9, 3, 5)
        let px = rng.floats(channels * height * width)
        let w = rng.floats(outChannels * channels * patch * patch)
        let b = rng.floats(outChannels)
        let pixels = Tensor(shape: [channels, height, width], values: px)
        let weight = Tensor(shape: [outChannels, channels, patch, patch], values: w)
        let (gridH, gridW) = (height / patch, width / patch)

        func conv(bias: Bool) -> [Double] {
            var out: [Double] = []
            for gy in 0..<gridH {
                for gx in 0..<gridW {
                    for o in 0..<outChannels {
                        var s = bias ? Double(b[o]) : 0
                        for c in 0..<channels {
                            for i in 0..<patch {
                                for j in 0..<patch {
                                    let wv = w[((o * channels + c) * patch + i) * patch + j]
                                    let pv = px[(c * height + gy * patch + i) * width + gx * patch + j]
                                    s += Double(wv) * Double(pv)
                                }
                            }
                        }
                        out.append(s)
                    }
                }
            }
            return out
        }

        let withBias = pixels.patchEmbedding(weight: weight, bias: Tensor(shape: [outChannels], values: b))
        XCTAssertEqual(withBias.shape, [gridH * gridW, outChannels])
        assertClose(withBias, conv(bias: true), tolerance: 1e-5, "with bias")
        let withoutBias = pixels.patchEmbedding(weight: weight)
        assertClose(withoutBias, conv(bias: false), tolerance: 1e-5, "without bias")
        XCTAssertEqual(weight.shape, [outChannels, channels, patch, patch], "the weight keeps its shape")
    }
}
