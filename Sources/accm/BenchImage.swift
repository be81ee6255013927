// `accm bench image`: decode a JPEG (or PNG) and preprocess it to CLIP ViT-L/14-336's 336x336 input on
// one thread, as Scripts/bench_image_pil.py times Pillow + transformers' CLIPImageProcessorPil on the
// same file.

import ArgumentParser
import Foundation
import Images
import Tensor

struct BenchImage: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image",
        abstract: "Time image decode + CLIP preprocessing (1024x768 JPEG to a [3, 336, 336] tensor) on one thread.",
        discussion: """
            The input defaults to the fixture Tests/Fixtures/images/bench_1024x768.jpg (made by \
            Scripts/make_image_fixtures.py); run from the repository root or pass --image. \
            Scripts/bench_image_pil.py times the reference pipeline on the same file.
            """
    )

    @Option(help: "JPEG or PNG file to decode and preprocess.")
    var image = "Tests/Fixtures/images/bench_1024x768.jpg"

    @Option(help: "preprocessor_config.json to use (default: CLIP ViT-L/14-336's: shortest edge 336, crop 336).")
    var config: String?

    @Flag(help: "Pad to a square with the mean colour first (LLaVA-1.5 image_aspect_ratio \"pad\").")
    var padToSquare = false

    @Option(help: "Timed runs (the median is reported, after two warm-up runs).")
    var `repeat` = 50

    func validate() throws {
        if `repeat` < 1 { throw ValidationError("--repeat must be at least 1") }
    }

    func run() throws {
        guard let data = FileManager.default.contents(atPath: image) else {
            throw ValidationError("cannot read \(image); run from the repository root or pass --image")
        }
        let bytes = [UInt8](data)
        let configuration = try config.map { try PreprocessorConfiguration(contentsOf: $0) }
            ?? PreprocessorConfiguration(size: .shortestEdge(336), cropHeight: 336, cropWidth: 336)
        let preprocessor = try CLIPImagePreprocessor(configuration: configuration, padToSquare: padToSquare)

        print(MachineDescription.current.lines.joined(separator: "\n"))
        print("image path: 1 thread (the calling thread; no engine or BLAS threads are used)")
        let decoded = try ImageDecoder.decode(bytes)
        let shape = try preprocessor(decoded).shape
        print("input: \(image) (\(bytes.count) bytes, \(decoded.width)x\(decoded.height)) -> \(shape)")
        print("runs: \(`repeat`) timed after 2 warm-ups, median reported\n")

        var decodeTimes: [Double] = [], preprocessTimes: [Double] = [], totalTimes: [Double] = []
        for run in -2..<`repeat` {
            let start = ContinuousClock.now
            let image = try ImageDecoder.decode(bytes)
            let mid = ContinuousClock.now
            let tensor = try preprocessor(image)
            let end = ContinuousClock.now
            precondition(tensor.shape == shape)
            if run >= 0 {
                decodeTimes.append(seconds(mid - start))
                preprocessTimes.append(seconds(end - mid))
                totalTimes.append(seconds(end - start))
            }
        }
        for (name, times) in [("decode", decodeTimes), ("preprocess", preprocessTimes),
                              ("decode + preprocess", totalTimes)] {
            let sorted = times.sorted()
            let figures = String(format: "%8.3f ms   (min %.3f, max %.3f)", sorted[sorted.count / 2] * 1000,
                                 sorted[0] * 1000, sorted[sorted.count - 1] * 1000)
            print(name.padding(toLength: 22, withPad: " ", startingAt: 0) + figures)
        }
    }

    private func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }
}
