// JPEG through TurboJPEG (libjpeg-turbo), which is what Pillow's wheels decode with too: same
// accurate integer IDCT and "fancy" chroma upsampling, so the pixels are identical (measured on the
// fixtures: libjpeg-turbo 2.1.5 here against the 3.2.0 in Pillow 13's wheel).
//
// TurboJPEG does its longjmp-based error handling inside its own C frames and reports through return
// codes, so no error ever unwinds through Swift. Our own walk over the marker segments first checks
// that the header is complete and reads the frame size, so limits apply before TurboJPEG allocates.

import CTurboJPEG

enum JPEGDecoder {
    /// The frame header (SOF) fields the decoder needs.
    struct Frame {
        var width: Int
        var height: Int
        var components: Int
    }

    static func decode(_ bytes: UnsafeRawBufferPointer, limits: ImageLimits) throws -> RGBImage {
        let frame = try readFrame(bytes)
        try limits.check(width: frame.width, height: frame.height)

        guard let handle = tjInitDecompress() else {
            throw ImageError.corrupt(format: "JPEG", detail: "TurboJPEG could not start (out of memory?)")
        }
        defer { tjDestroy(handle) }

        // Pillow reads every 4-component JPEG as Adobe-inverted CMYK ("CMYK;I") and converts that to RGB
        // itself; TurboJPEG can only hand over the stored CMYK values, so the conversion happens below.
        let cmyk = frame.components == 4
        let channels = cmyk ? 4 : 3
        let pixelFormat = cmyk ? Int32(TJPF_CMYK.rawValue) : Int32(TJPF_RGB.rawValue)
        // Accurate integer DCT (Pillow's default) and at most 500 progressive scans (a scan bomb guard;
        // real encoders write about ten).
        let flags = Int32(TJFLAG_ACCURATEDCT | TJFLAG_LIMITSCANS)
        var decoded = [UInt8](repeating: 0, count: frame.width * frame.height * channels)
        let status = decoded.withUnsafeMutableBufferPointer { out in
            tjDecompress2(
                handle, bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt(bytes.count),
                out.baseAddress!, Int32(frame.width), 0, Int32(frame.height), pixelFormat, flags)
        }
        if status != 0 {
            // TurboJPEG keeps the text of the first warning, or of the error that stopped it.
            let message = String(cString: tjGetErrorStr2(handle))
            if message.hasPrefix("Premature end of JPEG file") {
                throw ImageError.truncated(format: "JPEG", detail: "the compressed data ends early")
            }
            if !isBenignWarning(message) { throw ImageError.corrupt(format: "JPEG", detail: message) }
        }
        let rgb = cmyk ? invertedCMYKToRGB(decoded) : decoded
        return RGBImage(unchecked: frame.width, height: frame.height, pixels: rgb, alpha: nil)
    }

    /// libjpeg warnings after which the image is complete and Pillow loads it without complaint
    /// (stray bytes between segments, an unknown Adobe transform, an odd JFIF version...).
    private static func isBenignWarning(_ message: String) -> Bool {
        ["Corrupt JPEG data:", "Warning:", "Unknown Adobe color transform", "Inconsistent progression sequence",
         "Invalid SOS parameters for sequential JPEG"].contains { message.hasPrefix($0) }
    }

    /// Pillow's `cmyk2rgb` applied to Adobe-inverted CMYK (the stored bytes are 255 − ink):
    /// `nk = 255 − K; channel = clip(nk − nk·C/255)` with Pillow's rounded division by 255.
    static func invertedCMYKToRGB(_ stored: [UInt8]) -> [UInt8] {
        let count = stored.count / 4
        return [UInt8](unsafeUninitializedCapacity: count * 3) { out, initialized in
            stored.withUnsafeBufferPointer { inp in
                for p in 0..<count {
                    let nk = Int(inp[4 * p + 3])  // 255 − K, K = 255 − stored
                    for c in 0..<3 {
                        let ink = 255 - Int(inp[4 * p + c])
                        let t = ink * nk + 128
                        let v = nk - (((t >> 8) + t) >> 8)
                        out[3 * p + c] = UInt8(clamping: v)
                    }
                }
            }
            initialized = count * 3
        }
    }

    /// Walks the marker segments from SOI to the first SOS, checking that each one is complete, and
    /// returns the frame header. Throws `truncated` when the data ends first.
    static func readFrame(_ b: UnsafeRawBufferPointer) throws -> Frame {
        let n = b.count
        func be16(_ i: Int) -> Int { Int(b[i]) << 8 | Int(b[i + 1]) }
        var frame: Frame?
        var i = 2  // after SOI
        while true {
            // Pillow and libjpeg skip junk between segments; so do we.
            while i < n && b[i] != 0xFF { i += 1 }
            while i < n && b[i] == 0xFF { i += 1 }
            guard i < n else {
                throw ImageError.truncated(format: "JPEG", detail: "the data ends before the image data starts")
            }
            let marker = b[i]
            i += 1
            switch marker {
            case 0x00, 0x01, 0xD0...0xD8:
                continue  // stuffed zero, TEM, RSTn, SOI: no length field
            case 0xD9:
                throw ImageError.corrupt(format: "JPEG", detail: "the end-of-image marker comes before any image data")
            default:
                break
            }
            guard i + 2 <= n else {
                throw ImageError.truncated(format: "JPEG", detail: "the data ends inside a marker segment")
            }
            let length = be16(i)
            guard length >= 2 else {
                throw ImageError.corrupt(format: "JPEG", detail: "a marker segment declares length \(length)")
            }
            guard i + length <= n else {
                throw ImageError.truncated(format: "JPEG", detail: "the data ends inside a marker segment")
            }
            let isFrame = (0xC0...0xCF).contains(marker) && marker != 0xC4 && marker != 0xC8 && marker != 0xCC
            if isFrame {
                guard length >= 8 else {
                    throw ImageError.corrupt(format: "JPEG", detail: "the frame header is \(length) bytes long")
                }
                if [0xC3, 0xC7, 0xCB, 0xCF].contains(marker) {
                    throw ImageError.unsupportedFeature(format: "JPEG", detail: "lossless JPEG")
                }
                let precision = Int(b[i + 2])
                guard precision == 8 else {
                    throw ImageError.unsupportedFeature(format: "JPEG", detail: "\(precision)-bit samples")
                }
                let components = Int(b[i + 7])
                guard [1, 3, 4].contains(components) else {
                    throw ImageError.unsupportedFeature(format: "JPEG", detail: "\(components) colour components")
                }
                frame = Frame(width: be16(i + 5), height: be16(i + 3), components: components)
            }
            if marker == 0xDA {
                guard let frame else {
                    throw ImageError.corrupt(format: "JPEG", detail: "image data starts before the frame header")
                }
                if frame.width == 0 || frame.height == 0 {
                    throw ImageError.zeroSize(width: frame.width, height: frame.height)
                }
                return frame
            }
            i += length
        }
    }
}
