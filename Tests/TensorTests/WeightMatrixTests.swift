import Tensor
import XCTest

/// Weight matrices in every format: built a block at a time, read back, and multiplied on both product
/// paths (matrix-vector for a few rows, block conversion + sgemm for more) against fp32 on the same values.
final class WeightMatrixTests: XCTestCase {
    private var generator = SeededGenerator(seed: 21)

    private func matrix(_ format: WeightFormat, rows: Int, columns: Int) -> (WeightMatrix, Tensor) {
        let values = generator.tensor([rows, columns])
        let m = WeightMatrix.build(format, rows: rows, columns: columns) { range, out in
            values.withUnsafeBufferPointer { out.update(from: $0.baseAddress! + range.lowerBound * columns, count: range.count * columns) }
        }
        return (m, values)
    }

    func testBuildingInAFormatKeepsTheValuesItCanHold() {
        for format in WeightFormat.allCases {
            let (m, values) = matrix(format, rows: 37, columns: 64)
            XCTAssertEqual(m.format, format)
            let storedRows = format == .int4 ? 40 : 37  // int4 interleaves rows 8 at a time, the last group padded
            XCTAssertEqual(WeightMatrix.storedRows(format, rows: 37), storedRows)
            XCTAssertEqual(m.byteCount, Int((Double(storedRows * 64) * format.bytesPerWeight).rounded()), "\(format)")
            let back = m.dequantized()
            let limit: Float = switch format {
            case .f32: 0
            case .bf16: 1 / 256     // 8 significant bits, values in [-1, 1]
            case .f16: 1 / 2048
            case .int8: 1 / 127 * 0.5 + 1e-3
            case .int4: 1 / 8 + 2e-3
            }
            XCTAssertLessThanOrEqual(back.maxAbsoluteDifference(values), limit, "\(format)")
            // Converting again from the stored values changes nothing (the grid is already that format's).
            XCTAssertEqual(m.converted(to: format).dequantized().scalars, back.scalars, "\(format)")
            let rows = [3, 0, 36]
            XCTAssertEqual(m.gatherRows(rows).scalars, back.gatherRows(rows).scalars, "\(format)")
        }
    }

    func testProductsOnBothPathsMatchFloatOnTheStoredValues() {
        for format in WeightFormat.allCases {
            for (inputRows, bias) in [(1, false), (1, true), (3, true), (6, false), (9, false), (40, true)] {
                let (m, _) = matrix(format, rows: 75, columns: 96)
                let x = generator.tensor([inputRows, 96], in: -2...2)
                let b = bias ? generator.tensor([75]) : nil
                let expected = x.linear(weight: m.dequantized(), bias: b)
                let y = x.linear(m, bias: b)
                XCTAssertEqual(y.shape, [inputRows, 75])
                // Half-precision weights and every sgemm path compute in fp32 on the exact stored values; int8/int4
                // (matrix-vector path and integer prefill alike) also round the activation to 8 bits per block
                // (≤ 1/254 of its block maximum, 2 here), Σ over 96 inputs of |w| ≤ 1 times that.
                let tolerance: Float = format.isBlockQuantized ? 96 * 2 / 254 : 1e-4
                XCTAssertLessThanOrEqual(y.maxAbsoluteDifference(expected), tolerance, "\(format) rows \(inputRows)")
            }
        }
    }

    func testLargeProductsSplitAcrossThreadsAndBlocks() {
        // More output rows than one conversion block holds, so several blocks run per thread (bf16, with a short
        // input and with one long enough for the larger blocks); int8/int4's integer prefill gives each row what
        // the matrix-vector path gives it (the same 8-bit activation blocks).
        let columns = 4096
        for (format, inputRows) in [(WeightFormat.bf16, 6), (.bf16, WeightMatrix.longPrefillRows), (.int8, 6), (.int4, 6)] {
            let rows = WeightMatrix.prefillBlockFloats(rows: inputRows) / columns * 2 + 48
            let (m, _) = matrix(format, rows: rows, columns: columns)
            let x = generator.tensor([inputRows, columns])
            let y = x.linear(m)
            let expected = format.isBlockQuantized
                ? Tensor.concatenateRows((0..<inputRows).map { x.rows($0..<($0 + 1)).linear(m) })
                : x.linear(weight: m.dequantized())
            XCTAssertLessThanOrEqual(y.maxAbsoluteDifference(expected), 1e-3, "\(format), \(inputRows) input rows")
        }
    }

    func testSeveralMapsOfOneInputGiveWhatEachGivesAlone() {
        // At decode one parallel job runs every product (pieces spanning two matrices included: 75 + 40 + 9
        // output rows are cut into pieces of 16); longer inputs and mixed kinds of matrix take one call each.
        for format in WeightFormat.allCases {
            let maps = [(75, true), (40, false), (9, true)].map { rows, bias in
                (weight: matrix(format, rows: rows, columns: 96).0, bias: bias ? generator.tensor([rows]) : nil)
            }
            for inputRows in [1, 3, 9] {
                let x = generator.tensor([inputRows, 96], in: -2...2)
                let together = x.linear(maps)
                XCTAssertEqual(together.count, 3)
                for (map, product) in zip(maps, together) {
                    XCTAssertEqual(product.shape, [inputRows, map.weight.rows])
                    XCTAssertEqual(product.scalars, x.linear(map.weight, bias: map.bias).scalars, "\(format), \(inputRows) rows")
                }
            }
        }
        let mixed = [(weight: matrix(.bf16, rows: 20, columns: 64).0, bias: Tensor?.none),
                     (weight: matrix(.int8, rows: 12, columns: 64).0, bias: Tensor?.none)]
        let x = generator.tensor([1, 64])
        XCTAssertEqual(x.linear(mixed).map(\.scalars), mixed.map { x.linear($0.weight).scalars })
    }

    func testConcatenatedRowsKeepTheFormat() {
        for format in WeightFormat.allCases {
            let parts = (0..<3).map { _ in matrix(format, rows: 5, columns: 32).0 }
            let joined = WeightMatrix.concatenateRows(parts)
            XCTAssertEqual(joined.format, format)
            XCTAssertEqual(joined.shape, [15, 32])
            XCTAssertEqual(joined.dequantized().scalars, parts.flatMap { $0.dequantized().scalars }, "\(format)")
        }
    }

    func testAnInputMajorMatrixMultipliesAsItsTranspose() {
        let stored = generator.tensor([12, 7])  // [in, out] as GPT-2's Conv1D
        let m = WeightMatrix(inputMajor: stored)
        XCTAssertEqual(m.shape, [7, 12])
        let x = generator.tensor([2, 12])
        XCTAssertLessThanOrEqual(x.linear(m).maxAbsoluteDifference(x.matmul(stored)), 0)
        let bf16 = m.converted(to: .bf16)
        XCTAssertLessThanOrEqual(x.linear(bf16).maxAbsoluteDifference(x.linear(weight: bf16.dequantized())), 1e-5)
    }
}
