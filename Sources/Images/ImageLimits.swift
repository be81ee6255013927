// Bounds checked from the file's header before any pixel is decoded, so that a small hostile file
// (a "decompression bomb") cannot make the decoder allocate without bound.

/// Upper bounds on what the decoder accepts.
public struct ImageLimits: Sendable, Equatable {
    /// Largest encoded input accepted, in bytes.
    public var maxBytes: Int
    /// Largest `width × height` accepted.
    public var maxPixels: Int
    /// Longest side accepted (bounds what resampling a padded square of that side costs).
    public var maxSide: Int

    /// Limits with the given bounds.
    public init(maxBytes: Int, maxPixels: Int, maxSide: Int = 65_535) {
        self.maxBytes = maxBytes
        self.maxPixels = maxPixels
        self.maxSide = maxSide
    }

    /// 32 MiB of input, 40 megapixels (a 7296 × 5472 photo is 39.9 MP) and sides up to 65,535 (JPEG's own limit).
    public static let `default` = ImageLimits(maxBytes: 32 << 20, maxPixels: 40_000_000)

    /// Throws unless a `width × height` image fits these limits.
    func check(width: Int, height: Int) throws {
        guard width > 0, height > 0 else { throw ImageError.zeroSize(width: width, height: height) }
        let (pixels, overflow) = width.multipliedReportingOverflow(by: height)
        guard !overflow, pixels <= maxPixels else {
            throw ImageError.tooManyPixels(width: width, height: height, limit: maxPixels)
        }
        guard max(width, height) <= maxSide else {
            throw ImageError.sideTooLong(width: width, height: height, limit: maxSide)
        }
    }
}
