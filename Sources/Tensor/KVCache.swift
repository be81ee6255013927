// Keys and values of past positions, per layer, for incremental decoding.

/// Growable per-layer key/value storage of one sequence.
///
/// A value type: copying a cache (one beam from another) shares storage until either side appends.
public struct KVCache: Sendable {
    public let layerCount: Int
    public let width: Int
    /// Number of positions held.
    public private(set) var length: Int = 0
    private var keys: [Tensor]
    private var values: [Tensor]
    private var capacity: Int

    /// An empty cache for `layers` layers of `width` (`kvHeads · headDim`) columns.
    public init(layers: Int, width: Int, reservingCapacity capacity: Int = 64) {
        self.layerCount = layers
        self.width = width
        self.capacity = max(capacity, 1)
        keys = (0..<layers).map { _ in Tensor(uninitializedShape: [max(capacity, 1), width]) }
        values = keys.map { _ in Tensor(uninitializedShape: [max(capacity, 1), width]) }
    }

    /// Appends the new positions' keys and values of `layer`. Returns the layer's key and value buffers,
    /// whose first `count` rows hold every position so far (rows past `count` are unused capacity).
    /// Every layer must append the same number of rows before `advance(by:)` is called.
    public mutating func append(
        layer: Int, keys newKeys: Tensor, values newValues: Tensor
    ) -> (keys: Tensor, values: Tensor, count: Int) {
        append(layer: layer, keys: newKeys.block(), values: newValues.block())
    }

    /// Appends key and value rows read from blocks of other tensors (such as a fused QKV projection).
    public mutating func append(
        layer: Int, keys newKeys: MatrixBlock, values newValues: MatrixBlock
    ) -> (keys: Tensor, values: Tensor, count: Int) {
        let rows = newKeys.rowCount
        precondition(newKeys.width == width && newValues.width == width && newValues.rowCount == rows,
                     "cache of width \(width) cannot take blocks of width \(newKeys.width)/\(newValues.width)")
        if length + rows > capacity { grow(to: max(capacity * 2, length + rows)) }
        // Static, so that no copy of `self` (and with it a second reference to every buffer) is alive
        // while a buffer is written: that would make the write copy the whole buffer on every append.
        Self.write(newKeys, into: &keys[layer], at: length * width)
        Self.write(newValues, into: &values[layer], at: length * width)
        return (keys[layer], values[layer], length + rows)
    }

    /// Marks the positions appended to every layer as part of the cache.
    public mutating func advance(by rows: Int) {
        length += rows
    }

    /// Drops every position after the first `newLength`.
    public mutating func truncate(to newLength: Int) {
        precondition(newLength >= 0 && newLength <= length, "cannot truncate \(length) positions to \(newLength)")
        length = newLength
    }

    private static func write(_ rows: MatrixBlock, into buffer: inout Tensor, at offset: Int) {
        buffer.withUnsafeMutableBufferPointer { dst in
            rows.base.withUnsafeBufferPointer { src in
                for r in 0..<rows.rowCount {
                    (dst.baseAddress! + offset + r * rows.width).update(
                        from: src.baseAddress! + rows.offset + r * rows.rowStride, count: rows.width)
                }
            }
        }
    }

    private mutating func grow(to newCapacity: Int) {
        func grown(_ t: Tensor) -> Tensor {
            var bigger = Tensor(uninitializedShape: [newCapacity, width])
            bigger.withUnsafeMutableBufferPointer { dst in
                t.withUnsafeBufferPointer { src in dst.baseAddress!.update(from: src.baseAddress!, count: length * width) }
            }
            return bigger
        }
        keys = keys.map(grown)
        values = values.map(grown)
        capacity = newCapacity
    }
}
