// `accm quantize`: a copy of a model directory whose components hold their weight matrices in the formats
// chosen for them, so that loading it quantizes nothing and never holds a matrix in fp32.

import Foundation
import Models
import Tensor
import Weights

extension ModelManifest {
    /// The directory (relative to the model directory) that holds `component`.
    public func directory(of component: ModelComponent) -> String {
        switch component {
        case .vision: vision
        case .captionMapper: captionMapper
        case .captionLanguageModel: captionLanguageModel
        case .selectorTextEncoder: selectorTextEncoder
        case .selector: selector
        case .llava: llava
        }
    }
}

/// What `ModelDirectory.writeCopy` wrote for one rewritten component directory.
public struct RewrittenComponent: Sendable {
    public let directory: String
    public let components: [ModelComponent]
    public let format: WeightFormat
    /// Bytes of safetensors files before (every shard) and after (one file).
    public let bytesBefore: Int, bytesAfter: Int
}

extension ModelDirectory {
    /// Writes this model directory at `output`, which must not exist yet. Each component with a weight format
    /// (`weights`) gets its matrices written in that format: the stages are loaded as `accm serve` would load
    /// them, and the matrices they took are written back as they were made (int8/int4 in `QuantizedLayout`), so
    /// the copy loads into the same numbers without quantizing again. Every other file is copied, and the
    /// manifest loses its "weights" (each component is now stored in its format).
    public func writeCopy(to output: String) throws -> [RewrittenComponent] {
        let files = FileManager.default
        let source = URL(fileURLWithPath: path).standardizedFileURL.path
        let target = URL(fileURLWithPath: output).standardizedFileURL.path
        guard !files.fileExists(atPath: target) else {
            throw ModelError.invalidConfig("\(output) already exists; name a new directory to write the copy to")
        }
        guard target != source, !target.hasPrefix(source + "/") else {
            throw ModelError.invalidConfig("\(output) lies inside the model directory \(path)")
        }
        let rewrites = try plannedRewrites()
        guard !rewrites.isEmpty else {
            throw ModelError.invalidConfig("no component of \(path) has a weight format to write (give one with --weights)")
        }

        let recorder = MatrixRecorder()
        let stages = try WeightStore.$matrixRecorder.withValue(recorder) { try loadStages(holding: rewrites) }

        let rewritten = Set(rewrites.map { ($0.directory as NSString).standardizingPath })
        try copyTree(from: source, to: target) { relativeFile in
            let directory = ((relativeFile as NSString).deletingLastPathComponent as NSString).standardizingPath
            let name = (relativeFile as NSString).lastPathComponent
            return rewritten.contains(directory) && (name.hasSuffix(".safetensors") || name == "model.safetensors.index.json")
        }
        var written: [RewrittenComponent] = []
        for rewrite in rewrites {
            let store = try WeightStore(directory: component(rewrite.directory))
            let before = store.fileBytes
            let file = target + "/" + rewrite.directory + "/model.safetensors"
            try store.writeCopy(to: file, matrices: recorder.matrices(in: component(rewrite.directory)))
            let after = (try files.attributesOfItem(atPath: file)[.size] as? Int) ?? 0
            written.append(RewrittenComponent(directory: rewrite.directory, components: rewrite.components,
                                              format: rewrite.format, bytesBefore: before, bytesAfter: after))
        }
        withExtendedLifetime(stages) {}
        try writeManifestWithoutWeights(to: target + "/accm.json")
        return written
    }

    /// One component directory to write again, and the components (one, or several sharing it) it holds.
    private struct PlannedRewrite {
        let directory: String
        let components: [ModelComponent]
        let format: WeightFormat
    }

    /// The component directories that have a weight format; refuses components sharing a directory whose
    /// formats differ (one file cannot hold both).
    private func plannedRewrites() throws -> [PlannedRewrite] {
        let byDirectory = Dictionary(grouping: ModelComponent.allCases) { manifest.directory(of: $0) }
        var plans: [PlannedRewrite] = []
        for (directory, components) in byDirectory.sorted(by: { $0.key < $1.key }) {
            let formats = components.map { weights.format(for: $0) }
            guard let format = formats.compactMap({ $0 }).first else { continue }
            guard formats.allSatisfy({ $0 == format }) else {
                let named = zip(components, formats).map { "\($0.rawValue)=\($1?.rawValue ?? "stored")" }
                throw ModelError.invalidConfig(
                    "\(named.joined(separator: ", ")) share the directory '\(directory)' but ask for different formats")
            }
            plans.append(PlannedRewrite(directory: directory, components: components, format: format))
        }
        return plans
    }

    /// Loads the stages that read the components of `rewrites`, so that their stores hand out every matrix.
    private func loadStages(holding rewrites: [PlannedRewrite]) throws -> [Any] {
        let wanted = Set(rewrites.flatMap(\.components))
        var stages: [Any] = []
        if wanted.contains(.vision) { stages.append(try VisionStage.load(self)) }
        if !wanted.isDisjoint(with: WeightFormatChoice.components(of: .caption)) { stages.append(try CaptionStage.load(self)) }
        if !wanted.isDisjoint(with: WeightFormatChoice.components(of: .selector)) { stages.append(try SelectorStage.load(self)) }
        if wanted.contains(.llava) { stages.append(try DecoderStage.load(self)) }
        return stages
    }

    /// Copies every file and directory under `source` to `target`, except the files (paths relative to
    /// `source`) that `skip` names.
    private func copyTree(from source: String, to target: String, skip: (String) -> Bool) throws {
        let files = FileManager.default
        try files.createDirectory(atPath: target, withIntermediateDirectories: true)
        guard let walk = files.enumerator(atPath: source) else {
            throw ModelError.invalidConfig("cannot read the model directory \(source)")
        }
        while let relative = walk.nextObject() as? String {
            let from = source + "/" + relative, to = target + "/" + relative
            var isDirectory: ObjCBool = false
            _ = files.fileExists(atPath: from, isDirectory: &isDirectory)
            if isDirectory.boolValue {
                try files.createDirectory(atPath: to, withIntermediateDirectories: true)
            } else if !skip(relative) {
                try files.copyItem(atPath: from, toPath: to)
            }
        }
    }

    /// This directory's `accm.json` without its "weights" entry, at `file`.
    private func writeManifestWithoutWeights(to file: String) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: path + "/accm.json"))
        guard var manifest = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ModelError.invalidConfig("\(path)/accm.json is not a JSON object")
        }
        manifest["weights"] = nil
        let text = try JSONSerialization.data(withJSONObject: manifest, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        try (text + Data("\n".utf8)).write(to: URL(fileURLWithPath: file))
    }
}
