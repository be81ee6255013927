// A weight matrix `W[rows = outputs, columns = inputs]` kept in its storage format (fp32, bf16, f16, or
// Q8_0/Q4_0-like blocks): what every linear map, language-model head and token-embedding table holds.

import CKernels

/// A weight matrix in one of the `WeightFormat`s, never expanded to fp32 as a whole.
public struct WeightMatrix: Sendable {
    /// What the matrix is made of.
    public enum Payload: Sendable {
        /// fp32 `[rows, columns]` (PyTorch `Linear` layout).
        case f32(Tensor)
        /// fp32 `[columns, rows]` (GPT-2's `Conv1D` layout), used as it is stored.
        case f32InputMajor(Tensor)
        /// bf16 or f16 `[rows, columns]`, 2 bytes a weight.
        case half(WeightBytes)
        /// Q8_0 (`int8`: `columns` bytes a row, row after row, and `columns / 32` fp16 scales a row) or Q4_0
        /// (`int4`: rows interleaved 8 at a time, `accm_q4_0x8` in `accm_kernels.h`, the last group padded: the
        /// layout both integer kernels read) quantized weights, and their fp16 scales.
        case quantized(WeightBytes, scales: WeightBytes)
    }

    public let rows: Int
    public let columns: Int
    public let format: WeightFormat
    public let payload: Payload

    /// An fp32 matrix `[rows, columns]`.
    public init(_ tensor: Tensor) {
        precondition(tensor.rank == 2, "a weight matrix is 2-D, got \(tensor.shape)")
        (rows, columns, format, payload) = (tensor.shape[0], tensor.shape[1], .f32, .f32(tensor))
    }

    /// An fp32 matrix stored `[columns, rows]` (input-major, as GPT-2's Conv1D).
    public init(inputMajor tensor: Tensor) {
        precondition(tensor.rank == 2, "a weight matrix is 2-D, got \(tensor.shape)")
        (rows, columns, format, payload) = (tensor.shape[1], tensor.shape[0], .f32, .f32InputMajor(tensor))
    }

    /// bf16 or f16 values `[rows, columns]` (borrowed or owned).
    public init(half bytes: WeightBytes, format: WeightFormat, rows: Int, columns: Int) {
        precondition(format == .bf16 || format == .f16, "\(format) is not a half-precision format")
        precondition(bytes.count == rows * columns * 2, "\(bytes.count) bytes for a \(rows)×\(columns) \(format) matrix")
        (self.rows, self.columns, self.format, payload) = (rows, columns, format, .half(bytes))
    }

    /// Block-quantized values and scales `[rows, columns]` in the engine's layout (`Payload.quantized`; see
    /// `quantized(rowMajor:scales:format:rows:columns:)` for the row-after-row layout files hold).
    public init(quantized bytes: WeightBytes, scales: WeightBytes, format: WeightFormat, rows: Int, columns: Int) {
        precondition(format.isBlockQuantized && columns % WeightFormat.quantBlock == 0,
                     "\(format) needs a block-quantized format and columns in whole blocks, got \(columns)")
        let stored = Self.storedRows(format, rows: rows)
        precondition(bytes.count == stored * Self.quantizedRowBytes(format, columns: columns)
                     && scales.count == stored * columns / WeightFormat.quantBlock * 2, "quantized sizes do not match")
        (self.rows, self.columns, self.format, payload) = (rows, columns, format, .quantized(bytes, scales: scales))
    }

    /// `[rows, columns]`, the shape of the matrix as a PyTorch `Linear` weight.
    public var shape: [Int] { [rows, columns] }

    /// Bytes the matrix occupies (what a decode step reads of it).
    public var byteCount: Int {
        switch payload {
        case .f32(let t), .f32InputMajor(let t): t.count * 4
        case .half(let b): b.count
        case .quantized(let b, let s): b.count + s.count
        }
    }

    /// Bytes one row of `columns` weights takes in a block-quantized format (scales not included).
    public static func quantizedRowBytes(_ format: WeightFormat, columns: Int) -> Int {
        format == .int8 ? columns : columns / 2
    }

    /// Rows a block-quantized matrix of `rows` rows holds in memory: int4 pads its last group of 8.
    public static func storedRows(_ format: WeightFormat, rows: Int) -> Int {
        format == .int4 ? accm_q4_0x8_groups(rows) * 8 : rows
    }

    // MARK: Building in a format

    /// Builds a `rows × columns` matrix in `format` from fp32 rows that `source` writes, a block of rows at a
    /// time (`source(range, destination)` writes rows `range`, `columns` floats each): the matrix is never
    /// held in fp32 as a whole unless `format` is `.f32`. Blocks are built in parallel.
    public static func build(
        _ format: WeightFormat, rows: Int, columns: Int,
        source: (_ rows: Range<Int>, _ destination: UnsafeMutablePointer<Float>) -> Void
    ) -> WeightMatrix {
        precondition(!format.isBlockQuantized || columns % WeightFormat.quantBlock == 0,
                     "\(format) needs the input dimension (\(columns)) in whole blocks of \(WeightFormat.quantBlock)")
        if format == .f32 {
            var t = Tensor(uninitializedShape: [rows, columns])
            t.withUnsafeMutableBufferPointer { out in
                let base = UnsafeSendableBox(out.baseAddress!)
                forEachRowBlock(rows: rows, columns: columns) { range in source(range, base.value + range.lowerBound * columns) }
            }
            return WeightMatrix(t)
        }
        if format == .int4 { return buildInterleavedQ4(rows: rows, columns: columns, source: source) }
        let blockRows = max(1, min(rows, (1 << 16) / max(columns, 1)))
        func convert(into values: UnsafeMutableRawPointer, scales: UnsafeMutableRawPointer?) {
            let (values, scales) = (UnsafeSendableBox(values), UnsafeSendableBox(scales))
            forEachRowBlock(rows: rows, columns: columns) { range in
                let scratch = UnsafeMutablePointer<Float>.allocate(capacity: blockRows * columns)
                defer { scratch.deallocate() }
                for start in stride(from: range.lowerBound, to: range.upperBound, by: blockRows) {
                    let block = start..<min(range.upperBound, start + blockRows)
                    source(block, scratch)
                    let n = block.count * columns
                    switch format {
                    case .bf16:
                        accm_f32_to_bf16(scratch, values.value.assumingMemoryBound(to: UInt16.self) + start * columns, n)
                    case .f16:
                        accm_f32_to_f16(scratch, values.value.assumingMemoryBound(to: UInt16.self) + start * columns, n)
                    case .int8:
                        accm_quantize_q8_0(scratch, n, values.value.assumingMemoryBound(to: Int8.self) + start * columns,
                                           scales.value!.assumingMemoryBound(to: UInt16.self) + start * columns / 32)
                    case .int4, .f32:
                        preconditionFailure("handled above")
                    }
                }
            }
        }
        if format.isBlockQuantized {
            var scales: WeightBytes!
            let values = WeightBytes(count: rows * quantizedRowBytes(format, columns: columns)) { v in
                scales = WeightBytes(count: rows * columns / WeightFormat.quantBlock * 2) { s in convert(into: v, scales: s) }
            }
            return WeightMatrix(quantized: values, scales: scales, format: format, rows: rows, columns: columns)
        }
        let values = WeightBytes(count: rows * columns * 2) { convert(into: $0, scales: nil) }
        return WeightMatrix(half: values, format: format, rows: rows, columns: columns)
    }

    /// `build` for int4: rows quantized a group of 8 at a time (groups split across the engine's threads) into
    /// row-major Q4_0 scratch, then moved into the interleaved layout.
    private static func buildInterleavedQ4(
        rows: Int, columns: Int, source: (_ rows: Range<Int>, _ destination: UnsafeMutablePointer<Float>) -> Void
    ) -> WeightMatrix {
        let groups = accm_q4_0x8_groups(rows), blocks = columns / WeightFormat.quantBlock
        let groupsPerBlock = max(1, (1 << 16) / max(8 * columns, 1)), blockRows = groupsPerBlock * 8
        return interleavedQ4(rows: rows, columns: columns) { v, s in
            let (v, s) = (UnsafeSendableBox(v), UnsafeSendableBox(s))
            Parallelism.forEachChunk(count: groups, grain: max(1, (1 << 18) / max(8 * columns, 1))) { chunk in
                let floats = UnsafeMutablePointer<Float>.allocate(capacity: blockRows * columns)
                let q = UnsafeMutablePointer<UInt8>.allocate(capacity: blockRows * columns / 2)
                let qs = UnsafeMutablePointer<UInt16>.allocate(capacity: blockRows * blocks)
                defer { floats.deallocate(); q.deallocate(); qs.deallocate() }
                for group in stride(from: chunk.lowerBound, to: chunk.upperBound, by: groupsPerBlock) {
                    let first = group * 8, block = first..<min(rows, min(chunk.upperBound, group + groupsPerBlock) * 8)
                    source(block, floats)
                    accm_quantize_q4_0(floats, block.count * columns, q, qs)
                    accm_q4_0x8_pack(q, qs, block.count, columns, first, v.value, s.value)
                }
            }
        }
    }

    /// A new int4 matrix in the interleaved layout: `fill` writes its rows' values and scales (every row), then the
    /// last group's padding rows are filled.
    private static func interleavedQ4(
        rows: Int, columns: Int, fill: (_ values: UnsafeMutablePointer<UInt8>, _ scales: UnsafeMutablePointer<UInt16>) -> Void
    ) -> WeightMatrix {
        let stored = storedRows(.int4, rows: rows)
        var scales: WeightBytes!
        let values = WeightBytes(count: stored * columns / 2) { v in
            scales = WeightBytes(count: stored * columns / WeightFormat.quantBlock * 2) { s in
                let (v, s) = (v.assumingMemoryBound(to: UInt8.self), s.assumingMemoryBound(to: UInt16.self))
                fill(v, s)
                accm_q4_0x8_pad(v, s, rows, columns)
            }
        }
        return WeightMatrix(quantized: values, scales: scales, format: .int4, rows: rows, columns: columns)
    }

    /// Splits `rows` into one chunk per engine thread (when the matrix is large enough to be worth it).
    private static func forEachRowBlock(rows: Int, columns: Int, _ body: (Range<Int>) -> Void) {
        Parallelism.forEachChunk(count: rows, grain: max(1, (1 << 18) / max(columns, 1)), body)
    }

    /// This matrix in `format` (the same matrix when it already is in it).
    public func converted(to format: WeightFormat) -> WeightMatrix {
        if format == self.format, case .f32 = payload { return self }
        if format == self.format, format != .f32 { return self }
        return Self.build(format, rows: rows, columns: columns) { range, out in
            self.writeRows(range, into: out)
        }
    }

    // MARK: Reading rows as fp32

    /// Rows `range` as fp32, `columns` floats each, written at `out`.
    public func writeRows(_ range: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        precondition(range.lowerBound >= 0 && range.upperBound <= rows, "rows \(range) out of \(rows)")
        let n = range.count * columns
        switch payload {
        case .f32(let t):
            t.withUnsafeBufferPointer { out.update(from: $0.baseAddress! + range.lowerBound * columns, count: n) }
        case .f32InputMajor(let t):
            t.withUnsafeBufferPointer { w in
                for (i, r) in range.enumerated() {
                    for c in 0..<columns { out[i * columns + c] = w[c * rows + r] }
                }
            }
        case .half(let bytes):
            let source = bytes.base.assumingMemoryBound(to: UInt16.self) + range.lowerBound * columns
            if format == .bf16 { accm_bf16_to_f32(source, out, n) } else { accm_f16_to_f32(source, out, n) }
        case .quantized(let bytes, let scales):
            if format == .int8 {
                let s = scales.base.assumingMemoryBound(to: UInt16.self) + range.lowerBound * columns / 32
                accm_dequantize_q8_0(bytes.base.assumingMemoryBound(to: Int8.self) + range.lowerBound * columns, s, n, out)
            } else {
                accm_q4_0x8_dequantize(bytes.base.assumingMemoryBound(to: UInt8.self), scales.base.assumingMemoryBound(to: UInt16.self),
                                       columns, range.lowerBound, range.count, out)
            }
        }
    }

    /// The whole matrix as an fp32 tensor `[rows, columns]` (tests and small matrices).
    public func dequantized() -> Tensor {
        if case .f32(let t) = payload { return t }
        var t = Tensor(uninitializedShape: [rows, columns])
        t.withUnsafeMutableBufferPointer { writeRows(0..<rows, into: $0.baseAddress!) }
        return t
    }

    /// Rows `ids` as fp32 `[ids.count, columns]` (a token-embedding lookup).
    public func gatherRows(_ ids: [Int]) -> Tensor {
        if case .f32(let t) = payload { return t.gatherRows(ids) }
        var out = Tensor(uninitializedShape: [ids.count, columns])
        out.withUnsafeMutableBufferPointer { o in
            for (i, id) in ids.enumerated() { writeRows(id..<(id + 1), into: o.baseAddress! + i * columns) }
        }
        return out
    }

    /// Stacks matrices of one format and width along the rows (fused q/k/v projections).
    public static func concatenateRows(_ parts: [WeightMatrix]) -> WeightMatrix {
        precondition(!parts.isEmpty, "concatenation of no matrices")
        let (format, columns) = (parts[0].format, parts[0].columns)
        precondition(parts.allSatisfy { $0.format == format && $0.columns == columns }, "concatenation needs one format and width")
        let rows = parts.reduce(0) { $0 + $1.rows }
        func joined(_ pieces: [WeightBytes]) -> WeightBytes {
            WeightBytes(count: pieces.reduce(0) { $0 + $1.count }) { out in
                var offset = 0
                for b in pieces {
                    (out + offset).copyMemory(from: b.base, byteCount: b.count)
                    offset += b.count
                }
            }
        }
        func joined(_ pick: (WeightMatrix) -> WeightBytes) -> WeightBytes { joined(parts.map(pick)) }
        switch parts[0].payload {
        case .f32:
            return WeightMatrix(Tensor.concatenateRows(parts.map { $0.dequantized() }))
        case .f32InputMajor:
            return WeightMatrix(Tensor.concatenateRows(parts.map { $0.dequantized() }))
        case .half:
            return WeightMatrix(half: joined { if case .half(let b) = $0.payload { b } else { preconditionFailure() } },
                                format: format, rows: rows, columns: columns)
        case .quantized where format == .int4:
            // Interleaved groups do not simply follow one another when a part's rows are not a multiple of 8.
            let rowMajor = parts.map { $0.rowMajorQuantized() }
            return quantized(rowMajor: joined(rowMajor.map(\.values)), scales: joined(rowMajor.map(\.scales)),
                             format: format, rows: rows, columns: columns)
        case .quantized:
            let values = joined { if case .quantized(let b, _) = $0.payload { b } else { preconditionFailure() } }
            let scales = joined { if case .quantized(_, let s) = $0.payload { s } else { preconditionFailure() } }
            return WeightMatrix(quantized: values, scales: scales, format: format, rows: rows, columns: columns)
        }
    }

    // MARK: The row-after-row layout of files

    /// A block-quantized matrix from values and scales laid out row after row (`rows × quantizedRowBytes` bytes,
    /// `rows × columns / 32` fp16 scales: what a pre-quantized file holds). int8 keeps the bytes it is given
    /// (borrowed ones stay borrowed); int4 is moved into the interleaved layout, a new owned copy.
    public static func quantized(
        rowMajor bytes: WeightBytes, scales: WeightBytes, format: WeightFormat, rows: Int, columns: Int
    ) -> WeightMatrix {
        precondition(format.isBlockQuantized && columns % WeightFormat.quantBlock == 0,
                     "\(format) needs a block-quantized format and columns in whole blocks, got \(columns)")
        precondition(bytes.count == rows * quantizedRowBytes(format, columns: columns)
                     && scales.count == rows * columns / WeightFormat.quantBlock * 2, "quantized sizes do not match")
        guard format == .int4 else { return WeightMatrix(quantized: bytes, scales: scales, format: format, rows: rows, columns: columns) }
        return interleavedQ4(rows: rows, columns: columns) { v, s in
            accm_q4_0x8_pack(bytes.base.assumingMemoryBound(to: UInt8.self), scales.base.assumingMemoryBound(to: UInt16.self),
                             rows, columns, 0, v, s)
        }
    }

    /// This block-quantized matrix's values and scales row after row (what a pre-quantized file holds): int8's
    /// own bytes, int4's moved out of the interleaved layout into new ones.
    public func rowMajorQuantized() -> (values: WeightBytes, scales: WeightBytes) {
        guard case .quantized(let bytes, let scales) = payload else { preconditionFailure("\(format) is not block-quantized") }
        guard format == .int4 else { return (bytes, scales) }
        let blocks = columns / WeightFormat.quantBlock
        var rowScales: WeightBytes!
        let values = WeightBytes(count: rows * columns / 2) { v in
            rowScales = WeightBytes(count: rows * blocks * 2) { s in
                accm_q4_0x8_unpack(bytes.base.assumingMemoryBound(to: UInt8.self), scales.base.assumingMemoryBound(to: UInt16.self),
                                   columns, 0, rows, v.assumingMemoryBound(to: UInt8.self), s.assumingMemoryBound(to: UInt16.self))
            }
        }
        return (values, rowScales)
    }
}
