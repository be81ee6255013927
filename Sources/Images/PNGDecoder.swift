// PNG decoded the way Pillow decodes it: Pillow does not use libpng either, but its own chunk reader,
// zlib and unfilter, then its "unpackers" and `convert("RGB")`. Doing the same here reproduces its
// pixels exactly, including its quirks (see PNGPixels.swift). libpng was the alternative and was
// measured against Pillow: its simplified API (the only one that reports errors without a longjmp
// through the caller's frames) applies gAMA/sRGB colour handling, treats 16-bit data as linear light
// and premultiplies alpha in 16-bit output, so it cannot give Pillow's values.
//
// Chunk handling follows Pillow: chunk CRCs are checked up to the image data; only the first run of
// consecutive IDAT chunks is read (their CRCs are not checked; zlib's Adler-32 covers the data); what
// follows the image data, IEND included, is not needed. Ancillary chunks (gAMA, iCCP, text...) are
// ignored, as Pillow's pixel values ignore them.

enum PNGDecoder {
    /// The IHDR fields.
    struct Header {
        var width: Int
        var height: Int
        var bitDepth: Int
        var colorType: Int
        var interlaced: Bool

        /// Samples per pixel.
        var channels: Int { [0: 1, 2: 3, 3: 1, 4: 2, 6: 4][colorType] ?? 0 }
        /// Byte distance used by the row filters.
        var filterStride: Int { max(1, channels * bitDepth / 8) }
        /// Bytes in one row of `width` pixels (without the filter byte).
        func rowBytes(width: Int) -> Int { (width * channels * bitDepth + 7) / 8 }
    }

    static func decode(_ b: UnsafeRawBufferPointer, limits: ImageLimits) throws -> RGBImage {
        let n = b.count
        func be32(_ i: Int) -> Int { Int(b[i]) << 24 | Int(b[i + 1]) << 16 | Int(b[i + 2]) << 8 | Int(b[i + 3]) }
        func name(_ i: Int) -> String {
            String(decoding: b[i..<i + 4].map { $0 < 0x20 || $0 > 0x7E ? 0x3F : $0 }, as: UTF8.self)
        }
        let IHDR = 0x4948_4452, PLTE = 0x504C_5445, tRNS = 0x7452_4E53, IDAT = 0x4944_4154, IEND = 0x4945_4E44

        var header: Header?
        var palette: UnsafeRawBufferPointer?
        var transparency: UnsafeRawBufferPointer?
        var imageData: [UnsafeRawBufferPointer] = []
        var i = 8
        chunks: while true {
            guard i + 8 <= n else {
                if imageData.isEmpty {
                    throw ImageError.truncated(format: "PNG", detail: "the data ends before the image data")
                }
                break
            }
            let length = be32(i), type = be32(i + 4), start = i + 8
            guard length <= Int(Int32.max) else {
                throw ImageError.corrupt(format: "PNG", detail: "chunk \(name(i + 4)) declares \(length) bytes")
            }
            if header == nil && type != IHDR {
                throw ImageError.corrupt(format: "PNG", detail: "the first chunk is \(name(i + 4)), not IHDR")
            }
            guard start + length + 4 <= n else {
                // Data cut short: decode with what there is, which fails unless the image data is complete.
                guard type == IDAT || !imageData.isEmpty else {
                    throw ImageError.truncated(format: "PNG", detail: "the data ends inside chunk \(name(i + 4))")
                }
                if type == IDAT {
                    imageData.append(UnsafeRawBufferPointer(rebasing: b[start..<min(n, start + length)]))
                }
                break
            }
            let data = UnsafeRawBufferPointer(rebasing: b[start..<start + length])
            if type == IDAT {
                imageData.append(data)
                i = start + length + 4
                continue
            }
            if !imageData.isEmpty { break }  // the image data is over; nothing after it is needed
            let crc = crc32Checksum(UnsafeRawBufferPointer(rebasing: b[i + 4..<start + length]))
            guard be32(start + length) == Int(crc) else {
                throw ImageError.corrupt(format: "PNG", detail: "chunk \(name(i + 4)) fails its CRC check")
            }
            switch type {
            case IHDR:
                guard header == nil, length == 13 else {
                    throw ImageError.corrupt(format: "PNG", detail: "the IHDR chunk is malformed")
                }
                header = try readHeader(data, limits: limits)
            case PLTE:
                palette = data
            case tRNS:
                transparency = data
            case IEND:
                break chunks
            default:
                break
            }
            i = start + length + 4
        }
        guard let header else { throw ImageError.truncated(format: "PNG", detail: "no IHDR chunk") }
        guard !imageData.isEmpty else {
            throw ImageError.corrupt(format: "PNG", detail: "the file has no image data (IDAT chunk)")
        }

        let passes = PNGPass.passes(width: header.width, height: header.height, interlaced: header.interlaced)
        var rawSize = 0
        for pass in passes where !pass.isEmpty {
            let (rows, o1) = pass.height.multipliedReportingOverflow(by: header.rowBytes(width: pass.width) + 1)
            let (sum, o2) = rawSize.addingReportingOverflow(rows)
            guard !o1, !o2 else {
                throw ImageError.tooManyPixels(width: header.width, height: header.height, limit: limits.maxPixels)
            }
            rawSize = sum
        }
        let converter = try PNGPixels(header: header, palette: palette, transparency: transparency)

        // The scanlines are inflated, unfiltered and converted a block of rows at a time (about 1 MiB), so
        // memory beyond the decoded image stays small whatever its size.
        let pixelCount = header.width * header.height
        var rgb = [UInt8](repeating: 0, count: pixelCount * 3)
        var alpha: [UInt8]? = converter.hasAlpha ? [UInt8](repeating: 255, count: pixelCount) : nil
        let inflater = try ZlibInflater()
        var cursor = (piece: 0, offset: 0)
        for pass in passes where !pass.isEmpty {
            let rowBytes = header.rowBytes(width: pass.width), stride = rowBytes + 1
            let blockRows = min(pass.height, max(1, (1 << 20) / stride))
            // Row 0 of the buffer keeps the last unfiltered row of the previous block.
            let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: (blockRows + 1) * stride)
            defer { buffer.deallocate() }
            let block = buffer + stride
            var row = 0
            while row < pass.height {
                let rows = min(blockRows, pass.height - row)
                let wanted = rows * stride
                let got = try inflater.fill(UnsafeMutableRawBufferPointer(start: block, count: wanted), from: imageData,
                                            cursor: &cursor)
                guard got == wanted else {
                    let detail = "the image data holds \(inflater.produced) of \(rawSize) bytes"
                    if inflater.finished { throw ImageError.corrupt(format: "PNG", detail: detail) }
                    throw ImageError.truncated(format: "PNG", detail: detail)
                }
                try PNGFilter.unfilter(block, rows: rows, rowBytes: rowBytes, bpp: header.filterStride,
                                       above: row == 0 ? nil : UnsafePointer(buffer + 1))
                let part = PNGPass(x0: pass.x0, y0: pass.y0 + row * pass.dy, dx: pass.dx, dy: pass.dy,
                                   width: pass.width, height: rows)
                rgb.withUnsafeMutableBufferPointer { out in
                    if alpha != nil {
                        alpha!.withUnsafeMutableBufferPointer { a in
                            converter.convert(part, rows: block, rowBytes: rowBytes, imageWidth: header.width,
                                              rgb: out.baseAddress!, alpha: a.baseAddress)
                        }
                    } else {
                        converter.convert(part, rows: block, rowBytes: rowBytes, imageWidth: header.width,
                                          rgb: out.baseAddress!, alpha: nil)
                    }
                }
                buffer.update(from: block + (rows - 1) * stride, count: stride)
                row += rows
            }
        }
        return RGBImage(unchecked: header.width, height: header.height, pixels: rgb, alpha: alpha)
    }

    /// Parses and validates IHDR, and applies the limits before anything is allocated.
    private static func readHeader(_ d: UnsafeRawBufferPointer, limits: ImageLimits) throws -> Header {
        func be32(_ i: Int) -> Int { Int(d[i]) << 24 | Int(d[i + 1]) << 16 | Int(d[i + 2]) << 8 | Int(d[i + 3]) }
        let header = Header(width: be32(0), height: be32(4), bitDepth: Int(d[8]), colorType: Int(d[9]),
                            interlaced: d[12] == 1)
        try limits.check(width: header.width, height: header.height)
        let depths: [Int: [Int]] = [0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16]]
        guard let allowed = depths[header.colorType] else {
            throw ImageError.corrupt(format: "PNG", detail: "unknown colour type \(header.colorType)")
        }
        guard allowed.contains(header.bitDepth) else {
            throw ImageError.corrupt(
                format: "PNG", detail: "bit depth \(header.bitDepth) is not valid for colour type \(header.colorType)")
        }
        guard d[10] == 0, d[11] == 0, d[12] <= 1 else {
            throw ImageError.corrupt(format: "PNG", detail: "unknown compression, filter or interlace method")
        }
        return header
    }
}
