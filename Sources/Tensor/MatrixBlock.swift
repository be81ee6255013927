// A rectangular block of a tensor read as a matrix, without a copy.

/// Rows `rows` and columns `columns` of a tensor read as `[rowCount, lastDimension]`: one sequence's
/// rows of a batch, or the query / key / value part of a fused QKV projection.
public struct MatrixBlock: Sendable {
    public let base: Tensor
    public let rows: Range<Int>
    public let columns: Range<Int>

    public init(_ base: Tensor, rows: Range<Int>? = nil, columns: Range<Int>? = nil) {
        let rows = rows ?? 0..<base.rowCount
        let columns = columns ?? 0..<base.lastDimension
        precondition(rows.lowerBound >= 0 && rows.upperBound <= base.rowCount, "rows \(rows) out of \(base.shape)")
        precondition(columns.lowerBound >= 0 && columns.upperBound <= base.lastDimension,
                     "columns \(columns) out of \(base.shape)")
        self.base = base
        self.rows = rows
        self.columns = columns
    }

    public var rowCount: Int { rows.count }
    public var width: Int { columns.count }
    /// Distance between consecutive rows, in elements.
    public var rowStride: Int { base.lastDimension }
    /// Position of the block's first element in the base tensor.
    public var offset: Int { rows.lowerBound * rowStride + columns.lowerBound }

    /// The block as a contiguous tensor `[rowCount, width]` (a copy).
    public func copy() -> Tensor {
        var out = Tensor(uninitializedShape: [rowCount, width])
        base.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for r in 0..<rowCount {
                    (dst.baseAddress! + r * width).update(from: src.baseAddress! + offset + r * rowStride, count: width)
                }
            }
        }
        return out
    }
}

extension Tensor {
    /// A block of this tensor read as a matrix (all rows / all columns when nil), without a copy.
    public func block(rows: Range<Int>? = nil, columns: Range<Int>? = nil) -> MatrixBlock {
        MatrixBlock(self, rows: rows, columns: columns)
    }
}
