// `accm serve`: the whole system in one process — the HTTP gateway, the coordinator and a worker per stage,
// joined by in-process ZeroMQ (`inproc://`) through the same coordinator code as a cluster. `accm gateway`:
// the gateway alone, in front of a running cluster's coordinator.

import ACCM
import ACCMMessages
import ArgumentParser
import Cluster
import ClusterWorker
import Dispatch
import Foundation
import Gateway
import Logging
import Transport

/// Options of the HTTP front door, shared by `serve` and `gateway`.
struct GatewayCommandOptions: ParsableArguments {
    @Option(help: "Address to listen on (a non-loopback one needs API keys, or --insecure).")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on (0: a free one, printed at start).")
    var port = 8000

    @Option(help: "File of accepted API keys, one per line (also: $ACCM_API_KEYS, comma-separated). None: no key is asked for.")
    var apiKeyFile: String?

    @Option(help: "Hosts an http(s) image URL may name, comma-separated (default: none; images come as data URLs).")
    var allowImageHosts = ""

    @Option(help: "Largest request body, in bytes.")
    var maxBodyBytes = 16 << 20

    @Option(help: "Largest image file, in bytes.")
    var maxImageBytes = 8 << 20

    @Option(help: "Images one request may carry.")
    var maxImages = 1

    @Option(help: "Visual tokens kept when a request does not say (accm.visual_tokens).")
    var visualTokens = 16

    @Option(help: "Seconds the stages may take for one request (504 past it).")
    var requestTimeout: Double = 120

    @Option(help: "Log lines as text or json (one object per line, with the request id).")
    var logFormat: LogFormat = .text

    @Option(help: "Least log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(help: "What every metric name starts with: accm: (vLLM's style), or accm_ for tools that reserve colons for recording rules (promtool's lint).")
    var metricPrefix = "accm:"

    @Flag(help: "Serve on a non-loopback address without API keys (anyone who reaches it can use it).")
    var insecure = false

    enum LogFormat: String, ExpressibleByArgument, CaseIterable { case text, json }

    func validate() throws {
        if !(0...65535).contains(port) { throw ValidationError("--port must be in 0...65535") }
        if maxBodyBytes < 1024 { throw ValidationError("--max-body-bytes must be at least 1024") }
        if maxImageBytes < 1 || maxImages < 0 { throw ValidationError("--max-image-bytes must be positive, --max-images at least 0") }
        if visualTokens < 1 { throw ValidationError("--visual-tokens must be at least 1") }
        if !(requestTimeout > 0 && requestTimeout <= 3600) { throw ValidationError("--request-timeout must be in (0, 3600] seconds") }
        if metricPrefix.isEmpty || !metricPrefix.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == ":") })
            || metricPrefix.first!.isNumber {
            throw ValidationError("--metric-prefix must be letters, digits, _ or : and not start with a digit")
        }
        if Logger.Level(rawValue: logLevel) == nil { throw ValidationError("--log-level \(logLevel) is not a swift-log level") }
    }

    /// Routes every logger of the process to the chosen format, at the chosen level.
    func bootstrapLogging() {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        let json = logFormat == .json
        LoggingSystem.bootstrap { label in
            if json {
                var handler = JSONLogHandler(label: label)
                handler.logLevel = level
                return handler
            }
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }

    func gatewayOptions(layout: ImageLayout) throws -> GatewayOptions {
        let keys = try APIKeys.load(file: apiKeyFile)
        if !keys.required && !insecure && !CoordinatorOptions.isLoopback("tcp://\(host):\(port)") {
            throw CommandError("the gateway will not listen on \(host) without API keys: anyone who reaches it could use it. "
                + "Give --api-key-file (or $ACCM_API_KEYS), or --insecure to serve without keys anyway")
        }
        let hosts = Set(allowImageHosts.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            .filter { !$0.isEmpty })
        return GatewayOptions(
            host: host, port: port, apiKeys: keys,
            limits: ChatRequestLimits(maxImages: maxImages, maxImageBytes: maxImageBytes, allowedImageHosts: hosts,
                                      defaultVisualTokens: visualTokens),
            maxBodyBytes: maxBodyBytes, requestTimeout: .milliseconds(Int(requestTimeout * 1000)), imageLayout: layout,
            metricPrefix: metricPrefix)
    }
}

/// Runs `gateway` until SIGINT or SIGTERM, on Swift's concurrency threads (the calling thread waits).
func runUntilTerminated(_ gateway: Gateway, announce: @escaping @Sendable (Int) -> Void) throws {
    let done = DispatchSemaphore(value: 0)
    let failure = LockedBox<(any Error)?>(nil)
    Task {
        do {
            try await gateway.run { port in announce(port) }
        } catch {
            failure.set(error)
        }
        done.signal()
    }
    done.wait()
    if let error = failure.get() { throw CommandError("the gateway stopped: \(error)") }
}

/// A value shared between a task and a waiting thread.
final class LockedBox<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func get() -> Value { lock.withLock { value } }
    func set(_ newValue: Value) { lock.withLock { value = newValue } }
}

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the OpenAI-compatible API, the playground and metrics, with every stage in this process.",
        discussion: """
            The gateway, the coordinator and one worker per stage run in this process, joined by in-process ZeroMQ \
            through the same coordinator code as a cluster. Open http://HOST:PORT/ for the playground; \
            POST /v1/chat/completions; GET /health, /v1/models, /metrics.
            """)

    @OptionGroup var engine: EngineOptions
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var http: GatewayCommandOptions

    @Option(help: "Requests waiting for one stage before new ones are refused (429).")
    var maxQueued = 64

    @Option(help: "Requests held at once before new ones are refused (429).")
    var maxInFlight = 256

    @Option(help: "Most tasks a worker computes together.")
    var maxBatch = 8

    @Option(help: "The model's name in the API (default: its directory's name).")
    var modelName: String?

    func validate() throws {
        if maxQueued < 1 || maxInFlight < 1 { throw ValidationError("--max-queued and --max-in-flight must be at least 1") }
        if !(1...256).contains(maxBatch) { throw ValidationError("--max-batch must be in 1...256") }
    }

    func run() throws {
        http.bootstrapLogging()
        let logger = Logger(label: "accm.serve")
        let threads = engine.apply()
        let model = try modelOptions.modelDirectory()
        let identity = try model.identity()
        let context = ZeroMQContext()
        let suffix = String(getpid())
        let coordinator = try Coordinator(context: context, options: CoordinatorOptions(
            workersEndpoint: "inproc://accm-workers-\(suffix)", clientsEndpoint: "inproc://accm-clients-\(suffix)",
            maxQueuedPerStage: maxQueued, maxInFlight: maxInFlight,
            defaultDeadlineMilliseconds: Int(http.requestTimeout * 1000), maxDeadlineMilliseconds: 3_600_000))
        var workers: [StageWorker] = []
        for stage in Stage.allCases {
            let loaded = try LoadedStage.load(stage, from: model)
            workers.append(try StageWorker(
                context: context, stage: loaded, modelIdentity: identity, modelPath: modelOptions.directory,
                options: WorkerOptions(stage: stage, coordinator: coordinator.workersEndpoint, threads: threads,
                                       maxBatch: maxBatch, weightFormats: model.weights.description(of: stage, kvCache: model.kvCache))))
        }
        let finished = DispatchGroup()
        for worker in workers {
            let thread = Thread {
                do { try worker.run() } catch { logger.error("a worker stopped: \(error)") }
                finished.leave()
            }
            finished.enter()
            thread.start()
        }
        let client = try ClusterClient(context: context, coordinator: coordinator.clientsEndpoint)
        let name = modelName ?? URL(fileURLWithPath: modelOptions.directory).standardizedFileURL.lastPathComponent
        let gateway = Gateway(service: ClusterService(client: client, modelName: name),
                              options: try http.gatewayOptions(layout: model.manifest.imageAspectRatio == .pad ? .square : .crop),
                              logger: Logger(label: "accm.gateway"))
        let host = http.host
        try runUntilTerminated(gateway) { port in
            print("serving \(name) at http://\(host):\(port)/ (playground; POST /v1/chat/completions; /health, /metrics) "
                + "with \(threads) thread\(threads == 1 ? "" : "s")")
            flushStandardOutput()
        }
        client.close()
        for worker in workers { worker.stop() }
        _ = finished.wait(timeout: .now() + 10)
        coordinator.stop()
    }
}

struct GatewayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract: "Serve the OpenAI-compatible API, the playground and metrics in front of a running cluster.")

    @Option(help: "The coordinator's client endpoint (tcp://HOST:PORT).")
    var coordinator: String

    @OptionGroup var curve: CurveClientOptions
    @OptionGroup var http: GatewayCommandOptions

    @Option(help: "The model's name in the API.")
    var modelName = "accm"

    @Option(help: "How the model lays images out before cutting patches (what the playground draws): square (LLaVA's pad) or crop.")
    var imageLayout: String = "square"

    func validate() throws {
        if !coordinator.hasPrefix("tcp://") && !coordinator.hasPrefix("ipc://") {
            throw ValidationError("--coordinator \(coordinator) must be tcp://HOST:PORT (or ipc://PATH)")
        }
        if ImageLayout(rawValue: imageLayout) == nil { throw ValidationError("--image-layout must be square or crop") }
    }

    func run() throws {
        http.bootstrapLogging()
        let client = try ClusterClient(context: ZeroMQContext(), coordinator: coordinator, options: try curve.clientOptions())
        let gateway = Gateway(service: ClusterService(client: client, modelName: modelName),
                              options: try http.gatewayOptions(layout: ImageLayout(rawValue: imageLayout)!),
                              logger: Logger(label: "accm.gateway"))
        let host = http.host, coordinator = self.coordinator
        try runUntilTerminated(gateway) { port in
            print("gateway for \(coordinator) at http://\(host):\(port)/")
            flushStandardOutput()
        }
        client.close()
    }
}
