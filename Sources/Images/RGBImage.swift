// The decoded form every image takes before preprocessing: 8-bit RGB, plus the opacity Pillow would
// report for the file (transformers composites transparent images onto white; LLaVA's loader drops it).

/// An 8-bit RGB image: rows top to bottom, pixels interleaved R, G, B.
public struct RGBImage: Sendable, Equatable {
    /// Width in pixels (at least 1).
    public let width: Int
    /// Height in pixels (at least 1).
    public let height: Int
    /// `width × height × 3` bytes, what Pillow's `Image.convert("RGB")` gives for the file.
    public internal(set) var pixels: [UInt8]
    /// `width × height` opacities when the file carries transparency (an alpha channel or a tRNS chunk),
    /// as Pillow's `Image.convert("RGBA")` gives them; nil when it carries none.
    public internal(set) var alpha: [UInt8]?

    /// An image from interleaved RGB bytes (and optional per-pixel opacity).
    public init(width: Int, height: Int, pixels: [UInt8], alpha: [UInt8]? = nil) throws {
        guard width > 0, height > 0 else { throw ImageError.zeroSize(width: width, height: height) }
        let (count, overflow) = width.multipliedReportingOverflow(by: height)
        guard !overflow, pixels.count / 3 == count, pixels.count % 3 == 0 else {
            throw ImageError.bufferSizeMismatch(width: width, height: height, channels: 3, byteCount: pixels.count)
        }
        if let alpha, alpha.count != count {
            throw ImageError.bufferSizeMismatch(width: width, height: height, channels: 1, byteCount: alpha.count)
        }
        self.init(unchecked: width, height: height, pixels: pixels, alpha: alpha)
    }

    /// An image whose buffer sizes the caller has already checked.
    init(unchecked width: Int, height: Int, pixels: [UInt8], alpha: [UInt8]?) {
        assert(pixels.count == width * height * 3 && (alpha?.count ?? width * height) == width * height)
        self.width = width
        self.height = height
        self.pixels = pixels
        self.alpha = alpha
    }

    /// The same pixels without the opacity (what Pillow's `convert("RGB")` and LLaVA's loader keep).
    public var discardingAlpha: RGBImage {
        RGBImage(unchecked: width, height: height, pixels: pixels, alpha: nil)
    }

    /// The R, G, B bytes of the pixel at column `x`, row `y`.
    public subscript(x: Int, y: Int) -> (UInt8, UInt8, UInt8) {
        precondition(x >= 0 && x < width && y >= 0 && y < height, "pixel (\(x), \(y)) outside \(width)x\(height)")
        let i = (y * width + x) * 3
        return (pixels[i], pixels[i + 1], pixels[i + 2])
    }
}
