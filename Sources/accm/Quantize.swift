// `accm quantize`: writes a copy of a model directory with its weight matrices already in int8/int4 (or
// bf16/f16), so that loading it needs no quantization pass and no fp32 copy of any matrix.

import ACCM
import ArgumentParser
import Foundation

struct Quantize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a copy of a model directory whose components hold their weight matrices in the formats --weights gives (pre-quantized safetensors files).",
        discussion: """
            Each component with a format (from --weights, or the manifest's "weights") is loaded as `accm serve` \
            loads it and its matrices are written back as they were made; the copy's manifest has no "weights", and \
            loads into the same numbers without quantizing. Example: accm quantize --weights llava=int4 --output Models/accm-world-int4
            """)

    @OptionGroup var engine: EngineOptions
    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "The directory to write the copy to (must not exist).")
    var output: String

    func validate() throws {
        if modelOptions.directory.hasPrefix("bench:") {
            throw ValidationError("a bench model has no files to copy; give a model directory with --model")
        }
    }

    func run() throws {
        engine.apply()
        let start = ContinuousClock.now
        let written = try modelOptions.modelDirectory().writeCopy(to: output)
        for part in written {
            let names = part.components.map(\.rawValue).joined(separator: ", ")
            print("\(part.directory) (\(names)): \(part.format.rawValue), \(megabytes(part.bytesBefore)) → \(megabytes(part.bytesAfter))")
        }
        print("wrote \(output) in \(String(format: "%.1f", (ContinuousClock.now - start).seconds)) s")
    }

    private func megabytes(_ bytes: Int) -> String { String(format: "%.1f MB", Double(bytes) / 1e6) }
}
