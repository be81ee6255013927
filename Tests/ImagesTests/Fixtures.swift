import Foundation
import XCTest

@testable import Images

/// The image fixtures made by `Scripts/make_image_fixtures.py` (see Tests/Fixtures/images/README.md).
enum Fixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/images").path

    /// The bytes of fixture file `name`.
    static func bytes(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: directory + "/" + name)))
    }

    /// Every input file (images, including the unsupported ones), sorted.
    static var inputs: [String] {
        let all = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return all.filter { !$0.hasSuffix(".md") && !$0.hasSuffix(".json") && !$0.hasSuffix(".safetensors") }.sorted()
    }

    /// Decodable inputs.
    static var images: [String] { inputs.filter { !$0.hasPrefix("unsupported") } }

    static let references: ReferenceFile = {
        do {
            return try ReferenceFile(path: directory + "/references.safetensors")
        } catch {
            fatalError("cannot read the image references (run Scripts/make_image_fixtures.py): \(error)")
        }
    }()

    static func configuration(_ name: String) throws -> PreprocessorConfiguration {
        try PreprocessorConfiguration(contentsOf: directory + "/\(name).json")
    }
}

/// A safetensors file with U8, I64 and F32 tensors (the reference dtypes), read whole.
struct ReferenceFile {
    struct Entry {
        var dtype: String
        var shape: [Int]
        var range: Range<Int>
    }

    let data: [UInt8]
    let entries: [String: Entry]

    init(path: String) throws {
        data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let headerLength = data[0..<8].reversed().reduce(0) { $0 << 8 | Int($1) }
        let json = try JSONSerialization.jsonObject(with: Data(data[8..<8 + headerLength])) as! [String: Any]
        var entries: [String: Entry] = [:]
        for (name, value) in json where name != "__metadata__" {
            let info = value as! [String: Any]
            let offsets = info["data_offsets"] as! [Int]
            entries[name] = Entry(dtype: info["dtype"] as! String, shape: info["shape"] as! [Int],
                                  range: 8 + headerLength + offsets[0]..<8 + headerLength + offsets[1])
        }
        self.entries = entries
    }

    func has(_ name: String) -> Bool { entries[name] != nil }

    func shape(_ name: String) -> [Int] { entries[name]!.shape }

    func bytes(_ name: String) -> [UInt8] {
        let e = entries[name]!
        precondition(e.dtype == "U8", "\(name) is \(e.dtype)")
        return Array(data[e.range])
    }

    func floats(_ name: String) -> [Float] {
        let e = entries[name]!
        precondition(e.dtype == "F32", "\(name) is \(e.dtype)")
        return data[e.range].withUnsafeBytes { raw in
            (0..<e.range.count / 4).map { raw.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) }
        }
    }

    func integers(_ name: String) -> [Int] {
        let e = entries[name]!
        precondition(e.dtype == "I64", "\(name) is \(e.dtype)")
        return data[e.range].withUnsafeBytes { raw in
            (0..<e.range.count / 8).map { Int(raw.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self)) }
        }
    }
}

/// HWC RGB bytes as CHW (the processor references' layout).
func channelsFirst(_ image: RGBImage) -> [UInt8] {
    let plane = image.width * image.height
    var out = [UInt8](repeating: 0, count: plane * 3)
    for p in 0..<plane {
        for c in 0..<3 { out[c * plane + p] = image.pixels[3 * p + c] }
    }
    return out
}

/// Largest absolute difference and the share of equal values between two byte arrays of equal length.
func compare(_ a: [UInt8], _ b: [UInt8]) -> (maxDifference: Int, shareEqual: Double, shareWithinOne: Double) {
    precondition(a.count == b.count)
    var worst = 0, equal = 0, withinOne = 0
    for (x, y) in zip(a, b) {
        let d = abs(Int(x) - Int(y))
        worst = max(worst, d)
        if d == 0 { equal += 1 }
        if d <= 1 { withinOne += 1 }
    }
    return (worst, Double(equal) / Double(max(a.count, 1)), Double(withinOne) / Double(max(a.count, 1)))
}
