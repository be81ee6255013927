// Errors in OpenAI's shape (`{"error": {"message", "type", "param", "code"}}`) with the HTTP status each one
// means, and the mapping from the cluster's closed set of `StageError` codes.

import ACCMMessages
import Foundation
import HTTPTypes

/// A failed API call: its status, its OpenAI error object, and (429) when to come back.
struct APIError: Error, Sendable {
    var status: HTTPResponse.Status
    var message: String
    var type: String
    var param: String?
    var code: String?
    var retryAfterSeconds: Int?

    static func invalid(_ message: String, param: String?, code: String? = nil) -> APIError {
        APIError(status: .badRequest, message: message, type: "invalid_request_error", param: param, code: code)
    }

    /// The HTTP meaning of a request's failure in the stages.
    init(_ error: StageError) {
        message = error.message
        code = error.code.rawValue
        param = error.field.map(Self.parameter)
        switch error.code {
        case .invalidRequest:
            status = .badRequest
            type = "invalid_request_error"
        case .overloaded:
            status = .tooManyRequests
            type = "rate_limit_error"
            retryAfterSeconds = max(1, ((error.retryAfterMilliseconds ?? 1000) + 999) / 1000)
        case .stageUnavailable, .coordinatorLost:
            status = .serviceUnavailable
            type = "service_unavailable"
        case .deadlineExceeded:
            status = .gatewayTimeout
            type = "timeout"
        case .unauthenticated:
            status = .badGateway
            type = "server_error"
        case .cancelled:
            status = HTTPResponse.Status(code: 499, reasonPhrase: "Client Closed Request")
            type = "cancelled"
        case .invalidMessage, .unsupportedSchema, .wrongStage, .modelMismatch, .nonFinite, .internal, .notRegistered:
            status = .internalServerError
            type = "server_error"
        }
    }

    init(status: HTTPResponse.Status, message: String, type: String, param: String? = nil, code: String? = nil) {
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
    }

    /// The OpenAI parameter an ACCM request field comes from.
    static func parameter(_ field: String) -> String {
        switch field {
        case "question", "image", "conversation": "messages"
        case "budget": "accm.visual_tokens"
        case "max_new_tokens": "max_tokens"
        case "sampling": "temperature"
        default: field
        }
    }

    /// `{"error": {…}}`.
    var json: [UInt8] {
        struct Body: Encodable {
            struct Detail: Encodable {
                var message: String
                var type: String
                var param: String?
                var code: String?
            }
            var error: Detail
        }
        return JSON.encode(Body(error: .init(message: message, type: type, param: param, code: code)))
    }
}

/// One JSON encoder for every response.
enum JSON {
    static func encode(_ value: some Encodable) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        // Only our own response types are encoded: they cannot fail.
        return [UInt8]((try? encoder.encode(value)) ?? Data("{}".utf8))
    }
}
