// Unfiltered PNG samples to RGB (+ opacity), reproducing Pillow 13 exactly: the mode its PNG plugin
// opens each colour type / bit depth as, its unpacker for that mode, then `convert("RGB")` and
// `convert("RGBA")`. Pillow's quirks, kept on purpose (each is checked by a fixture):
//
// - 16-bit grey opens as mode "I;16"; `convert("RGB")` clips: values above 255 become 255, values up
//   to 255 stay as they are (the low byte), so most 16-bit grey images come out nearly white.
// - 16-bit RGB, RGBA and grey+alpha keep the high byte of each sample (grey+alpha 16 opens as RGBA).
// - 1-bit grey is mode "1" (0 or 255); 2- and 4-bit grey are scaled (×85, ×17) to mode "L".
// - Palette indices beyond the PLTE entries are black; tRNS alphas apply to the first entries in
//   order, even beyond the palette's length; indices without one are opaque.
// - A grey or RGB tRNS colour makes pixels transparent where the *converted* 8-bit value equals the
//   tRNS value's low byte: a 2- or 4-bit tRNS value is compared unscaled with scaled pixels, a 16-bit
//   one by its low byte with the clipped (grey) or high-byte (RGB) pixel.
//
// Opacity is reported whenever transformers' `convert_to_rgb` would see some ("A" in the bands, or
// a tRNS chunk in a grey, RGB or palette image), even when every pixel is opaque.

struct PNGPixels {
    let header: PNGDecoder.Header
    /// 256 RGB entries; those past the PLTE chunk are black.
    private var palette = [UInt8](repeating: 0, count: 256 * 3)
    /// 256 alphas from tRNS (palette images only).
    private var paletteAlpha: [UInt8]?
    /// The converted grey value that is transparent (grey images with tRNS).
    private var greyKey: Int?
    /// The converted RGB value that is transparent (RGB images with tRNS).
    private var rgbKey: (Int, Int, Int)?

    /// Whether the decoded image carries opacity.
    var hasAlpha: Bool {
        header.colorType == 4 || header.colorType == 6 || paletteAlpha != nil || greyKey != nil || rgbKey != nil
    }

    init(
        header: PNGDecoder.Header, palette plte: UnsafeRawBufferPointer?, transparency: UnsafeRawBufferPointer?
    ) throws {
        self.header = header
        if let plte {
            for i in 0..<min(plte.count / 3 * 3, 256 * 3) { palette[i] = plte[i] }
        }
        guard let t = transparency else { return }
        func be16(_ i: Int) -> Int { Int(t[i]) << 8 | Int(t[i + 1]) }
        switch header.colorType {
        case 0:
            guard t.count >= 2 else { throw ImageError.corrupt(format: "PNG", detail: "the tRNS chunk is truncated") }
            greyKey = header.bitDepth == 1 ? (be16(0) != 0 ? 255 : 0) : be16(0) & 0xFF
        case 2:
            guard t.count >= 6 else { throw ImageError.corrupt(format: "PNG", detail: "the tRNS chunk is truncated") }
            rgbKey = (be16(0) & 0xFF, be16(2) & 0xFF, be16(4) & 0xFF)
        case 3:
            var alphas = [UInt8](repeating: 255, count: 256)
            for i in 0..<min(t.count, 256) { alphas[i] = t[i] }
            paletteAlpha = alphas
        default:
            break  // Pillow ignores tRNS when there is an alpha channel
        }
    }

    /// Writes the pixels of one unfiltered pass into the image's RGB (and alpha) buffers.
    func convert(
        _ pass: PNGPass, rows: UnsafePointer<UInt8>, rowBytes: Int, imageWidth: Int,
        rgb: UnsafeMutablePointer<UInt8>, alpha: UnsafeMutablePointer<UInt8>?
    ) {
        let depth = header.bitDepth
        /// Calls `body(row, column, destination pixel index)` for every pixel of the pass.
        @inline(__always)
        func forEachPixel(_ body: (UnsafePointer<UInt8>, Int, Int) -> Void) {
            for r in 0..<pass.height {
                let row = rows + r * (rowBytes + 1) + 1
                let base = (pass.y0 + r * pass.dy) * imageWidth + pass.x0
                for c in 0..<pass.width { body(row, c, base + c * pass.dx) }
            }
        }
        @inline(__always)
        func put(_ o: Int, _ r: UInt8, _ g: UInt8, _ b: UInt8) {
            rgb[3 * o] = r
            rgb[3 * o + 1] = g
            rgb[3 * o + 2] = b
        }

        switch header.colorType {
        case 0:
            forEachPixel { row, c, o in
                let v: Int
                switch depth {
                case 16: v = row[2 * c] == 0 ? Int(row[2 * c + 1]) : 255
                case 8: v = Int(row[c])
                default:
                    let s = Self.packedSample(row, c, depth)
                    v = depth == 1 ? (s != 0 ? 255 : 0) : s * (depth == 2 ? 85 : 17)
                }
                put(o, UInt8(v), UInt8(v), UInt8(v))
                if let greyKey, v == greyKey { alpha?[o] = 0 }
            }
        case 2:
            let step = depth / 8
            forEachPixel { row, c, o in
                let p = row + 3 * step * c
                let r = p[0], g = p[step], b = p[2 * step]
                put(o, r, g, b)
                if let rgbKey, Int(r) == rgbKey.0, Int(g) == rgbKey.1, Int(b) == rgbKey.2 { alpha?[o] = 0 }
            }
        case 3:
            forEachPixel { row, c, o in
                let index = depth == 8 ? Int(row[c]) : Self.packedSample(row, c, depth)
                put(o, palette[3 * index], palette[3 * index + 1], palette[3 * index + 2])
                if let paletteAlpha { alpha?[o] = paletteAlpha[index] }
            }
        case 4:
            let step = depth / 8
            forEachPixel { row, c, o in
                let p = row + 2 * step * c
                put(o, p[0], p[0], p[0])
                alpha?[o] = p[step]
            }
        default:  // 6
            let step = depth / 8
            forEachPixel { row, c, o in
                let p = row + 4 * step * c
                put(o, p[0], p[step], p[2 * step])
                alpha?[o] = p[3 * step]
            }
        }
    }

    /// Sample `index` of a row packed at 1, 2 or 4 bits, most significant bits first.
    @inline(__always)
    private static func packedSample(_ row: UnsafePointer<UInt8>, _ index: Int, _ depth: Int) -> Int {
        let bit = index * depth
        return Int(row[bit >> 3] >> UInt8(8 - depth - (bit & 7))) & ((1 << depth) - 1)
    }
}
