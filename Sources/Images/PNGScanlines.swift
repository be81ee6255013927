// PNG scanline geometry (Adam7 passes) and the five row filters, undone in place.

/// One sub-image of a PNG: the whole image, or one of the seven Adam7 passes.
struct PNGPass {
    /// Position of the pass's first pixel and the spacing between its pixels, in image pixels.
    let x0: Int, y0: Int, dx: Int, dy: Int
    /// Size of the pass in pixels (zero when the image is too small to have pixels in it).
    let width: Int, height: Int

    /// The passes of a `width × height` image: one, or Adam7's seven.
    static func passes(width: Int, height: Int, interlaced: Bool) -> [PNGPass] {
        guard interlaced else { return [PNGPass(x0: 0, y0: 0, dx: 1, dy: 1, width: width, height: height)] }
        let adam7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
        return adam7.map { x0, y0, dx, dy in
            PNGPass(x0: x0, y0: y0, dx: dx, dy: dy,
                    width: width > x0 ? (width - x0 + dx - 1) / dx : 0,
                    height: height > y0 ? (height - y0 + dy - 1) / dy : 0)
        }
    }

    var isEmpty: Bool { width == 0 || height == 0 }
}

enum PNGFilter {
    /// Reverses the row filters of rows of one pass in place. `data` holds `rows` rows of a filter byte followed
    /// by `rowBytes` bytes; `bpp` is the filter's byte distance (bytes per complete pixel, at least 1);
    /// `above` is the unfiltered row before the first (nil for a pass's first row).
    static func unfilter(
        _ data: UnsafeMutablePointer<UInt8>, rows: Int, rowBytes: Int, bpp: Int, above: UnsafePointer<UInt8>? = nil
    ) throws {
        let stride = rowBytes + 1
        for r in 0..<rows {
            let row = data + r * stride + 1
            let prior: UnsafePointer<UInt8>? = r == 0 ? above : UnsafePointer(row - stride)
            switch data[r * stride] {
            case 0:
                break
            case 1:
                for i in bpp..<max(bpp, rowBytes) { row[i] &+= row[i - bpp] }
            case 2:
                guard let prior else { break }  // the row above the first is zero
                for i in 0..<rowBytes { row[i] &+= prior[i] }
            case 3:
                if let prior {
                    for i in 0..<min(bpp, rowBytes) { row[i] &+= prior[i] >> 1 }
                    for i in bpp..<max(bpp, rowBytes) {
                        row[i] &+= UInt8(truncatingIfNeeded: (Int(row[i - bpp]) + Int(prior[i])) >> 1)
                    }
                } else {
                    for i in bpp..<max(bpp, rowBytes) { row[i] &+= row[i - bpp] >> 1 }
                }
            case 4:
                if let prior {
                    for i in 0..<min(bpp, rowBytes) { row[i] &+= prior[i] }  // a = c = 0: Paeth picks b
                    for i in bpp..<max(bpp, rowBytes) {
                        row[i] &+= paeth(row[i - bpp], prior[i], prior[i - bpp])
                    }
                } else {
                    for i in bpp..<max(bpp, rowBytes) { row[i] &+= row[i - bpp] }  // b = c = 0: Paeth picks a
                }
            case let kind:
                throw ImageError.corrupt(format: "PNG", detail: "unknown row filter type \(kind)")
            }
        }
    }

    @inline(__always)
    private static func paeth(_ a: UInt8, _ b: UInt8, _ c: UInt8) -> UInt8 {
        let p = Int(a) + Int(b) - Int(c)
        let pa = abs(p - Int(a)), pb = abs(p - Int(b)), pc = abs(p - Int(c))
        if pa <= pb && pa <= pc { return a }
        return pb <= pc ? b : c
    }
}
