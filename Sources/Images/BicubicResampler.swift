// Pillow's `Image.resize(size, Image.BICUBIC)` on 8-bit RGB, bit for bit (libImaging/Resample.c):
// separable, the horizontal pass first; each output sample is a window of input samples weighted by
// the bicubic kernel (a = −0.5) stretched by the scale when shrinking, normalised to sum 1, then
// turned into 22-bit fixed point (rounded half away from zero); sums start at 2^21 and are shifted
// right by 22 and clipped to 0...255; the intermediate image is stored as bytes between the passes;
// a pass whose dimension does not change is skipped.
//
// Every output sample depends only on its own window, so computing just the region that a centre
// crop keeps gives the same bytes as resizing everything and cropping afterwards.

enum BicubicResampler {
    private static let precisionBits: Int32 = 22

    /// Per-output windows and fixed-point weights along one axis.
    struct Coefficients {
        /// Maximum taps per output (the stride of `weights`).
        let taps: Int
        /// First input index of each output's window.
        var first: [Int]
        /// Number of inputs in each output's window.
        var count: [Int]
        /// `taps` weights per output, in units of 2^-22.
        var weights: [Int32]
    }

    /// Pillow's `precompute_coeffs` and `normalize_coeffs_8bpc` for the outputs `outputs` of an
    /// `inSize` → `outSize` resize (box = the whole input).
    static func coefficients(inSize: Int, outSize: Int, outputs: Range<Int>) -> Coefficients {
        let scale = Double(Float(inSize)) / Double(outSize)  // box edges are C floats in Pillow
        let filterScale = max(scale, 1.0)
        let support = 2.0 * filterScale  // bicubic support 2
        let taps = Int(support.rounded(.up)) * 2 + 1
        let inverseFilterScale = 1.0 / filterScale
        var result = Coefficients(
            taps: taps, first: [], count: [], weights: [Int32](repeating: 0, count: outputs.count * taps))
        result.first.reserveCapacity(outputs.count)
        result.count.reserveCapacity(outputs.count)
        var k = [Double](repeating: 0, count: taps)
        for (slot, xx) in outputs.enumerated() {
            let center = (Double(xx) + 0.5) * scale
            let xmin = max(Int(center - support + 0.5), 0)  // C's (int) truncates toward zero
            let xmax = min(Int(center + support + 0.5), inSize) - xmin
            var sum = 0.0
            for x in 0..<max(xmax, 0) {
                let w = bicubic((Double(x + xmin) - center + 0.5) * inverseFilterScale)
                k[x] = w
                sum += w
            }
            for x in 0..<max(xmax, 0) {
                let w = sum != 0 ? k[x] / sum : k[x]
                result.weights[slot * taps + x] = Int32(w < 0 ? -0.5 + w * 4_194_304 : 0.5 + w * 4_194_304)
            }
            result.first.append(xmin)
            result.count.append(max(xmax, 0))
        }
        return result
    }

    /// The bicubic convolution kernel with a = −0.5 (Keys), as Pillow writes it.
    @inline(__always)
    static func bicubic(_ x: Double) -> Double {
        let a = -0.5
        let x = abs(x)
        if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
        if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
        return 0
    }

    /// Resizes `source` (its whole canvas) to `outWidth × outHeight` and returns the `columns × rows` region
    /// of the result as RGB bytes (row-major).
    ///
    /// A padded canvas is never materialised: a row of fill colour gives the same horizontal-pass output
    /// wherever it lies, so it is resampled once and shared, and each image row is laid on the fill colour
    /// one row at a time. Memory is the image, two canvas rows and the distinct intermediate rows, whatever
    /// the padding; the bytes are those of resizing the materialised canvas.
    static func resize(_ source: ResampleSource, outWidth: Int, outHeight: Int, columns: Range<Int>, rows: Range<Int>)
        -> [UInt8]
    {
        let needHorizontal = outWidth != source.canvasWidth, needVertical = outHeight != source.canvasHeight
        let rowBytes = columns.count * 3
        let vertical = needVertical ? coefficients(inSize: source.canvasHeight, outSize: outHeight, outputs: rows) : nil
        // Canvas rows the vertical pass reads (all of `rows` when there is no vertical pass).
        let firstRow = vertical.map { $0.first.first ?? 0 } ?? rows.lowerBound
        let endRow = vertical.map { v in zip(v.first, v.count).map { $0 + $1 }.max() ?? firstRow } ?? rows.upperBound
        // The distinct intermediate rows: the image rows in that range, then one fill row if any is read.
        let imageRows = max(firstRow, source.top)..<max(min(endRow, source.top + source.height), max(firstRow, source.top))
        let readsFill = firstRow < imageRows.lowerBound || endRow > imageRows.upperBound || imageRows.isEmpty
        let distinct = imageRows.count + (readsFill ? 1 : 0)
        let horizontal = needHorizontal ? coefficients(inSize: source.canvasWidth, outSize: outWidth, outputs: columns) : nil

        let temp = [UInt8](unsafeUninitializedCapacity: distinct * rowBytes) { out, initialized in
            let canvas = CanvasRows(source)
            // One intermediate row (or two, sharing each weight load) from canvas rows.
            func resample(_ line: UnsafePointer<UInt8>, _ second: UnsafePointer<UInt8>?, into slot: Int) {
                let target = out.baseAddress! + slot * rowBytes
                if let horizontal {
                    horizontalRows(line, second, into: target, rowBytes: rowBytes, horizontal)
                } else {
                    target.update(from: line + columns.lowerBound * 3, count: rowBytes)
                    if let second { (target + rowBytes).update(from: second + columns.lowerBound * 3, count: rowBytes) }
                }
            }
            var y = imageRows.lowerBound
            while y < imageRows.upperBound {
                let pair = y + 1 < imageRows.upperBound
                let (line, second) = canvas.imageRows(y - source.top, pair: pair)
                resample(line, second, into: y - imageRows.lowerBound)
                y += pair ? 2 : 1
            }
            if readsFill { resample(canvas.fillRow(), nil, into: imageRows.count) }
            initialized = distinct * rowBytes
        }

        return temp.withUnsafeBufferPointer { temp in
            // Canvas row → its intermediate row.
            let rowTable = (firstRow..<endRow).map { y in
                temp.baseAddress! + (imageRows.contains(y) ? y - imageRows.lowerBound : imageRows.count) * rowBytes
            }
            return [UInt8](unsafeUninitializedCapacity: rows.count * rowBytes) { out, initialized in
                rowTable.withUnsafeBufferPointer { table in
                    for slot in 0..<rows.count {
                        let target = out.baseAddress! + slot * rowBytes
                        if let vertical {
                            verticalRow(table.baseAddress! + (vertical.first[slot] - firstRow), count: vertical.count[slot],
                                        weights: vertical.weights, offset: slot * vertical.taps, into: target, bytes: rowBytes)
                        } else {
                            target.update(from: table[rows.lowerBound + slot - firstRow], count: rowBytes)
                        }
                    }
                }
                initialized = rows.count * rowBytes
            }
        }
    }

    /// One or two output rows of the horizontal pass: for each requested column, the weighted window of
    /// RGB pixels of `line` (written at `out`) and of `second` (written at `out + rowBytes`).
    @inline(__always)
    private static func horizontalRows(
        _ line: UnsafePointer<UInt8>, _ second: UnsafePointer<UInt8>?, into out: UnsafeMutablePointer<UInt8>,
        rowBytes: Int, _ c: Coefficients
    ) {
        // Scalar sums: on the baseline x86-64 target (SSE2, no 32-bit vector multiply) they beat a 4-lane
        // vector of R, G, B and a wasted lane.
        let bias = Int32(1) << (precisionBits - 1)
        c.weights.withUnsafeBufferPointer { weights in
            for slot in 0..<c.first.count {
                let w = weights.baseAddress! + slot * c.taps
                let offset = c.first[slot] * 3
                var p = line + offset
                if let second {
                    var q = second + offset
                    var r0 = bias, g0 = bias, b0 = bias, r1 = bias, g1 = bias, b1 = bias
                    for k in 0..<c.count[slot] {
                        let wk = w[k]
                        r0 &+= Int32(p[0]) &* wk
                        g0 &+= Int32(p[1]) &* wk
                        b0 &+= Int32(p[2]) &* wk
                        r1 &+= Int32(q[0]) &* wk
                        g1 &+= Int32(q[1]) &* wk
                        b1 &+= Int32(q[2]) &* wk
                        p += 3
                        q += 3
                    }
                    out[rowBytes + 3 * slot] = clip8(r1)
                    out[rowBytes + 3 * slot + 1] = clip8(g1)
                    out[rowBytes + 3 * slot + 2] = clip8(b1)
                    out[3 * slot] = clip8(r0)
                    out[3 * slot + 1] = clip8(g0)
                    out[3 * slot + 2] = clip8(b0)
                } else {
                    var r = bias, g = bias, b = bias
                    for k in 0..<c.count[slot] {
                        let wk = w[k]
                        r &+= Int32(p[0]) &* wk
                        g &+= Int32(p[1]) &* wk
                        b &+= Int32(p[2]) &* wk
                        p += 3
                    }
                    out[3 * slot] = clip8(r)
                    out[3 * slot + 1] = clip8(g)
                    out[3 * slot + 2] = clip8(b)
                }
            }
        }
    }

    /// Pillow's `clip8`: the sum shifted right by 22 bits, clipped to 0...255.
    @inline(__always)
    private static func clip8(_ sum: Int32) -> UInt8 {
        UInt8(clamping: sum >> precisionBits)
    }

    /// One output row of the vertical pass: `bytes` columns, each the weighted sum of the `count` rows that
    /// `rows` points to.
    @inline(__always)
    private static func verticalRow(
        _ rows: UnsafePointer<UnsafePointer<UInt8>>, count: Int, weights: [Int32], offset: Int,
        into out: UnsafeMutablePointer<UInt8>, bytes: Int
    ) {
        weights.withUnsafeBufferPointer { weights in
            let w = weights.baseAddress! + offset
            let bias = Int32(1) << (precisionBits - 1)
            var j = 0
            while j + 16 <= bytes {
                var acc = SIMD16<Int32>(repeating: bias)
                for k in 0..<count {
                    let v = UnsafeRawPointer(rows[k] + j).loadUnaligned(as: SIMD16<UInt8>.self)
                    acc &+= SIMD16<Int32>(truncatingIfNeeded: v) &* w[k]
                }
                let v = (acc &>> precisionBits).clamped(lowerBound: .zero, upperBound: SIMD16(repeating: 255))
                let bytes = SIMD16<UInt8>(truncatingIfNeeded: v)
                UnsafeMutableRawPointer(out + j).storeBytes(of: bytes, as: SIMD16<UInt8>.self)
                j += 16
            }
            while j < bytes {
                var acc = bias
                for k in 0..<count { acc &+= Int32(rows[k][j]) &* w[k] }
                out[j] = clip8(acc)
                j += 1
            }
        }
    }
}

/// What a resize reads: an RGB image, alone or centred on a larger canvas of one colour.
struct ResampleSource {
    let pixels: UnsafePointer<UInt8>
    let width: Int, height: Int
    let canvasWidth: Int, canvasHeight: Int
    /// Where the image's top-left pixel lies on the canvas.
    let left: Int, top: Int
    let fill: (UInt8, UInt8, UInt8)

    /// The image itself.
    init(_ pixels: UnsafePointer<UInt8>, width: Int, height: Int) {
        self.pixels = pixels
        self.width = width
        self.height = height
        (canvasWidth, canvasHeight, left, top, fill) = (width, height, 0, 0, (0, 0, 0))
    }

    /// The image centred on a square of side max(width, height) filled with `fill`, at
    /// ((side − width) / 2, (side − height) / 2) rounded down (LLaVA's `expand2square`).
    init(paddedToSquare pixels: UnsafePointer<UInt8>, width: Int, height: Int, fill: (UInt8, UInt8, UInt8)) {
        self.pixels = pixels
        self.width = width
        self.height = height
        let side = max(width, height)
        (canvasWidth, canvasHeight, left, top, self.fill) = (side, side, (side - width) / 2, (side - height) / 2, fill)
    }
}

/// Whole canvas rows of a `ResampleSource`, built in two row buffers of its own when the canvas is wider
/// than the image (otherwise they point into the image). Pointers it returns are valid until its next call.
private final class CanvasRows {
    let source: ResampleSource
    private var first: UnsafeMutablePointer<UInt8>?, second: UnsafeMutablePointer<UInt8>?

    init(_ source: ResampleSource) {
        self.source = source
    }

    deinit {
        first?.deallocate()
        second?.deallocate()
    }

    private func filledRow() -> UnsafeMutablePointer<UInt8> {
        let row = UnsafeMutablePointer<UInt8>.allocate(capacity: source.canvasWidth * 3)
        fill(row)
        return row
    }

    private func fill(_ row: UnsafeMutablePointer<UInt8>) {
        for x in 0..<source.canvasWidth {
            row[3 * x] = source.fill.0
            row[3 * x + 1] = source.fill.1
            row[3 * x + 2] = source.fill.2
        }
    }

    /// Image row `y` (and `y + 1` when `pair`) as canvas rows.
    func imageRows(_ y: Int, pair: Bool) -> (UnsafePointer<UInt8>, UnsafePointer<UInt8>?) {
        let s = source, rowBytes = s.width * 3
        guard s.canvasWidth != s.width else {
            return (s.pixels + y * rowBytes, pair ? s.pixels + (y + 1) * rowBytes : nil)
        }
        let first = self.first ?? filledRow(), second = self.second ?? filledRow()
        (self.first, self.second) = (first, second)
        (first + s.left * 3).update(from: s.pixels + y * rowBytes, count: rowBytes)
        if pair { (second + s.left * 3).update(from: s.pixels + (y + 1) * rowBytes, count: rowBytes) }
        return (UnsafePointer(first), pair ? UnsafePointer(second) : nil)
    }

    /// A canvas row of fill colour only.
    func fillRow() -> UnsafePointer<UInt8> {
        let row = first ?? filledRow()
        first = row
        fill(row)
        return UnsafePointer(row)
    }
}
