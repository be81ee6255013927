// Bytes in, RGBImage out: the format is sniffed from the signature, limits are checked against the
// header, then the pixels are decoded to exactly what Pillow's `Image.open(f).convert("RGB")` gives.

/// Decodes JPEG and PNG files to 8-bit RGB, pixel for pixel as Pillow does.
public enum ImageDecoder {
    /// Decodes an encoded image; throws `ImageError` for anything that is not a complete JPEG or PNG within `limits`.
    public static func decode(_ bytes: [UInt8], limits: ImageLimits = .default) throws -> RGBImage {
        try bytes.withUnsafeBytes { try decode($0, limits: limits) }
    }

    /// Decodes an encoded image held in memory the caller owns (it is only read during the call).
    public static func decode(_ bytes: UnsafeRawBufferPointer, limits: ImageLimits = .default) throws -> RGBImage {
        guard bytes.count > 0 else { throw ImageError.empty }
        guard bytes.count <= limits.maxBytes else {
            throw ImageError.tooManyBytes(count: bytes.count, limit: limits.maxBytes)
        }
        guard let format = ImageFormat.sniff(bytes) else {
            let hex = bytes.prefix(8).map { String($0, radix: 16).leftPadded(to: 2) }.joined(separator: " ")
            throw ImageError.unrecognizedFormat(leadingBytes: hex)
        }
        switch format {
        case .jpeg: return try JPEGDecoder.decode(bytes, limits: limits)
        case .png: return try PNGDecoder.decode(bytes, limits: limits)
        default: throw ImageError.unsupportedFormat(format.rawValue)
        }
    }
}

extension String {
    fileprivate func leftPadded(to length: Int) -> String {
        count >= length ? self : String(repeating: "0", count: length - count) + self
    }
}
