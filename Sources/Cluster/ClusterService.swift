// The cluster as an `ACCMService`: requests go through a `ClusterClient`, health is the coordinator's status,
// asked at most once per `healthInterval` (a gateway's probes and metric scrapes share one answer).

import ACCMMessages
import Dispatch
import Synchronization
import Wire

/// Answers through a coordinator.
public final class ClusterService: ACCMService {
    public let client: ClusterClient
    public let modelName: String
    private let healthInterval: Duration
    private let lastHealth = Mutex<(at: ContinuousClock.Instant, health: ServiceHealth)?>(nil)
    private let statusQueue = DispatchQueue(label: "accm.cluster-service.status")

    public init(client: ClusterClient, modelName: String, healthInterval: Duration = .milliseconds(500)) {
        self.client = client
        self.modelName = modelName
        self.healthInterval = healthInterval
    }

    public func answer(_ request: ACCMRequest, timeout: Duration, onText: @escaping @Sendable (String) -> Void)
        async throws(StageError) -> ACCMAnswer {
        let handle = Mutex<SubmittedRequest?>(nil)
        let result: Result<ACCMAnswer, StageError> = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let submitted = client.submit(request, timeout: timeout, onText: onText) { continuation.resume(returning: $0) }
                handle.withLock { $0 = submitted }
                if Task.isCancelled { submitted.cancel() }
            }
        } onCancel: {
            handle.withLock { $0 }?.cancel()
        }
        return try result.get()
    }

    public func health() async -> ServiceHealth {
        if let last = lastHealth.withLock({ $0 }), ContinuousClock.now - last.at < healthInterval { return last.health }
        let client = self.client
        // `status` blocks its thread until the coordinator answers (at most 2 s): not a Swift task's thread.
        let health: ServiceHealth = await withCheckedContinuation { continuation in
            statusQueue.async {
                continuation.resume(returning: Self.health(from: Result { try client.status(timeout: .seconds(2)) }))
            }
        }
        lastHealth.withLock { $0 = (.now, health) }
        return health
    }

    static func health(from result: Result<Accm_V1_Status, any Error>) -> ServiceHealth {
        let status: Accm_V1_Status
        switch result {
        case .success(let s): status = s
        case .failure(let error):
            return ServiceHealth(stages: [:], unreachable: "the coordinator did not answer a status request: \(error)")
        }
        var stages: [Stage: ServiceHealth.StageState] = [:]
        for stage in Stage.allCases { stages[stage] = ServiceHealth.StageState(replicas: 0) }
        var restarts = 0
        for worker in status.workers {
            guard let stage = Stage(wire: worker.stage) else { continue }
            stages[stage]!.replicas += 1
            restarts += Int(worker.restarts)
        }
        for queue in status.queues {
            guard let stage = Stage(wire: queue.stage) else { continue }
            stages[stage]!.queued = Int(queue.waiting)
        }
        return ServiceHealth(stages: stages, workerRestarts: restarts)
    }
}
