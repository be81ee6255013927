import XCTest

@testable import Images

final class ImageDecoderTests: XCTestCase {
    private let references = Fixtures.references

    /// Decodes `name` and checks the RGB bytes (and opacity) against Pillow's.
    private func assertDecodesLikePillow(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let image = try ImageDecoder.decode(try Fixtures.bytes(name))
        if references.has("rgb.\(name)") {
            let shape = references.shape("rgb.\(name)")
            XCTAssertEqual([image.height, image.width, 3], shape, "\(name): size", file: file, line: line)
            let expected = references.bytes("rgb.\(name)")
            guard image.pixels.count == expected.count else { return }
            let (worst, equal, _) = compare(image.pixels, expected)
            XCTAssertEqual(worst, 0, "\(name): max |Δ| = \(worst), \(equal * 100)% equal", file: file, line: line)
        } else {
            let crc = image.pixels.withUnsafeBytes { crc32Checksum($0) }
            XCTAssertEqual(Int(crc), references.integers("rgb_crc32.\(name)")[0], "\(name): CRC-32 of the RGB bytes",
                           file: file, line: line)
        }
        if references.has("alpha.\(name)") {
            XCTAssertEqual(image.alpha, references.bytes("alpha.\(name)"), "\(name): alpha", file: file, line: line)
        } else {
            XCTAssertNil(image.alpha, "\(name): Pillow/transformers see no transparency", file: file, line: line)
        }
    }

    func testEveryPNGDecodesToPillowsPixelsExactly() throws {
        let names = Fixtures.images.filter { $0.hasSuffix(".png") }
        XCTAssertGreaterThan(names.count, 30)
        for name in names { try assertDecodesLikePillow(name) }
    }

    func testEveryJPEGDecodesToPillowsPixelsExactly() throws {
        let names = Fixtures.images.filter { $0.hasSuffix(".jpg") }
        XCTAssertGreaterThan(names.count, 10)
        for name in names { try assertDecodesLikePillow(name) }
    }

    func testUnsupportedFormatsAreRejectedByName() throws {
        let expected = ["unsupported.gif": "GIF", "unsupported.webp": "WebP", "unsupported.bmp": "BMP",
                        "unsupported.tiff": "TIFF"]
        for (name, format) in expected {
            XCTAssertThrowsError(try ImageDecoder.decode(try Fixtures.bytes(name))) { error in
                XCTAssertEqual(error as? ImageError, .unsupportedFormat(format), name)
                XCTAssertTrue("\(error)".contains(format), "\(error)")
            }
        }
    }

    func testUnrecognisedBytesAreRejectedWithTheirLeadingBytes() {
        XCTAssertThrowsError(try ImageDecoder.decode(Array("hello, world".utf8))) { error in
            XCTAssertEqual(error as? ImageError, .unrecognizedFormat(leadingBytes: "68 65 6c 6c 6f 2c 20 77"))
        }
    }

    func testEmptyInputIsRejected() {
        XCTAssertThrowsError(try ImageDecoder.decode([])) { XCTAssertEqual($0 as? ImageError, .empty) }
    }

    func testInputOverTheByteLimitIsRejectedBeforeDecoding() throws {
        let bytes = try Fixtures.bytes("png_rgb_257x411.png")
        let limits = ImageLimits(maxBytes: 1000, maxPixels: 40_000_000)
        XCTAssertThrowsError(try ImageDecoder.decode(bytes, limits: limits)) {
            XCTAssertEqual($0 as? ImageError, .tooManyBytes(count: bytes.count, limit: 1000))
        }
    }

    func testImagesOverThePixelLimitAreRejectedFromTheHeader() throws {
        // A 100000 x 100000 PNG header with no image data at all: the limit fires before anything else.
        let bomb = PNGBytes.header(width: 100_000, height: 100_000)
        XCTAssertThrowsError(try ImageDecoder.decode(bomb)) {
            XCTAssertEqual($0 as? ImageError, .tooManyPixels(width: 100_000, height: 100_000, limit: 40_000_000))
        }
        // A small JPEG whose frame header claims 60000 x 60000.
        var jpeg = try Fixtures.bytes("jpeg_3x5.jpg")
        let sof = try XCTUnwrap(JPEGBytes.frameHeaderOffset(jpeg))
        jpeg[sof + 3...sof + 6] = [0xEA, 0x60, 0xEA, 0x60]
        XCTAssertThrowsError(try ImageDecoder.decode(jpeg)) {
            XCTAssertEqual($0 as? ImageError, .tooManyPixels(width: 60_000, height: 60_000, limit: 40_000_000))
        }
        // A fixture just over a custom limit.
        let limits = ImageLimits(maxBytes: 1 << 20, maxPixels: 899)
        XCTAssertThrowsError(try ImageDecoder.decode(try Fixtures.bytes("png_rgb_30x30.png"), limits: limits)) {
            XCTAssertEqual($0 as? ImageError, .tooManyPixels(width: 30, height: 30, limit: 899))
        }
    }

    func testZeroSizedImagesAreRejected() throws {
        XCTAssertThrowsError(try ImageDecoder.decode(PNGBytes.header(width: 0, height: 7))) {
            XCTAssertEqual($0 as? ImageError, .zeroSize(width: 0, height: 7))
        }
        var jpeg = try Fixtures.bytes("jpeg_3x5.jpg")
        let sof = try XCTUnwrap(JPEGBytes.frameHeaderOffset(jpeg))
        jpeg[sof + 3...sof + 4] = [0, 0]  // height 0 (a DNL-defined height, which libjpeg does not read)
        XCTAssertThrowsError(try ImageDecoder.decode(jpeg)) {
            XCTAssertEqual($0 as? ImageError, .zeroSize(width: 3, height: 0))
        }
    }

    func testTruncatedFilesAreReportedAsTruncated() throws {
        for name in ["png_rgb_257x411.png", "png_interlaced_rgb_93x71.png", "jpeg_444_257x411.jpg",
                     "jpeg_progressive_640x480.jpg"] {
            let bytes = try Fixtures.bytes(name)
            for cut in [20, bytes.count / 3, bytes.count / 2, bytes.count - 40] {
                XCTAssertThrowsError(try ImageDecoder.decode(Array(bytes[..<cut])), "\(name) cut at \(cut)") { error in
                    guard case .truncated = error as? ImageError else {
                        return XCTFail("\(name) cut at \(cut): \(error)")
                    }
                }
            }
        }
    }

    func testPNGWithoutIENDDecodesAsPillowDoes() throws {
        try assertDecodesLikePillow("png_no_iend_20x10.png")
    }

    func testCorruptPNGDataIsReported() throws {
        let good = try Fixtures.bytes("png_rgb_30x30.png")
        var badCRC = good
        badCRC[20] ^= 0x01  // inside IHDR's data
        XCTAssertThrowsError(try ImageDecoder.decode(badCRC)) {
            XCTAssertEqual($0 as? ImageError, .corrupt(format: "PNG", detail: "chunk IHDR fails its CRC check"))
        }
        var badData = good
        let idat = try XCTUnwrap(PNGBytes.chunkOffset(good, "IDAT"))
        for i in idat + 10..<idat + 40 { badData[i] ^= 0x5A }
        XCTAssertThrowsError(try ImageDecoder.decode(badData)) { error in
            guard case .corrupt(format: "PNG", _) = error as? ImageError else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try ImageDecoder.decode(PNGBytes.image(rows: [[7, 1, 2, 3]], width: 1))) {
            XCTAssertEqual($0 as? ImageError, .corrupt(format: "PNG", detail: "unknown row filter type 7"))
        }
        XCTAssertThrowsError(try ImageDecoder.decode(PNGBytes.header(width: 4, height: 4, bitDepth: 3))) {
            XCTAssertEqual($0 as? ImageError,
                           .corrupt(format: "PNG", detail: "bit depth 3 is not valid for colour type 2"))
        }
    }

    func testPNGWhoseImageDataEndsEarlyIsRejected() {
        // A complete zlib stream holding one row of a two-row image (Pillow would fill the rest with zeros).
        XCTAssertThrowsError(try ImageDecoder.decode(PNGBytes.image(rows: [[0, 1, 2, 3]], width: 1, height: 2))) {
            XCTAssertEqual($0 as? ImageError, .corrupt(format: "PNG", detail: "the image data holds 4 of 8 bytes"))
        }
    }

    func testLosslessAndTwelveBitJPEGsAreUnsupportedFeatures() throws {
        let good = try Fixtures.bytes("jpeg_3x5.jpg")
        let sof = try XCTUnwrap(JPEGBytes.frameHeaderOffset(good))
        var lossless = good
        lossless[sof - 1] = 0xC3
        XCTAssertThrowsError(try ImageDecoder.decode(lossless)) {
            XCTAssertEqual($0 as? ImageError, .unsupportedFeature(format: "JPEG", detail: "lossless JPEG"))
        }
        var twelveBit = good
        twelveBit[sof + 2] = 12
        XCTAssertThrowsError(try ImageDecoder.decode(twelveBit)) {
            XCTAssertEqual($0 as? ImageError, .unsupportedFeature(format: "JPEG", detail: "12-bit samples"))
        }
    }

    func testCorruptJPEGDataIsReported() throws {
        var bytes = try Fixtures.bytes("jpeg_422_199x131.jpg")
        let sof = try XCTUnwrap(JPEGBytes.frameHeaderOffset(bytes))
        bytes[sof + 9] = 0x00  // sampling factors 0 for the first component
        XCTAssertThrowsError(try ImageDecoder.decode(bytes)) { error in
            guard case .corrupt(format: "JPEG", _) = error as? ImageError else { return XCTFail("\(error)") }
        }
    }

    func testStrayBytesBetweenJPEGSegmentsAreToleratedAsPillowDoes() throws {
        // libjpeg warns ("extraneous bytes before marker") and decodes the same image; Pillow loads it.
        let bytes = try Fixtures.bytes("jpeg_3x5.jpg")
        let sof = try XCTUnwrap(JPEGBytes.frameHeaderOffset(bytes))
        let withJunk = Array(bytes[..<(sof - 2)]) + [0x00, 0x11, 0x22] + Array(bytes[(sof - 2)...])
        XCTAssertEqual(try ImageDecoder.decode(withJunk), try ImageDecoder.decode(bytes))
    }

    func testRGBImageRejectsBuffersOfTheWrongSize() {
        XCTAssertThrowsError(try RGBImage(width: 2, height: 2, pixels: [UInt8](repeating: 0, count: 11))) {
            XCTAssertEqual($0 as? ImageError, .bufferSizeMismatch(width: 2, height: 2, channels: 3, byteCount: 11))
        }
        XCTAssertThrowsError(try RGBImage(width: 0, height: 2, pixels: [])) {
            XCTAssertEqual($0 as? ImageError, .zeroSize(width: 0, height: 2))
        }
    }
}

/// Hand-made PNG byte strings for the error tests.
enum PNGBytes {
    static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let body = Array(type.utf8) + data
        let crc = body.withUnsafeBytes { crc32Checksum($0) }
        return be32(data.count) + body + be32(Int(crc))
    }

    static func be32(_ v: Int) -> [UInt8] { [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: v >> $0) } }

    /// Signature and IHDR only (RGB unless told otherwise).
    static func header(width: Int, height: Int, bitDepth: UInt8 = 8, colorType: UInt8 = 2) -> [UInt8] {
        signature + chunk("IHDR", be32(width) + be32(height) + [bitDepth, colorType, 0, 0, 0])
    }

    /// An 8-bit RGB PNG whose image data is the given (filter byte + samples) rows, stored uncompressed.
    static func image(rows: [[UInt8]], width: Int, height: Int? = nil) -> [UInt8] {
        let raw = rows.flatMap { $0 }
        // zlib stream with one stored block: header, block header, data, Adler-32.
        var a: UInt32 = 1, b: UInt32 = 0
        for byte in raw { a = (a + UInt32(byte)) % 65521; b = (b + a) % 65521 }
        let n = UInt16(raw.count)
        let stored: [UInt8] = [0x78, 0x01, 0x01, UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8(~n >> 8)]
            + raw + be32(Int(b << 16 | a))
        return header(width: width, height: height ?? rows.count) + chunk("IDAT", stored) + chunk("IEND", [])
    }

    /// Offset of the data of the first chunk of `type`.
    static func chunkOffset(_ bytes: [UInt8], _ type: String) -> Int? {
        var i = 8
        while i + 8 <= bytes.count {
            let length = bytes[i..<i + 4].reduce(0) { $0 << 8 | Int($1) }
            if Array(bytes[i + 4..<i + 8]) == Array(type.utf8) { return i + 8 }
            i += 12 + length
        }
        return nil
    }
}

enum JPEGBytes {
    /// Offset of the length field of the first frame header (SOFn) segment.
    static func frameHeaderOffset(_ bytes: [UInt8]) -> Int? {
        var i = 2
        while i + 4 <= bytes.count, bytes[i] == 0xFF {
            let marker = bytes[i + 1]
            if (0xC0...0xCF).contains(marker) && ![0xC4, 0xC8, 0xCC].contains(marker) { return i + 2 }
            i += 2 + (Int(bytes[i + 2]) << 8 | Int(bytes[i + 3]))
        }
        return nil
    }
}
