// Everything that can go wrong turning bytes into an RGBImage, each case with a message that says
// what was wrong with the input and what would be accepted.

/// Why an image could not be decoded.
public enum ImageError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The input holds no bytes.
    case empty
    /// The leading bytes match no image format (they are given in hex).
    case unrecognizedFormat(leadingBytes: String)
    /// A recognised format that this decoder does not read.
    case unsupportedFormat(String)
    /// The input is larger than `ImageLimits.maxBytes`.
    case tooManyBytes(count: Int, limit: Int)
    /// The header declares more pixels than `ImageLimits.maxPixels`.
    case tooManyPixels(width: Int, height: Int, limit: Int)
    /// The header declares a side longer than `ImageLimits.maxSide`.
    case sideTooLong(width: Int, height: Int, limit: Int)
    /// The header declares a zero width or height.
    case zeroSize(width: Int, height: Int)
    /// The data ends before the image does.
    case truncated(format: String, detail: String)
    /// The data breaks the format's rules.
    case corrupt(format: String, detail: String)
    /// A valid file using a feature this decoder does not handle (for example 12-bit JPEG).
    case unsupportedFeature(format: String, detail: String)
    /// A pixel buffer does not hold `width × height × channels` bytes.
    case bufferSizeMismatch(width: Int, height: Int, channels: Int, byteCount: Int)

    public var description: String {
        switch self {
        case .empty:
            return "the image data is empty"
        case .unrecognizedFormat(let bytes):
            return "not a recognised image format (leading bytes \(bytes)); send a JPEG or PNG file"
        case .unsupportedFormat(let format):
            return "\(format) images are not supported; convert the image to JPEG or PNG"
        case .tooManyBytes(let count, let limit):
            return "the image file is \(count) bytes, over the limit of \(limit) bytes; send a smaller file"
        case .tooManyPixels(let width, let height, let limit):
            return "the image is \(width)x\(height) pixels, over the limit of \(limit) pixels; "
                + "downscale it before sending"
        case .sideTooLong(let width, let height, let limit):
            return "the image is \(width)x\(height) pixels, a side over the limit of \(limit) pixels; "
                + "crop or downscale it before sending"
        case .zeroSize(let width, let height):
            return "the image declares a size of \(width)x\(height); both sides must be at least 1"
        case .truncated(let format, let detail):
            return "the \(format) data is truncated (\(detail)); send the complete file"
        case .corrupt(let format, let detail):
            return "the \(format) data is corrupt: \(detail)"
        case .unsupportedFeature(let format, let detail):
            return "this \(format) file uses a feature that is not supported: \(detail); re-encode it as "
                + "an 8-bit JPEG or PNG"
        case .bufferSizeMismatch(let width, let height, let channels, let byteCount):
            return "a \(width)x\(height) image with \(channels) channel(s) needs \(width * height * channels) "
                + "bytes, got \(byteCount)"
        }
    }
}
