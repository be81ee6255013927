// Keys and values of past positions, per layer, for incremental decoding.

import CKernels

/// The type a KV cache stores keys and values in. Attention computes in fp32 either way.
public enum KVCacheFormat: String, Sendable, CaseIterable, Codable {
    /// Exact: what transformers computes.
    case f32
    /// Half the memory and half the bytes a decode step reads; keys and values rounded to nearest even.
    case f16

    /// Bytes of one cached key or value element.
    public var bytesPerValue: Int { self == .f32 ? 4 : 2 }
}

/// Growable per-layer key/value storage of one sequence.
///
/// Each layer's buffer is laid out head by head: the `headDim` columns of one key/value head at every
/// position lie together (`[width / headDim][capacity][headDim]`), so that attention at decode streams each
/// head's keys and values as one contiguous run instead of a 2·headDim-byte piece every `width` columns.
///
/// A value type: copying a cache (one beam from another) shares storage until either side appends.
public struct KVCache: Sendable {
    public let layerCount: Int
    public let width: Int
    /// Columns stored together per position: a key/value head's size (`width` when the cache was made
    /// without one, which is the interleaved layout of a `[positions, width]` matrix).
    public let headDim: Int
    public let format: KVCacheFormat
    /// Number of positions held.
    public private(set) var length: Int = 0
    // One pair of arrays is used, the other stays empty (two arrays rather than an enum per layer, so that
    // a layer's buffer can be written in place without a second reference to it).
    private var keys: [Tensor] = [], values: [Tensor] = []
    private var halfKeys: [[UInt16]] = [], halfValues: [[UInt16]] = []
    private var capacity: Int

    /// An empty cache for `layers` layers of `width` (`kvHeads · headDim`) columns, stored head by head.
    public init(
        layers: Int, width: Int, headDim: Int? = nil, reservingCapacity capacity: Int = 64, format: KVCacheFormat = .f32
    ) {
        let headDim = headDim ?? width
        precondition(headDim > 0 || width == 0, "a KV cache needs a positive head size")
        precondition(width == 0 || width % headDim == 0, "a width of \(width) is not a whole number of heads of \(headDim)")
        self.layerCount = layers
        self.width = width
        self.headDim = max(headDim, 1)
        self.format = format
        self.capacity = max(capacity, 1)
        switch format {
        case .f32:
            keys = (0..<layers).map { _ in Tensor(uninitializedShape: [self.capacity, width]) }
            values = keys.map { _ in Tensor(uninitializedShape: [self.capacity, width]) }
        case .f16:
            halfKeys = (0..<layers).map { _ in Self.uninitializedHalves(self.capacity * width) }
            halfValues = (0..<layers).map { _ in Self.uninitializedHalves(self.capacity * width) }
        }
    }

    /// Bytes the cache holds for `positions` positions (every layer, keys and values).
    public static func byteCount(layers: Int, width: Int, positions: Int, format: KVCacheFormat) -> Int {
        2 * layers * width * positions * format.bytesPerValue
    }

    /// Appends the new positions' keys and values of `layer`. Returns every position of that layer so far.
    /// Every layer must append the same number of rows before `advance(by:)` is called.
    public mutating func append(layer: Int, keys newKeys: Tensor, values newValues: Tensor) -> KVLayerRows {
        append(layer: layer, keys: newKeys.block(), values: newValues.block())
    }

    /// Appends key and value rows read from blocks of other tensors (such as a fused QKV projection).
    public mutating func append(layer: Int, keys newKeys: MatrixBlock, values newValues: MatrixBlock) -> KVLayerRows {
        let rows = newKeys.rowCount
        precondition(newKeys.width == width && newValues.width == width && newValues.rowCount == rows,
                     "cache of width \(width) cannot take blocks of width \(newKeys.width)/\(newValues.width)")
        if length + rows > capacity { grow(to: max(capacity * 2, length + rows)) }
        // Static, so that no copy of `self` (and with it a second reference to every buffer) is alive
        // while a buffer is written: that would make the write copy the whole buffer on every append.
        let count = length + rows
        let layout = KVLayerRows.HeadLayout(headDim: headDim, capacity: capacity)
        switch format {
        case .f32:
            Self.write(newKeys, into: &keys[layer], at: length, layout)
            Self.write(newValues, into: &values[layer], at: length, layout)
            return KVLayerRows(count: count, width: width, layout: layout,
                               storage: .f32(keys: keys[layer], values: values[layer]))
        case .f16:
            Self.write(newKeys, into: &halfKeys[layer], at: length, layout)
            Self.write(newValues, into: &halfValues[layer], at: length, layout)
            return KVLayerRows(count: count, width: width, layout: layout,
                               storage: .f16(keys: halfKeys[layer], values: halfValues[layer]))
        }
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

    /// Writes `rows` at positions `position...`, each head's columns into that head's run.
    private static func write(
        _ rows: MatrixBlock, into buffer: inout Tensor, at position: Int, _ layout: KVLayerRows.HeadLayout
    ) {
        let d = layout.headDim
        buffer.withUnsafeMutableBufferPointer { dst in
            rows.base.withUnsafeBufferPointer { src in
                for r in 0..<rows.rowCount {
                    let row = src.baseAddress! + rows.offset + r * rows.rowStride
                    for head in 0..<(rows.width / d) {
                        (dst.baseAddress! + layout.start(ofHead: head) + (position + r) * d)
                            .update(from: row + head * d, count: d)
                    }
                }
            }
        }
    }

    private static func write(
        _ rows: MatrixBlock, into buffer: inout [UInt16], at position: Int, _ layout: KVLayerRows.HeadLayout
    ) {
        let d = layout.headDim
        buffer.withUnsafeMutableBufferPointer { dst in
            rows.base.withUnsafeBufferPointer { src in
                for r in 0..<rows.rowCount {
                    let row = src.baseAddress! + rows.offset + r * rows.rowStride
                    for head in 0..<(rows.width / d) {
                        accm_f32_to_f16(row + head * d,
                                        dst.baseAddress! + layout.start(ofHead: head) + (position + r) * d, d)
                    }
                }
            }
        }
    }

    /// A buffer of `count` halves left unwritten (as fp32 buffers are), so that the pages of positions not yet
    /// appended are not touched: only rows below `length` are ever read.
    private static func uninitializedHalves(_ count: Int) -> [UInt16] {
        [UInt16](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
    }

    /// Moves every head's run to its place in a buffer of `newCapacity` positions.
    private mutating func grow(to newCapacity: Int) {
        let held = length * headDim, heads = width / headDim
        let old = KVLayerRows.HeadLayout(headDim: headDim, capacity: capacity)
        let new = KVLayerRows.HeadLayout(headDim: headDim, capacity: newCapacity)
        func grown(_ t: Tensor) -> Tensor {
            var bigger = Tensor(uninitializedShape: [newCapacity, width])
            bigger.withUnsafeMutableBufferPointer { dst in
                t.withUnsafeBufferPointer { src in
                    for head in 0..<heads {
                        (dst.baseAddress! + new.start(ofHead: head))
                            .update(from: src.baseAddress! + old.start(ofHead: head), count: held)
                    }
                }
            }
            return bigger
        }
        func grown(_ half: [UInt16]) -> [UInt16] {
            var bigger = Self.uninitializedHalves(newCapacity * width)
            bigger.withUnsafeMutableBufferPointer { dst in
                half.withUnsafeBufferPointer { src in
                    for head in 0..<heads {
                        (dst.baseAddress! + new.start(ofHead: head))
                            .update(from: src.baseAddress! + old.start(ofHead: head), count: held)
                    }
                }
            }
            return bigger
        }
        keys = keys.map(grown)
        values = values.map(grown)
        halfKeys = halfKeys.map(grown)
        halfValues = halfValues.map(grown)
        capacity = newCapacity
    }
}

/// Every cached position of one layer, as an append hands it to attention: the first `count` positions of
/// each head's run in the layer's key and value buffers (positions past `count` are unused capacity).
public struct KVLayerRows: Sendable {
    public let count: Int
    public let width: Int
    /// Where a head's positions lie in the buffers.
    public let layout: HeadLayout
    public enum Storage: Sendable {
        case f32(keys: Tensor, values: Tensor)
        case f16(keys: [UInt16], values: [UInt16])
    }
    public let storage: Storage

    /// A buffer of `[width / headDim][capacity][headDim]`: head `h`'s position `p` starts at
    /// `start(ofHead: h) + p · headDim`.
    public struct HeadLayout: Sendable, Equatable {
        public let headDim: Int
        public let capacity: Int

        /// The element offset of head `head`'s first position.
        public func start(ofHead head: Int) -> Int { head * capacity * headDim }
    }

    /// The `count` key rows in fp32 (f16 values widened exactly): a copy, for inspection.
    public var keys: Tensor { widened(key: true) }
    /// The `count` value rows in fp32: a copy, for inspection.
    public var values: Tensor { widened(key: false) }

    /// The positions as `[count, width]` rows, heads side by side again.
    private func widened(key: Bool) -> Tensor {
        let d = layout.headDim, heads = width / d
        var out = Tensor(uninitializedShape: [count, width])
        out.withUnsafeMutableBufferPointer { o in
            let o = o.baseAddress!
            switch storage {
            case .f32(let k, let v):
                (key ? k : v).withUnsafeBufferPointer { b in
                    for head in 0..<heads {
                        for p in 0..<count {
                            (o + p * width + head * d).update(from: b.baseAddress! + layout.start(ofHead: head) + p * d, count: d)
                        }
                    }
                }
            case .f16(let k, let v):
                (key ? k : v).withUnsafeBufferPointer { b in
                    for head in 0..<heads {
                        for p in 0..<count { accm_f16_to_f32(b.baseAddress! + layout.start(ofHead: head) + p * d, o + p * width + head * d, d) }
                    }
                }
            }
        }
        return out
    }

    /// Where the key (or value) buffer's storage starts (to check that appends write in place).
    func storageAddress(ofKeys: Bool) -> Int {
        switch storage {
        case .f32(let k, let v): return (ofKeys ? k : v).withUnsafeBufferPointer { Int(bitPattern: $0.baseAddress) }
        case .f16(let k, let v): return (ofKeys ? k : v).withUnsafeBufferPointer { Int(bitPattern: $0.baseAddress) }
        }
    }
}
