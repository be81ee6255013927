// An `ACCMService` for the gateway's tests: it answers from a script, streams that answer's text in pieces,
// records what it was asked, and notices when the gateway cancels it.

import ACCMMessages
import Foundation
import Gateway
import Hummingbird
import Synchronization

final class FakeService: ACCMService {
    let modelName = "fake-model"
    /// What each request gets: streamed pieces (with a pause before each), then an answer or an error.
    struct Script: Sendable {
        var pieces: [String] = ["gre", "en"]
        var pause: Duration = .zero
        var error: StageError?
    }
    let script: Mutex<Script>
    let health: Mutex<ServiceHealth>
    let received = Mutex<[ACCMRequest]>([])
    let cancellations = Atomic<Int>(0)

    init(_ script: Script = Script(), replicas: Int = 1) {
        self.script = Mutex(script)
        health = Mutex(ServiceHealth(stages: Dictionary(uniqueKeysWithValues: Stage.allCases.map {
            ($0, ServiceHealth.StageState(replicas: replicas, queued: 2))
        })))
    }

    func answer(_ request: ACCMRequest, timeout: Duration, onText: @escaping @Sendable (String) -> Void)
        async throws(StageError) -> ACCMAnswer {
        received.withLock { $0.append(request) }
        let script = self.script.withLock { $0 }
        if let error = script.error { throw error }
        for piece in script.pieces {
            do {
                try await Task.sleep(for: script.pause)
            } catch {
                cancellations.add(1, ordering: .relaxed)
                throw StageError(.cancelled, "cancelled")
            }
            onText(piece)
        }
        var answer = ACCMAnswer(
            text: script.pieces.joined(), tokens: [5, 6], finishReason: .stopToken, caption: "a green cross at the top",
            candidates: [CaptionCandidate(text: "a green cross at the bottom", beamScore: -0.2, selectorScore: 0.6),
                         CaptionCandidate(text: "a green cross at the top", beamScore: -0.3, selectorScore: 0.7)],
            candidateTokens: [[1], [2]], chosenCandidate: 1, keptIndices: [3, 17, 40, 63], patchCount: 64, promptTokens: 40,
            seconds: [.vision: 0.01, .caption: 0.02, .selector: 0.005, .decoder: 0.03],
            flops: [.vision: 1e8, .caption: 2e8, .selector: 5e7, .decoder: 3e8], unprunedFLOPs: 9e8)
        answer.queuedSeconds = [.vision: 0.001, .decoder: 0.002]
        return answer
    }

    func health() async -> ServiceHealth { health.withLock { $0 } }
}

/// A gateway serving on a free loopback port until `stop`.
final class RunningGateway: @unchecked Sendable {
    let port: Int
    let gateway: Gateway
    private let task: Task<Void, any Error>

    private init(port: Int, gateway: Gateway, task: Task<Void, any Error>) {
        self.port = port
        self.gateway = gateway
        self.task = task
    }

    static func start(_ service: any ACCMService, options: GatewayOptions = GatewayOptions()) async throws -> RunningGateway {
        var options = options
        options.port = 0
        let gateway = Gateway(service: service, options: options)
        let (ports, sink) = AsyncStream<Int>.makeStream()
        let task = Task { try await gateway.application(onRunning: { sink.yield($0) }).run() }
        guard let port = await ports.first(where: { _ in true }) else { throw CancellationError() }
        return RunningGateway(port: port, gateway: gateway, task: task)
    }

    func stop() { task.cancel() }
}

/// Runs blocking socket work on its own thread, off Swift's cooperative pool (which the gateway needs).
func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}

/// A PNG-looking data URL (the fake service never decodes it).
let imageURL = "data:image/png;base64," + Data([0x89, 0x50, 0x4E, 0x47, 1, 2, 3]).base64EncodedString()

func chat(_ text: String = "What color is the cross?", image: Bool = true, extra: [String: Any] = [:]) -> [String: Any] {
    var content: [[String: Any]] = [["type": "text", "text": text]]
    if image { content.append(["type": "image_url", "image_url": ["url": imageURL]]) }
    return ["model": "fake-model", "messages": [["role": "user", "content": content]]].merging(extra) { $1 }
}
