// What a front door (the HTTP gateway, a test) needs from whatever answers requests: the cluster through its
// coordinator, or anything else that holds the stages. One protocol, so the gateway does not know which.

/// Answers requests and says whether it can.
public protocol ACCMService: Sendable {
    /// The model's name, as clients address it.
    var modelName: String { get }
    /// Answers `request` within `timeout`, handing its text to `onText` as it is made. Throws the request's
    /// `StageError`; cancelling the calling task cancels the request in every stage (`cancelled`).
    func answer(_ request: ACCMRequest, timeout: Duration, onText: @escaping @Sendable (String) -> Void) async throws(StageError)
        -> ACCMAnswer
    /// Live replicas and queues of each stage, as last seen.
    func health() async -> ServiceHealth
}

/// What each stage has now.
public struct ServiceHealth: Sendable, Equatable {
    public struct StageState: Sendable, Equatable {
        /// Live replicas serving the stage.
        public var replicas: Int
        /// Requests waiting for the stage.
        public var queued: Int

        public init(replicas: Int, queued: Int = 0) {
            self.replicas = replicas
            self.queued = queued
        }
    }

    public var stages: [Stage: StageState]
    /// Worker restarts the supervisor reported, summed over the live workers.
    public var workerRestarts: Int
    /// Why the service could not be asked (the coordinator does not answer); nil when it answered.
    public var unreachable: String?

    public init(stages: [Stage: StageState], workerRestarts: Int = 0, unreachable: String? = nil) {
        self.stages = stages
        self.workerRestarts = workerRestarts
        self.unreachable = unreachable
    }

    /// Whether every stage has a live replica.
    public var isReady: Bool { unreachable == nil && Stage.allCases.allSatisfy { (stages[$0]?.replicas ?? 0) > 0 } }
}
