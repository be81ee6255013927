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
/// A value type: copying a cache (one beam from another) shares storage until either side appends.
public struct KVCache: Sendable {
    public let layerCount: Int
    public let width: Int
    public let format: KVCacheFormat
    /// Number of positions held.
    public private(set) var length: Int = 0
    // One pair of arrays is used, the other stays empty (two arrays rather than an enum per layer, so that
    // a layer's buffer can be written in place without a second reference to it).
    private var keys: [Tensor] = [], values: [Tensor] = []
    private var halfKeys: [[UInt16]] = [], halfValues: [[UInt16]] = []
    private var capacity: Int

    /// An empty cache for `layers` layers of `width` (`kvHeads · headDim`) columns.
    public init(layers: Int, width: Int, reservingCapacity capacity: Int = 64, format: KVCacheFormat = .f32) {
        self.layerCount = layers
        self.width = width
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
        switch format {
        case .f32:
            Self.write(newKeys, into: &keys[layer], at: length * width)
            Self.write(newValues, into: &values[layer], at: length * width)
            return KVLayerRows(count: count, width: width, storage: .f32(keys: keys[layer], values: values[layer]))
        case .f16:
            Self.write(newKeys, into: &halfKeys[layer], at: length * width)
            Self.write(newValues, into: &halfValues[layer], at: length * width)
            return KVLayerRows(count: count, width: width, storage: .f16(keys: halfKeys[layer], values: halfValues[layer]))
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

    private static func write(_ rows: MatrixBlock, into buffer: inout [UInt16], at offset: Int) {
        buffer.withUnsafeMutableBufferPointer { dst in
            rows.base.withUnsafeBufferPointer { src in
                for r in 0..<rows.rowCount {
                    accm_f32_to_f16(src.baseAddress! + rows.offset + r * rows.rowStride,
                                    dst.baseAddress! + offset + r * rows.width, rows.width)
                }
            }
        }
    }

    /// A buffer of `count` halves left unwritten (as fp32 buffers are), so that the pages of positions not yet
    /// appended are not touched: only rows below `length` are ever read.
    private static func uninitializedHalves(_ count: Int) -> [UInt16] {
        [UInt16](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
    }

    private mutating func grow(to newCapacity: Int) {
        let held = length * width
        func grown(_ t: Tensor) -> Tensor {
            var bigger = Tensor(uninitializedShape: [newCapacity, width])
            bigger.withUnsafeMutableBufferPointer { dst in
                t.withUnsafeBufferPointer { src in dst.baseAddress!.update(from: src.baseAddress!, count: held) }
            }
            return bigger
        }
        func grown(_ half: [UInt16]) -> [UInt16] {
            var bigger = Self.uninitializedHalves(newCapacity * width)
            bigger.withUnsafeMutableBufferPointer { dst in
                half.withUnsafeBufferPointer { src in dst.baseAddress!.update(from: src.baseAddress!, count: held) }
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

/// Every cached position of one layer, as an append hands it to attention: the first `count` rows of
/// the layer's key and value buffers (rows past `count` are unused capacity).
public struct KVLayerRows: Sendable {
    public let count: Int
    public let width: Int
    public enum Storage: Sendable {
        case f32(keys: Tensor, values: Tensor)
        case f16(keys: [UInt16], values: [UInt16])
    }
    public let storage: Storage

    /// The `count` key rows in fp32 (f16 values widened exactly): a copy, for inspection.
    public var keys: Tensor { widened(key: true) }
    /// The `count` value rows in fp32: a copy, for inspection.
    public var values: Tensor { widened(key: false) }

    private func widened(key: Bool) -> Tensor {
        switch storage {
        case .f32(let k, let v): return (key ? k : v).rows(0..<count)
        case .f16(let k, let v):
            var out = Tensor(uninitializedShape: [count, width])
            out.withUnsafeMutableBufferPointer { o in
                (key ? k : v).withUnsafeBufferPointer { accm_f16_to_f32($0.baseAddress!, o.baseAddress!, count * width) }
            }
            return out
        }
    }

    /// Where the key (or value) buffer's storage starts (to check that appends write in place).
    func storageAddress(ofKeys: Bool) -> Int {
        switch storage {
        case .f32(let k, let v): return (ofKeys ? k : v).withUnsafeBufferPointer { Int(bitPattern: $0.baseAddress) }
        case .f16(let k, let v): return (ofKeys ? k : v).withUnsafeBufferPointer { Int(bitPattern: $0.baseAddress) }
        }
    }
}
