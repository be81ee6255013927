// A dense fp32 tensor: contiguous, row-major, 64-byte aligned (or borrowed read-only memory,
// such as a memory-mapped weight file).

/// Owns (or borrows) the memory of a tensor.
///
/// Invariant: memory obtained through `readOnly` is never written; a tensor that is written
/// goes through `Tensor.withUnsafeMutableBufferPointer`, which copies shared or borrowed
/// storage first. That makes a storage safe to share between threads once built.
public final class TensorStorage: @unchecked Sendable {
    public let base: UnsafeMutablePointer<Float>
    public let count: Int
    /// Keeps borrowed memory alive (a mapped file); nil when this storage owns `base`.
    private let owner: AnyObject?

    /// Allocates `count` uninitialised floats, 64-byte aligned.
    public init(uninitializedCount count: Int) {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
        self.base = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        self.count = count
        self.owner = nil
    }

    /// Borrows `count` floats at `base`, kept alive by `owner`. The memory must be 4-byte aligned.
    public init(borrowing base: UnsafePointer<Float>, count: Int, owner: AnyObject) {
        self.base = UnsafeMutablePointer(mutating: base)
        self.count = count
        self.owner = owner
    }

    public var isBorrowed: Bool { owner != nil }

    deinit {
        if owner == nil { UnsafeMutableRawPointer(base).deallocate() }
    }
}

/// A contiguous row-major fp32 tensor with value semantics (copy-on-write).
public struct Tensor: Sendable {
    public private(set) var shape: [Int]
    @usableFromInline var storage: TensorStorage

    /// Element count of the tensor.
    public var count: Int { storage.count }
    public var rank: Int { shape.count }

    /// A tensor of `shape` whose values are not initialised; every element must be written before it is read.
    public init(uninitializedShape shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        self.shape = shape
        self.storage = TensorStorage(uninitializedCount: shape.reduce(1, *))
    }

    /// A tensor of `shape` filled with `value`.
    public init(shape: [Int], repeating value: Float = 0) {
        self.init(uninitializedShape: shape)
        storage.base.initialize(repeating: value, count: storage.count)
    }

    /// A tensor of `shape` holding `values` (row-major).
    public init(shape: [Int], values: [Float]) {
        precondition(shape.reduce(1, *) == values.count, "shape \(shape) does not hold \(values.count) values")
        self.init(uninitializedShape: shape)
        values.withUnsafeBufferPointer { storage.base.update(from: $0.baseAddress!, count: values.count) }
    }

    /// Wraps an existing storage (its count must match the shape).
    public init(shape: [Int], storage: TensorStorage) {
        precondition(shape.reduce(1, *) == storage.count, "shape \(shape) does not match \(storage.count) elements")
        self.shape = shape
        self.storage = storage
    }

    /// The same elements seen with another shape of the same element count.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        Tensor(shape: newShape, storage: storage)
    }

    /// Size of the last dimension (1 for a scalar).
    public var lastDimension: Int { shape.last ?? 1 }
    /// Number of rows when the tensor is read as a matrix `[count / lastDimension, lastDimension]`.
    public var rowCount: Int { lastDimension == 0 ? 0 : count / lastDimension }

    /// Read-only access to the elements.
    @inlinable
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: storage.base, count: storage.count))
    }

    /// Read-write access; copies first when the storage is shared or borrowed.
    @inlinable
    public mutating func withUnsafeMutableBufferPointer<R>(
        _ body: (UnsafeMutableBufferPointer<Float>) throws -> R
    ) rethrows -> R {
        if !isKnownUniquelyReferenced(&storage) || storage.isBorrowed {
            let copy = TensorStorage(uninitializedCount: storage.count)
            copy.base.update(from: storage.base, count: storage.count)
            storage = copy
        }
        return try body(UnsafeMutableBufferPointer(start: storage.base, count: storage.count))
    }

    /// The elements as an array (for tests and small outputs).
    public var scalars: [Float] { withUnsafeBufferPointer { Array($0) } }

    /// Element at a multi-dimensional index.
    public subscript(_ index: Int...) -> Float {
        precondition(index.count == shape.count, "index \(index) does not match shape \(shape)")
        var flat = 0
        for (i, dim) in zip(index, shape) {
            precondition(i >= 0 && i < dim, "index \(index) out of range for shape \(shape)")
            flat = flat * dim + i
        }
        return storage.base[flat]
    }

    /// Rows `range` of the tensor read as a matrix `[rows, lastDimension]`, copied into a new tensor.
    public func rows(_ range: Range<Int>) -> Tensor {
        precondition(range.lowerBound >= 0 && range.upperBound <= rowCount, "rows \(range) out of \(rowCount)")
        let width = lastDimension
        var out = Tensor(uninitializedShape: [range.count, width])
        out.withUnsafeMutableBufferPointer { dst in
            dst.baseAddress!.update(from: storage.base + range.lowerBound * width, count: range.count * width)
        }
        return out
    }

    /// Slice `index` along the first dimension (a copy), with the first dimension removed.
    public func slice(_ index: Int) -> Tensor {
        precondition(rank >= 1 && index >= 0 && index < shape[0], "slice \(index) out of shape \(shape)")
        let inner = Array(shape.dropFirst())
        let size = inner.reduce(1, *)
        var out = Tensor(uninitializedShape: inner)
        out.withUnsafeMutableBufferPointer { dst in
            dst.baseAddress!.update(from: storage.base + index * size, count: size)
        }
        return out
    }

    /// Stacks equally shaped tensors along a new first dimension.
    public static func stack(_ tensors: [Tensor]) -> Tensor {
        precondition(!tensors.isEmpty, "stack of no tensors")
        let inner = tensors[0].shape
        precondition(tensors.allSatisfy { $0.shape == inner }, "stack needs equal shapes")
        return concatenateRows(tensors).reshaped([tensors.count] + inner)
    }

    /// Concatenates tensors that share their last dimension along the row axis: `[Σrows, lastDimension]`.
    public static func concatenateRows(_ tensors: [Tensor]) -> Tensor {
        precondition(!tensors.isEmpty, "concatenation of no tensors")
        let width = tensors[0].lastDimension
        precondition(tensors.allSatisfy { $0.lastDimension == width }, "concatenation needs equal last dimensions")
        let rows = tensors.reduce(0) { $0 + $1.rowCount }
        var out = Tensor(uninitializedShape: [rows, width])
        out.withUnsafeMutableBufferPointer { dst in
            var offset = 0
            for t in tensors {
                t.withUnsafeBufferPointer { src in
                    if src.count > 0 { (dst.baseAddress! + offset).update(from: src.baseAddress!, count: src.count) }
                }
                offset += t.count
            }
        }
        return out
    }

    /// Largest absolute element-wise difference to `other` (same element count required).
    public func maxAbsoluteDifference(_ other: Tensor) -> Float {
        precondition(count == other.count, "compare \(shape) with \(other.shape)")
        return withUnsafeBufferPointer { a in
            other.withUnsafeBufferPointer { b in
                var worst: Float = 0
                for i in 0..<a.count {
                    let d = abs(a[i] - b[i])
                    if d > worst || d.isNaN { worst = d.isNaN ? .infinity : d }
                }
                return worst
            }
        }
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String { "Tensor\(shape)" }
}

extension Tensor {
    /// The elements' little-endian bytes and the object that keeps them alive, for sending without a copy.
    /// The bytes must not be written while anything holds the owner (a write to this tensor copies first
    /// only if the storage is shared, so do not write to it until the send is done).
    public var retainedBytes: (bytes: UnsafeRawBufferPointer, owner: AnyObject) {
        (UnsafeRawBufferPointer(start: storage.base, count: storage.count * 4), storage)
    }
}
