import XCTest

@testable import Images

/// LLaVA's pad-to-square is resampled without building the square: the bytes are those of padding first,
/// and an image of extreme aspect ratio costs memory for its own pixels only.
final class PaddingWithoutACanvasTests: XCTestCase {
    private struct SplitMix64: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    private func randomImage(width: Int, height: Int, seed: UInt64) throws -> RGBImage {
        var rng = SplitMix64(state: seed)
        return try RGBImage(width: width, height: height,
                            pixels: (0..<width * height * 3).map { _ in UInt8.random(in: 0...255, using: &rng) })
    }

    func testPaddingLazilyGivesTheBytesOfPaddingFirst() throws {
        let sizes = [(1, 1), (3, 40), (40, 3), (57, 31), (31, 57), (64, 64), (200, 7), (7, 200), (333, 334), (1, 500)]
        var compared = 0
        for name in ["clip336", "small30", "oddcrop"] {
            let padded = try CLIPImagePreprocessor(configuration: Fixtures.configuration(name), padToSquare: true)
            let plain = try CLIPImagePreprocessor(configuration: Fixtures.configuration(name), padToSquare: false)
            for (i, (width, height)) in sizes.enumerated() {
                let image = try randomImage(width: width, height: height, seed: UInt64(i))
                let square = image.paddedToSquare(fill: RGBImage.squarePaddingFill(mean: padded.configuration.imageMean))
                XCTAssertEqual(try padded.resizedAndCropped(image), try plain.resizedAndCropped(square),
                               "\(name) \(width)x\(height)")
                compared += 1
            }
        }
        XCTAssertEqual(compared, 30)
    }

    func testAVeryWideImageIsPreprocessedFromItsOwnPixels() throws {
        // 60000 × 300: padded eagerly this would be a 60000² square (10.8 GB); here it is read row by row.
        let width = 60_000, height = 300
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for i in stride(from: 0, to: pixels.count, by: 7) { pixels[i] = UInt8(truncatingIfNeeded: i >> 5) }
        let image = try RGBImage(width: width, height: height, pixels: pixels)
        let p = try CLIPImagePreprocessor(configuration: Fixtures.configuration("small30"), padToSquare: true)
        let before = Self.residentBytes()
        let out = try p(image)
        XCTAssertEqual(out.shape, [3, 30, 30])
        // Most of the square is the fill colour: the top row of the output is pure fill.
        let fill = RGBImage.squarePaddingFill(mean: p.configuration.imageMean)
        let top = try p.resizedAndCropped(image)
        XCTAssertEqual([top.pixels[0], top.pixels[1], top.pixels[2]], [fill.0, fill.1, fill.2])
        if let before, let after = Self.residentBytes() {
            XCTAssertLessThan(after - before, 200 << 20, "resident memory grew by \(after - before) bytes")
        }
    }

    func testASideOverTheLimitIsRefusedFromTheHeader() throws {
        // 200000 × 200 is within 40 megapixels, but its padded square is not worth resampling.
        let png = PNGBytes.header(width: 200_000, height: 200) + PNGBytes.chunk("IEND", [])
        XCTAssertThrowsError(try ImageDecoder.decode(png)) { error in
            XCTAssertEqual(error as? ImageError, .sideTooLong(width: 200_000, height: 200, limit: 65_535))
            XCTAssertTrue("\(error)".contains("200000x200"), "\(error)")
        }
        let tall = PNGBytes.header(width: 1, height: 40_000_000) + PNGBytes.chunk("IEND", [])
        XCTAssertThrowsError(try ImageDecoder.decode(tall)) { error in
            XCTAssertEqual(error as? ImageError, .sideTooLong(width: 1, height: 40_000_000, limit: 65_535))
        }
    }

    /// Resident set size of this process (Linux), nil elsewhere.
    static func residentBytes() -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
        let fields = status.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
        return pages * 4096
    }
}
