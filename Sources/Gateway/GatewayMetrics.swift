// The gateway's Prometheus metrics (swift-prometheus), named as vLLM names its own with an `accm:` prefix:
// requests by status, latencies (end to end, time to first token, between tokens, per stage, queue wait),
// tokens, visual tokens kept and dropped, FLOPs spent and saved by pruning, and the cluster's replicas,
// queues and restarts (read from the coordinator's status at each scrape).

import ACCMMessages
import Prometheus

/// Every metric the gateway exports, on one registry.
public final class GatewayMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    /// What every name starts with: `accm:` as vLLM names its own (`vllm:`), or e.g. `accm_` for tools that, like
    /// promtool's lint, reserve colons for recording rules.
    public let prefix: String

    private static let latencyBuckets: [Duration] = [
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
        .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30), .seconds(60),
    ]
    private static let tokenGapBuckets: [Duration] = [
        .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(20),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
    ]

    let e2eLatency: DurationHistogram
    let timeToFirstToken: DurationHistogram
    let interTokenLatency: DurationHistogram
    let decodeTokensPerSecond: ValueHistogram
    let promptTokens: Counter
    let generationTokens: Counter
    let visualTokensKept: Counter
    let visualTokensDropped: Counter
    let flopsSpent: Counter
    let flopsSaved: Counter
    let requestsRunning: Gauge
    let workerRestarts: Gauge

    init(prefix: String = "accm:") {
        self.prefix = prefix
        e2eLatency = registry.makeDurationHistogram(
            name: prefix + "e2e_request_latency_seconds", labels: [], buckets: Self.latencyBuckets,
            help: "Time from a request's arrival to its last byte, for answered requests.")
        timeToFirstToken = registry.makeDurationHistogram(
            name: prefix + "time_to_first_token_seconds", labels: [], buckets: Self.latencyBuckets,
            help: "Time from a request's arrival to the first text of its answer.")
        interTokenLatency = registry.makeDurationHistogram(
            name: prefix + "inter_token_latency_seconds", labels: [], buckets: Self.tokenGapBuckets,
            help: "Time between successive pieces of streamed answer text.")
        decodeTokensPerSecond = registry.makeValueHistogram(
            name: prefix + "request_decode_tokens_per_second", labels: [], buckets: [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500],
            help: "Tokens per second of each answer's decoding (sampled tokens over the decoder stage's time).")
        promptTokens = registry.makeCounter(name: prefix + "prompt_tokens_total", labels: [],
                                            help: "Prompt tokens of answered requests, visual tokens and caption included.")
        generationTokens = registry.makeCounter(name: prefix + "generation_tokens_total", labels: [],
                                                help: "Tokens sampled for answered requests.")
        visualTokensKept = registry.makeCounter(name: prefix + "visual_tokens_kept_total", labels: [],
                                                help: "Visual tokens kept by the pruner and given to the decoder.")
        visualTokensDropped = registry.makeCounter(name: prefix + "visual_tokens_dropped_total", labels: [],
                                                   help: "Visual tokens the pruner dropped.")
        flopsSpent = registry.makeCounter(name: prefix + "flops_total", labels: [],
                                          help: "Floating-point operations spent on answered requests, all stages.")
        flopsSaved = registry.makeCounter(name: prefix + "flops_saved_total", labels: [],
                                          help: "Floating-point operations pruning saved against the same answers unpruned.")
        requestsRunning = registry.makeGauge(name: prefix + "requests_running", labels: [],
                                             help: "Requests the gateway is answering now.")
        workerRestarts = registry.makeGauge(name: prefix + "worker_restarts", labels: [],
                                            help: "Restarts of the live workers, summed (as their supervisors report them).")
        // Every series exists from the start, so a scrape before the first request already shows them.
        for stage in Stage.allCases {
            _ = stageLatency(stage)
            _ = queueWait(stage)
            _ = replicas(stage)
            _ = queueDepth(stage)
        }
        for status in ["200", "400", "401", "413", "429", "499", "500", "503", "504"] { _ = requests(status: status) }
    }

    func requests(status: String) -> Counter {
        registry.makeCounter(name: prefix + "requests_total", labels: [("status", status)],
                             help: "Chat completion requests by HTTP status of their outcome.")
    }

    func stageLatency(_ stage: Stage) -> DurationHistogram {
        registry.makeDurationHistogram(name: prefix + "stage_latency_seconds", labels: [("stage", stage.rawValue)],
                                       buckets: Self.latencyBuckets, help: "Compute time of each stage for a request (its batch's time).")
    }

    func queueWait(_ stage: Stage) -> DurationHistogram {
        registry.makeDurationHistogram(name: prefix + "queue_wait_seconds", labels: [("stage", stage.rawValue)],
                                       buckets: Self.latencyBuckets,
                                       help: "Time a request waited for each stage: queued at the coordinator, in transit, waiting for a batch slot.")
    }

    func replicas(_ stage: Stage) -> Gauge {
        registry.makeGauge(name: prefix + "replicas", labels: [("stage", stage.rawValue)], help: "Live replicas serving each stage.")
    }

    func queueDepth(_ stage: Stage) -> Gauge {
        registry.makeGauge(name: prefix + "queue_depth", labels: [("stage", stage.rawValue)],
                           help: "Requests waiting for each stage at the coordinator.")
    }

    /// Records an answered request.
    func record(_ answer: ACCMAnswer, elapsed: Duration) {
        e2eLatency.record(elapsed)
        promptTokens.increment(by: Int64(answer.promptTokens))
        generationTokens.increment(by: Int64(answer.sampledTokens))
        visualTokensKept.increment(by: Int64(answer.keptIndices.count))
        visualTokensDropped.increment(by: Int64(answer.patchCount - answer.keptIndices.count))
        flopsSpent.increment(by: answer.totalFLOPs)
        flopsSaved.increment(by: max(0, answer.unprunedFLOPs - answer.totalFLOPs))
        for (stage, seconds) in answer.seconds { stageLatency(stage).record(.nanoseconds(Int64(seconds * 1e9))) }
        for (stage, seconds) in answer.queuedSeconds { queueWait(stage).record(.nanoseconds(Int64(seconds * 1e9))) }
        if let decode = answer.seconds[.decoder], decode > 0, answer.sampledTokens > 0 {
            decodeTokensPerSecond.record(Double(answer.sampledTokens) / decode)
        }
    }

    /// Sets the cluster's gauges from its health.
    func update(_ health: ServiceHealth) {
        for stage in Stage.allCases {
            replicas(stage).set(Int64(health.stages[stage]?.replicas ?? 0))
            queueDepth(stage).set(Int64(health.stages[stage]?.queued ?? 0))
        }
        workerRestarts.set(Int64(health.workerRestarts))
    }

    /// The text exposition format.
    func exposition() -> [UInt8] { registry.emitToBuffer() }
}
