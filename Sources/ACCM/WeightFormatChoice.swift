// Which weight format each component of a model directory keeps its matrices in: from the manifest's
// "weights" entry, overridden by the command line's --weights.

import Tensor
import Models
import Weights

/// The components of an ACCM model directory, named as the manifest names them.
public enum ModelComponent: String, CaseIterable, Sendable, Codable {
    case vision, llava, selector
    case captionMapper = "caption_mapper", captionLanguageModel = "caption_language_model"
    case selectorTextEncoder = "selector_text_encoder"
}

/// A weight format per component; a component without one keeps its checkpoint's stored type.
///
/// Written as one format for every component (`"int8"`) or per component (`{"llava": "int4", "vision": "f32"}`
/// in the manifest, `llava=int4` on the command line); `"stored"` keeps the stored type.
public struct WeightFormatChoice: Sendable, Equatable {
    public private(set) var formats: [ModelComponent: WeightFormat] = [:]

    public init(_ formats: [ModelComponent: WeightFormat] = [:]) { self.formats = formats }

    /// The format `component`'s matrices are kept in (nil: as stored).
    public func format(for component: ModelComponent) -> WeightFormat? { formats[component] }

    /// The values a format may be written as.
    public static let allowedValues = ["stored"] + WeightFormat.allCases.map(\.rawValue)

    /// Parses `value` ("int8", "stored"); nil when it is none of `allowedValues`.
    static func parseFormat(_ value: String) -> WeightFormat?? {
        value == "stored" ? .some(nil) : WeightFormat(rawValue: value).map { .some($0) }
    }

    /// Sets `format` for `component` (nil: as stored).
    public mutating func set(_ format: WeightFormat?, for component: ModelComponent) { formats[component] = format }

    /// Applies command-line settings in order: "FORMAT" for every component, "COMPONENT=FORMAT" for one.
    /// Throws a message naming the bad setting and what is allowed.
    public mutating func apply(settings: [String]) throws {
        for setting in settings {
            let parts = setting.split(separator: "=", maxSplits: 1).map(String.init)
            let components: [ModelComponent]
            if parts.count == 2 {
                guard let component = ModelComponent(rawValue: parts[0]) else {
                    throw ModelError.invalidConfig(
                        "--weights \(setting): unknown component '\(parts[0])' (components: \(ModelComponent.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                components = [component]
            } else {
                components = ModelComponent.allCases
            }
            guard let format = Self.parseFormat(parts.last ?? "") else {
                throw ModelError.invalidConfig(
                    "--weights \(setting): '\(parts.last ?? "")' is not a weight format (allowed: \(Self.allowedValues.joined(separator: ", ")))")
            }
            for c in components { set(format, for: c) }
        }
    }
}

extension WeightFormatChoice: Decodable {
    /// The manifest's "weights": one format for all, or an object of component → format.
    public init(from decoder: Decoder) throws {
        struct Key: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }
        func format(_ value: String, _ describe: () -> DecodingError) throws -> WeightFormat? {
            guard let format = Self.parseFormat(value) else { throw describe() }
            return format
        }
        let allowed = Self.allowedValues.map { "'\($0)'" }.joined(separator: ", ")
        if let single = try? decoder.singleValueContainer().decode(String.self) {
            let value = try format(single) {
                .dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "'\(single)' is not one of \(allowed)"))
            }
            self.init(Dictionary(uniqueKeysWithValues: ModelComponent.allCases.compactMap { c in value.map { (c, $0) } }))
            return
        }
        let c = try decoder.container(keyedBy: Key.self)
        var formats: [ModelComponent: WeightFormat] = [:]
        for key in c.allKeys {
            guard let component = ModelComponent(rawValue: key.stringValue) else {
                throw DecodingError.dataCorruptedError(
                    forKey: key, in: c,
                    debugDescription: "unknown component (components: \(ModelComponent.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            let value = try c.decode(String.self, forKey: key)
            formats[component] = try format(value) {
                DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "'\(value)' is not one of \(allowed)")
            }
        }
        self.init(formats)
    }
}

extension WeightFormatChoice {
    /// The components a stage loads.
    public static func components(of stage: Stage) -> [ModelComponent] {
        switch stage {
        case .vision: [.vision]
        case .caption: [.captionMapper, .captionLanguageModel]
        case .selector: [.selector, .selectorTextEncoder]
        case .decoder: [.llava]
        }
    }

    /// What `stage` computes with, as `key=value` pairs: its components' weight formats ("llava=int4"; "stored"
    /// for a stored type) and, where the stage runs a language model (caption, decoder), the KV cache format
    /// ("llava=int4,kv_cache=f16"). The replicas of one stage must agree on it, or a request taken over by
    /// another replica could change answer.
    public func description(of stage: Stage, kvCache: KVCacheFormat) -> String {
        var pairs = Self.components(of: stage).map { "\($0.rawValue)=\(format(for: $0)?.rawValue ?? "stored")" }
        if stage == .caption || stage == .decoder { pairs.append("kv_cache=\(kvCache.rawValue)") }
        return pairs.joined(separator: ",")
    }
}
