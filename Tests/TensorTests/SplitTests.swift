@testable import Tensor
import XCTest

/// How `BLAS.split` cuts a product's output columns between threads: every column in exactly one piece, in
/// order; one equal piece a thread for compute-bound products; for memory-bound ones, pieces that shrink to
/// a small last few, so that a thread done early never waits long for the other.
final class SplitTests: XCTestCase {
    private let shapes = [(4096, 2), (11008, 2), (22016, 2), (4096, 4), (32000, 3), (1000, 2), (80, 2), (17, 2)]

    func testPiecesCoverEveryColumnOnceInOrder() {
        for (columns, threads) in shapes {
            for pieces in [BLAS.Pieces.onePerThread, .shrinking] {
                let bounds = BLAS.pieceBounds(columns: columns, threads: threads, pieces: pieces)
                XCTAssertEqual(bounds.first, 0, "\(pieces) of \(columns)")
                XCTAssertEqual(bounds.last, columns, "\(pieces) of \(columns)")
                XCTAssertTrue(zip(bounds, bounds.dropFirst()).allSatisfy { $0 < $1 }, "\(pieces) of \(columns): \(bounds)")
                // Every piece but the last starts and ends on a multiple of 16 columns (whole vectors of output).
                XCTAssertTrue(bounds.dropLast().allSatisfy { $0 % 16 == 0 }, "\(pieces) of \(columns): \(bounds)")
            }
        }
    }

    func testComputeBoundProductsGetOneEqualPieceAThread() {
        XCTAssertEqual(BLAS.pieceBounds(columns: 4096, threads: 2, pieces: .onePerThread), [0, 2048, 4096])
        XCTAssertEqual(BLAS.pieceBounds(columns: 1000, threads: 3, pieces: .onePerThread), [0, 336, 672, 1000])
    }

    func testShrinkingPiecesStartAtAQuarterAndEndSmall() {
        let bounds = BLAS.pieceBounds(columns: 4096, threads: 2, pieces: .shrinking)
        let sizes = zip(bounds, bounds.dropFirst()).map { $1 - $0 }
        XCTAssertEqual(sizes.first, 1024, "a quarter of the work for the first of two threads")
        XCTAssertEqual(sizes, sizes.sorted(by: >), "pieces never grow: \(sizes)")
        XCTAssertLessThanOrEqual(sizes.last!, BLAS.smallestShrinkingPiece)
        XCTAssertLessThan(sizes.count, 40, "few enough pieces that taking one costs little: \(sizes)")
    }
}
