import XCTest

@testable import Images

/// Hostile and broken inputs: every outcome must be an `ImageError` or a well-formed image, never a crash.
final class RobustnessTests: XCTestCase {
    /// A small deterministic generator (SplitMix64), so that failures reproduce.
    struct SplitMix64: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// Decodes and checks the outcome is an error or a consistent image; returns the image when it decoded.
    @discardableResult
    private func decodeSafely(_ bytes: [UInt8], _ what: @autoclosure () -> String) -> RGBImage? {
        do {
            let image = try ImageDecoder.decode(bytes)
            XCTAssertEqual(image.pixels.count, image.width * image.height * 3, what())
            if let alpha = image.alpha { XCTAssertEqual(alpha.count, image.width * image.height, what()) }
            return image
        } catch is ImageError {
            return nil
        } catch {
            XCTFail("\(what()): unexpected error type \(error)")
            return nil
        }
    }

    func testTruncatedPrefixesOfEveryFixtureFailCleanly() throws {
        for name in Fixtures.inputs {
            let bytes = try Fixtures.bytes(name)
            let full = decodeSafely(bytes, name)
            var cuts = Set(0..<min(bytes.count, 96))
            for k in 1..<48 { cuts.insert(bytes.count * k / 48) }
            for k in 1...48 where bytes.count > k { cuts.insert(bytes.count - k) }
            for cut in cuts.sorted() {
                // A prefix may decode only when what is cut follows the image data (as with Pillow: a PNG's
                // trailing checksums and chunks); then it must give the whole image.
                if let image = decodeSafely(Array(bytes[..<cut]), "\(name) cut at \(cut)") {
                    XCTAssertEqual(image, full, "\(name) cut at \(cut) decodes to another image")
                }
            }
        }
    }

    func testRandomBytesAfterAValidSignatureFailCleanly() {
        var rng = SplitMix64(state: 1)
        let signatures: [[UInt8]] = [[0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A], [0xFF, 0xD8, 0xFF],
                                     [0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10]]
        for signature in signatures {
            for trial in 0..<400 {
                let count = Int.random(in: 0..<3000, using: &rng)
                let tail = (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
                decodeSafely(signature + tail, "signature \(signature) trial \(trial)")
            }
        }
    }

    func testPNGStructureWithRandomImageDataFailsCleanly() {
        var rng = SplitMix64(state: 2)
        for trial in 0..<300 {
            let width = Int.random(in: 1...64, using: &rng), height = Int.random(in: 1...64, using: &rng)
            let layouts: [(UInt8, UInt8)] = [(8, 2), (16, 6), (1, 0), (4, 3), (16, 0), (8, 4)]
            let (depth, type) = layouts.randomElement(using: &rng)!
            let data = (0..<Int.random(in: 0..<4000, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let zlibLike: [UInt8] = [0x78, 0x9C] + data
            let png = PNGBytes.header(width: width, height: height, bitDepth: depth, colorType: type)
                + PNGBytes.chunk("IDAT", zlibLike) + PNGBytes.chunk("IEND", [])
            decodeSafely(png, "random image data, trial \(trial)")
        }
    }

    func testFilesWithRandomlyFlippedBytesFailCleanlyOrDecode() throws {
        var rng = SplitMix64(state: 3)
        let names = ["png_rgb_3x5.png", "png_palette_trns_83x57.png", "png_interlaced_rgba_3x5.png",
                     "png_gray16_77x41.png", "jpeg_3x5.jpg", "jpeg_progressive_97x61.jpg", "jpeg_cmyk_120x90.jpg",
                     "jpeg_gray_101x67.jpg"]
        for name in names {
            let bytes = try Fixtures.bytes(name)
            for trial in 0..<150 {
                var broken = bytes
                for _ in 0..<Int.random(in: 1...8, using: &rng) {
                    broken[Int.random(in: 2..<broken.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
                decodeSafely(broken, "\(name) flipped, trial \(trial)")
            }
        }
    }
}
