// A `POST /v1/chat/completions` body read into an `ACCMRequest`: OpenAI's fields, LLaVA's conversation layout,
// ACCM's knobs (`"accm": {…}`). Every parameter is either used or refused with a 400 that names it: a server
// that ignores `n: 3` or `tools` silently gives its user answers they did not ask for.

import ACCMMessages
import Foundation

/// What a chat completion request asks for, beyond the `ACCMRequest` itself.
struct ChatRequest: Sendable {
    var request: ACCMRequest
    var model: String?
    var stream: Bool
    var includeUsage: Bool
    var returnCandidates: Bool
    var returnTimings: Bool
    /// Where the image came from, for a URL the gateway still has to fetch (allow-listed hosts only).
    var imageURL: URL?
}

/// Limits and defaults the gateway reads requests with.
public struct ChatRequestLimits: Sendable {
    /// Images one request may carry (ACCM answers about one image).
    public var maxImages: Int
    /// Largest decoded image file, in bytes.
    public var maxImageBytes: Int
    /// Hosts an `http(s)` image URL may name; empty: only data URLs.
    public var allowedImageHosts: Set<String>
    /// Visual tokens kept when a request does not say.
    public var defaultVisualTokens: Int
    /// Answer length when a request does not say.
    public var defaultMaxTokens: Int

    public init(maxImages: Int = 1, maxImageBytes: Int = 8 << 20, allowedImageHosts: Set<String> = [],
                defaultVisualTokens: Int = 16, defaultMaxTokens: Int = 128) {
        self.maxImages = maxImages
        self.maxImageBytes = maxImageBytes
        self.allowedImageHosts = allowedImageHosts
        self.defaultVisualTokens = defaultVisualTokens
        self.defaultMaxTokens = defaultMaxTokens
    }
}

extension ChatRequest {
    /// Top-level parameters read, and those OpenAI defines that this server refuses unless they hold their
    /// default (the value that changes nothing).
    private static let known: Set<String> = [
        "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "seed", "stop", "stream",
        "stream_options", "accm", "user", "n", "logprobs", "presence_penalty", "frequency_penalty",
    ]
    private static let unsupported: Set<String> = [
        "tools", "tool_choice", "functions", "function_call", "logit_bias", "top_logprobs", "response_format",
        "parallel_tool_calls", "audio", "modalities", "prediction", "reasoning_effort", "service_tier", "store",
        "metadata", "web_search_options", "top_k", "min_p", "repetition_penalty", "best_of", "echo", "suffix",
    ]

    /// Reads a request body; throws an `APIError` (400) naming the parameter that cannot be used.
    static func parse(_ body: some Collection<UInt8>, limits: ChatRequestLimits) throws(APIError) -> ChatRequest {
        let object: [String: JSONValue]
        do {
            guard case .object(let parsed) = try JSONDecoder().decode(JSONValue.self, from: Data(body)) else {
                throw APIError.invalid("the request body must be a JSON object", param: nil, code: "invalid_json")
            }
            object = parsed
        } catch let error as APIError {
            throw error
        } catch let DecodingError.dataCorrupted(context) {
            let detail = (context.underlyingError as? NSError)?.userInfo[NSDebugDescriptionErrorKey] as? String
            throw APIError.invalid("the request body is not valid JSON" + (detail.map { ": \($0)" } ?? ""), param: nil,
                                   code: "invalid_json")
        } catch {
            throw APIError.invalid("the request body is not valid JSON: \(error)", param: nil, code: "invalid_json")
        }
        let body = JSONFields(object, path: "")
        let refused = object.keys.filter { unsupported.contains($0) }.sorted()
        if !refused.isEmpty {
            throw APIError.invalid("unsupported parameter\(refused.count > 1 ? "s" : ""): \(refused.joined(separator: ", ")) "
                + "(this server answers with text only, one choice per request)", param: refused[0], code: "unsupported_parameter")
        }
        let unknown = object.keys.filter { !known.contains($0) }.sorted()
        if !unknown.isEmpty {
            throw APIError.invalid("unknown parameter\(unknown.count > 1 ? "s" : ""): \(unknown.joined(separator: ", "))",
                                   param: unknown[0], code: "unknown_parameter")
        }
        if let n = try body.int("n"), n != 1 {
            throw APIError.invalid("n = \(n) is not supported: this server returns one choice per request", param: "n",
                                   code: "unsupported_parameter")
        }
        if try body.bool("logprobs") == true {
            throw APIError.invalid("logprobs are not supported", param: "logprobs", code: "unsupported_parameter")
        }
        for penalty in ["presence_penalty", "frequency_penalty"] {
            if let value = try body.double(penalty), value != 0 {
                throw APIError.invalid("\(penalty) = \(value) is not supported (only 0)", param: penalty, code: "unsupported_parameter")
            }
        }
        _ = try body.string("user")

        let stream = try body.bool("stream") ?? false
        var includeUsage = false
        if let options = try body.object("stream_options") {
            try options.only(["include_usage", "continuous_usage_stats"])
            includeUsage = try options.bool("include_usage") ?? false
            if try options.bool("continuous_usage_stats") == true {
                throw APIError.invalid("continuous_usage_stats is not supported", param: "stream_options.continuous_usage_stats",
                                       code: "unsupported_parameter")
            }
            guard stream else {
                throw APIError.invalid("stream_options is only allowed with stream: true", param: "stream_options")
            }
        }

        // Generation.
        let completionTokens = try body.int("max_completion_tokens"), legacyMaxTokens = try body.int("max_tokens")
        let maxTokens = completionTokens ?? legacyMaxTokens ?? limits.defaultMaxTokens
        guard maxTokens >= 1 else {
            throw APIError.invalid("max_tokens must be at least 1, got \(maxTokens)", param: "max_tokens")
        }
        let temperature = try body.double("temperature") ?? 1
        guard temperature >= 0, temperature <= 2 else {
            throw APIError.invalid("temperature must be in [0, 2], got \(temperature)", param: "temperature")
        }
        let topP = try body.double("top_p") ?? 1
        guard topP > 0, topP <= 1 else { throw APIError.invalid("top_p must be in (0, 1], got \(topP)", param: "top_p") }
        let seed = try body.int("seed").map { UInt64(bitPattern: Int64($0)) } ?? 0
        var stops: [String] = []
        if let one = try? body.string("stop") {
            stops = [one]
        } else if let many = try body.strings("stop") {
            stops = many
        }
        let generation = GenerationOptions(
            maxNewTokens: maxTokens, sampling: SamplingOptions(temperature: Float(temperature), topP: Float(topP), seed: seed),
            stopStrings: stops)

        // ACCM's knobs.
        var budget = limits.defaultVisualTokens
        var pruning = PruningMethod(name: "accm")!
        var compensate = true, returnCandidates = false, returnTimings = false
        if let accm = try body.object("accm") {
            try accm.only(["visual_tokens", "pruner", "caption", "return_candidates", "return_timings"])
            budget = try accm.int("visual_tokens") ?? budget
            guard budget >= 1 else {
                throw APIError.invalid("accm.visual_tokens must be at least 1, got \(budget)", param: "accm.visual_tokens")
            }
            if let name = try accm.string("pruner") {
                guard let method = PruningMethod(name: name, seed: seed) else {
                    throw APIError.invalid("accm.pruner \"\(name)\" is not one of \(PruningMethod.names.joined(separator: ", "))",
                                           param: "accm.pruner")
                }
                pruning = method
            }
            compensate = try accm.bool("caption") ?? true
            returnCandidates = try accm.bool("return_candidates") ?? false
            returnTimings = try accm.bool("return_timings") ?? false
        }

        let (conversation, question, image) = try Self.conversation(body, limits: limits)
        var imageInput: ImageInput?
        var imageURL: URL?
        switch image {
        case .data(let bytes)?: imageInput = .encoded(bytes)
        case .remote(let url)?: imageURL = url
        case nil: break
        }
        let request = ACCMRequest(image: imageInput, question: question, budget: budget, pruning: pruning,
                                  compensate: compensate, generation: generation, conversation: conversation)
        return ChatRequest(request: request, model: try body.string("model"), stream: stream, includeUsage: includeUsage,
                           returnCandidates: returnCandidates, returnTimings: returnTimings, imageURL: imageURL)
    }

    enum Image {
        case data([UInt8])
        case remote(URL)
    }

    /// The messages in LLaVA's layout: system text, earlier (user, assistant) exchanges, the question (the last user
    /// message), and the one image with the exchange it belongs to.
    private static func conversation(_ body: JSONFields, limits: ChatRequestLimits) throws(APIError)
        -> (Conversation, String, Image?) {
        guard let messages = try body.objects("messages"), !messages.isEmpty else {
            throw APIError.invalid("messages must be a non-empty array", param: "messages")
        }
        var system: [String] = []
        var turns: [(role: String, text: String)] = []
        var images: [(turn: Int, image: Image)] = []
        for (i, message) in messages.enumerated() {
            try message.only(["role", "content", "name"])
            guard let role = try message.string("role") else {
                throw APIError.invalid("messages[\(i)] has no role", param: "messages[\(i)].role")
            }
            let (text, found) = try content(message, index: i, limits: limits)
            switch role {
            case "system", "developer":
                guard found.isEmpty else {
                    throw APIError.invalid("messages[\(i)]: a \(role) message cannot carry an image", param: "messages[\(i)].content")
                }
                system.append(text)
            case "user", "assistant":
                if role == "assistant", !found.isEmpty {
                    throw APIError.invalid("messages[\(i)]: an assistant message cannot carry an image", param: "messages[\(i)].content")
                }
                if turns.last?.role == role {
                    turns[turns.count - 1].text += "\n" + text  // consecutive messages of one role read as one
                } else {
                    turns.append((role, text))
                }
                images += found.map { (turns.count - 1, $0) }
            default:
                throw APIError.invalid("messages[\(i)].role \"\(role)\" is not supported (system, user or assistant)",
                                       param: "messages[\(i)].role")
            }
        }
        guard images.count <= limits.maxImages else {
            throw APIError.invalid("the request carries \(images.count) images; at most \(limits.maxImages) per request",
                                   param: "messages", code: "too_many_images")
        }
        guard let first = turns.first, first.role == "user" else {
            throw APIError.invalid("the conversation must start with a user message (after any system message)", param: "messages")
        }
        guard let last = turns.last, last.role == "user" else {
            throw APIError.invalid("the last message must be the user's (the question to answer)", param: "messages")
        }
        var history: [Exchange] = []
        for pair in stride(from: 0, to: turns.count - 1, by: 2) {
            history.append(Exchange(user: turns[pair].text, assistant: turns[pair + 1].text))
        }
        let imageTurn = images.first.map { $0.turn / 2 }
        let conversation = Conversation(system: system.isEmpty ? nil : system.joined(separator: "\n"), history: history,
                                        imageTurn: imageTurn == history.count ? nil : imageTurn)
        return (conversation, last.text, images.first?.image)
    }

    /// A message's text and images: `content` as a string, or as parts of type `text` and `image_url`.
    private static func content(_ message: JSONFields, index i: Int, limits: ChatRequestLimits) throws(APIError)
        -> (String, [Image]) {
        if let text = try? message.string("content") { return (text, []) }
        guard let parts = try message.objects("content") else {
            throw APIError.invalid("messages[\(i)].content must be a string or an array of parts", param: "messages[\(i)].content")
        }
        var texts: [String] = []
        var images: [Image] = []
        for (j, part) in parts.enumerated() {
            let param = "messages[\(i)].content[\(j)]"
            switch try part.string("type") {
            case "text":
                try part.only(["type", "text"])
                guard let text = try part.string("text") else { throw APIError.invalid("\(param) has no text", param: param) }
                texts.append(text)
            case "image_url":
                try part.only(["type", "image_url"])
                guard let image = try part.object("image_url"), let url = try image.string("url") else {
                    throw APIError.invalid("\(param).image_url.url is missing", param: "\(param).image_url")
                }
                try image.only(["url", "detail"])
                images.append(try Self.image(url, param: "\(param).image_url.url", limits: limits))
            case let other:
                throw APIError.invalid("\(param).type \"\(other ?? "none")\" is not supported (text or image_url)", param: param)
            }
        }
        return (texts.joined(separator: "\n"), images)
    }

    /// A data URL's bytes, or an allow-listed http(s) URL to fetch.
    private static func image(_ url: String, param: String, limits: ChatRequestLimits) throws(APIError) -> Image {
        if url.hasPrefix("data:") {
            guard let comma = url.firstIndex(of: ","), url[..<comma].hasSuffix(";base64") else {
                throw APIError.invalid("the image data URL must be data:image/png;base64,… or data:image/jpeg;base64,…",
                                       param: param, code: "invalid_image")
            }
            let type = url[url.index(url.startIndex, offsetBy: 5)..<comma].dropLast(7)
            guard ["image/png", "image/jpeg", "image/jpg"].contains(type.lowercased()) else {
                throw APIError.invalid("the image is \(type.isEmpty ? "untyped" : String(type)); PNG and JPEG are supported",
                                       param: param, code: "invalid_image")
            }
            let encoded = url[url.index(after: comma)...]
            // Base64 takes 4 characters per 3 bytes: refuse before decoding what would be too large.
            guard encoded.utf8.count / 4 * 3 <= limits.maxImageBytes + 3 else {
                throw APIError.invalid("the image is about \(encoded.utf8.count / 4 * 3) bytes, over the limit of "
                    + "\(limits.maxImageBytes) bytes", param: param, code: "image_too_large")
            }
            guard let data = Data(base64Encoded: String(encoded)) else {
                throw APIError.invalid("the image data URL is not valid base64", param: param, code: "invalid_image")
            }
            guard data.count <= limits.maxImageBytes else {
                throw APIError.invalid("the image is \(data.count) bytes, over the limit of \(limits.maxImageBytes) bytes",
                                       param: param, code: "image_too_large")
            }
            return .data([UInt8](data))
        }
        guard let parsed = URL(string: url), let scheme = parsed.scheme?.lowercased(), scheme == "http" || scheme == "https",
              let host = parsed.host?.lowercased() else {
            throw APIError.invalid("the image URL must be a data URL (data:image/png;base64,…) or an http(s) URL", param: param,
                                   code: "invalid_image")
        }
        guard limits.allowedImageHosts.contains(host) else {
            throw APIError.invalid(limits.allowedImageHosts.isEmpty
                ? "image URLs are not fetched by this server: send the image as a data URL (data:image/png;base64,…)"
                : "image URLs are fetched only from \(limits.allowedImageHosts.sorted().joined(separator: ", ")); \(host) is not one",
                param: param, code: "image_url_not_allowed")
        }
        return .remote(parsed)
    }
}

/// A JSON value, decoded without losing the difference between `true`, `1` and `"1"`.
enum JSONValue: Decodable {
    case null, bool(Bool), number(Double), string(String), array([JSONValue]), object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else if let d = try? c.decode(Double.self) {
            self = .number(d)
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else if let a = try? c.decode([JSONValue].self) {
            self = .array(a)
        } else {
            self = .object(try c.decode([String: JSONValue].self))
        }
    }
}

/// Typed reads of a JSON object's fields; a field of the wrong type is a 400 naming it.
struct JSONFields {
    let object: [String: JSONValue]
    let path: String

    init(_ object: [String: JSONValue], path: String) {
        self.object = object
        self.path = path
    }

    private func name(_ key: String) -> String { path.isEmpty ? key : path + "." + key }

    private func wrongType(_ key: String, _ expected: String) -> APIError {
        APIError.invalid("\(name(key)) must be \(expected)", param: name(key))
    }

    /// Refuses keys outside `keys`.
    func only(_ keys: Set<String>) throws(APIError) {
        if let extra = object.keys.filter({ !keys.contains($0) }).sorted().first {
            throw APIError.invalid("unknown parameter \(name(extra))", param: name(extra), code: "unknown_parameter")
        }
    }

    private func present(_ key: String) -> JSONValue? {
        guard let value = object[key] else { return nil }
        if case .null = value { return nil }
        return value
    }

    func string(_ key: String) throws(APIError) -> String? {
        guard let value = present(key) else { return nil }
        guard case .string(let string) = value else { throw wrongType(key, "a string") }
        return string
    }

    func strings(_ key: String) throws(APIError) -> [String]? {
        guard let value = present(key) else { return nil }
        guard case .array(let array) = value else { throw wrongType(key, "a string or an array of strings") }
        return try array.map { (element: JSONValue) throws(APIError) -> String in
            guard case .string(let string) = element else { throw wrongType(key, "a string or an array of strings") }
            return string
        }
    }

    func bool(_ key: String) throws(APIError) -> Bool? {
        guard let value = present(key) else { return nil }
        guard case .bool(let bool) = value else { throw wrongType(key, "true or false") }
        return bool
    }

    func double(_ key: String) throws(APIError) -> Double? {
        guard let value = present(key) else { return nil }
        guard case .number(let number) = value, number.isFinite else { throw wrongType(key, "a number") }
        return number
    }

    func int(_ key: String) throws(APIError) -> Int? {
        guard let value = try double(key) else { return nil }
        guard value.rounded() == value, abs(value) < 9.0e15 else { throw wrongType(key, "an integer") }
        return Int(value)
    }

    func object(_ key: String) throws(APIError) -> JSONFields? {
        guard let value = present(key) else { return nil }
        guard case .object(let object) = value else { throw wrongType(key, "an object") }
        return JSONFields(object, path: name(key))
    }

    func objects(_ key: String) throws(APIError) -> [JSONFields]? {
        guard let value = present(key) else { return nil }
        guard case .array(let array) = value else { throw wrongType(key, "an array") }
        return try array.enumerated().map { (i: Int, element: JSONValue) throws(APIError) -> JSONFields in
            guard case .object(let object) = element else { throw wrongType("\(key)[\(i)]", "an object") }
            return JSONFields(object, path: "\(name(key))[\(i)]")
        }
    }
}
