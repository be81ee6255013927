// The closed set of failures a stage, a worker or the coordinator reports: what the wire's Error message
// carries, and what every client sees as the one final answer of a request that failed.

/// Why a request (or a message) failed.
public enum StageErrorCode: String, Sendable, CaseIterable, Codable {
    /// A request field out of bounds; `StageError.field` names it.
    case invalidRequest = "invalid_request"
    /// A malformed message: frames, descriptors, sizes, an envelope that does not parse.
    case invalidMessage = "invalid_message"
    /// A schema version this peer does not read.
    case unsupportedSchema = "unsupported_schema"
    /// Work for a stage the worker does not serve.
    case wrongStage = "wrong_stage"
    /// A worker of another model than the cluster's.
    case modelMismatch = "model_mismatch"
    /// No live worker serves a stage the request needs.
    case stageUnavailable = "stage_unavailable"
    /// The bounded queue is full; retry later.
    case overloaded
    case deadlineExceeded = "deadline_exceeded"
    case cancelled
    /// A model produced NaN or infinity (corrupt weights).
    case nonFinite = "non_finite"
    /// Anything else a stage threw.
    case `internal`
    /// A message from a peer the coordinator does not know.
    case notRegistered = "not_registered"
    /// The coordinator holding the request restarted or went silent before any final answer (resubmitting
    /// is safe: nothing was answered).
    case coordinatorLost = "coordinator_lost"
    /// The CURVE handshake with the coordinator failed: a wrong coordinator key, or a key not on its allow-list.
    case unauthenticated
}

/// A failure with its code, a message that names the problem, and (for a request field) the field.
public struct StageError: Error, Equatable, Sendable, CustomStringConvertible {
    public var code: StageErrorCode
    public var message: String
    public var field: String?
    /// For `overloaded`: when to try again.
    public var retryAfterMilliseconds: Int?

    public init(_ code: StageErrorCode, _ message: String, field: String? = nil, retryAfterMilliseconds: Int? = nil) {
        self.code = code
        self.message = message
        self.field = field
        self.retryAfterMilliseconds = retryAfterMilliseconds
    }

    /// A refused request field.
    public init(_ error: RequestError) {
        self.init(.invalidRequest, error.description, field: error.field)
    }

    public var description: String { message }
}
