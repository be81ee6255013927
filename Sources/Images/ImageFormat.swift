// Which format a byte string is, from its leading "magic" bytes (never from a file name).

/// An image container format recognised by its signature.
public enum ImageFormat: String, Sendable, CaseIterable {
    case jpeg = "JPEG", png = "PNG"
    case gif = "GIF", webp = "WebP", bmp = "BMP", tiff = "TIFF", avif = "AVIF", heif = "HEIF"
    case jpeg2000 = "JPEG 2000", jpegXL = "JPEG XL", ico = "ICO", psd = "PSD", qoi = "QOI"
    case pdf = "PDF", svg = "SVG"

    /// Whether `ImageDecoder` decodes this format.
    public var isDecodable: Bool { self == .jpeg || self == .png }

    /// The format whose signature starts `bytes`, or nil when none matches.
    public static func sniff(_ bytes: UnsafeRawBufferPointer) -> ImageFormat? {
        func starts(_ prefix: [UInt8], at offset: Int = 0) -> Bool {
            guard bytes.count >= offset + prefix.count else { return false }
            for (i, b) in prefix.enumerated() where bytes[offset + i] != b { return false }
            return true
        }
        func ascii(_ s: String, at offset: Int = 0) -> Bool { starts(Array(s.utf8), at: offset) }

        if starts([0xFF, 0xD8, 0xFF]) { return .jpeg }
        if starts([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .png }
        if ascii("GIF87a") || ascii("GIF89a") { return .gif }
        if ascii("RIFF") && ascii("WEBP", at: 8) { return .webp }
        if ascii("BM") && bytes.count >= 14 { return .bmp }
        if starts([0x49, 0x49, 0x2A, 0x00]) || starts([0x4D, 0x4D, 0x00, 0x2A]) { return .tiff }
        if ascii("ftyp", at: 4) {
            if ascii("avif", at: 8) || ascii("avis", at: 8) { return .avif }
            for brand in ["heic", "heix", "hevc", "hevx", "mif1", "msf1"] where ascii(brand, at: 8) { return .heif }
        }
        if starts([0x00, 0x00, 0x00, 0x0C, 0x6A, 0x50, 0x20, 0x20]) || starts([0xFF, 0x4F, 0xFF, 0x51]) {
            return .jpeg2000
        }
        if starts([0xFF, 0x0A]) || starts([0x00, 0x00, 0x00, 0x0C, 0x4A, 0x58, 0x4C, 0x20]) { return .jpegXL }
        if starts([0x00, 0x00, 0x01, 0x00]) && bytes.count >= 6 { return .ico }
        if ascii("8BPS") { return .psd }
        if ascii("qoif") { return .qoi }
        if ascii("%PDF") { return .pdf }
        if ascii("<svg") || ascii("<?xml") { return .svg }
        return nil
    }
}
