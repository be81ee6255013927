// The HTTP front door (Hummingbird 2): OpenAI's chat completions API over an `ACCMService`, with server-sent
// events for streams, `/v1/models`, `/health` (per-stage readiness), `/metrics` (Prometheus) and the playground
// page at `/`. A client that goes away cancels its request in every stage: while a request waits for its first
// text the connection's inbound side is watched (`ClientWatch`, which leaves the connection open for the client's
// next request), and a stream's writes (a comment every 2 s when there is no text) fail once the client has gone.

import ACCMMessages
import Foundation
import Hummingbird
import Logging
import Synchronization

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// How the gateway listens and what it accepts.
public struct GatewayOptions: Sendable {
    public var host: String
    /// 0: any free port (the running server reports the one it got).
    public var port: Int
    public var apiKeys: APIKeys
    public var limits: ChatRequestLimits
    /// Largest request body, in bytes (413 past it).
    public var maxBodyBytes: Int
    /// How long the stages may take for one request (504 past it).
    public var requestTimeout: Duration
    /// How the model lays images out before cutting patches (what the playground draws over).
    public var imageLayout: ImageLayout
    /// How long an allow-listed image URL may take to fetch.
    public var imageFetchTimeout: Duration
    /// What every metric name starts with (`accm:`, vLLM's style; `accm_` passes promtool's lint, which reserves
    /// colons for recording rules).
    public var metricPrefix: String

    public init(host: String = "127.0.0.1", port: Int = 8000, apiKeys: APIKeys = APIKeys([]),
                limits: ChatRequestLimits = ChatRequestLimits(), maxBodyBytes: Int = 16 << 20,
                requestTimeout: Duration = .seconds(120), imageLayout: ImageLayout = .square,
                imageFetchTimeout: Duration = .seconds(10), metricPrefix: String = "accm:") {
        self.metricPrefix = metricPrefix
        self.host = host
        self.port = port
        self.apiKeys = apiKeys
        self.limits = limits
        self.maxBodyBytes = maxBodyBytes
        self.requestTimeout = requestTimeout
        self.imageLayout = imageLayout
        self.imageFetchTimeout = imageFetchTimeout
    }
}

/// The gateway: routes, metrics and the service behind them.
public final class Gateway: Sendable {
    public let service: any ACCMService
    public let options: GatewayOptions
    public let metrics: GatewayMetrics
    let logger: Logger
    private let running = Atomic<Int>(0)

    public init(service: any ACCMService, options: GatewayOptions, logger: Logger = Logger(label: "accm.gateway")) {
        self.service = service
        self.options = options
        self.logger = logger
        metrics = GatewayMetrics(prefix: options.metricPrefix)
    }

    /// The routes (what the tests drive without a socket).
    public func router() -> Router<GatewayRequestContext> {
        let router = Router(context: GatewayRequestContext.self)
        router.get("/") { _, _ in
            // The page is self-contained: it may load nothing, and talk to this server only.
            Response(status: .ok, headers: [
                .contentType: "text/html; charset=utf-8", .cacheControl: "no-cache",
                .contentSecurityPolicy: "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                    + "img-src data: blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            ], body: .init(byteBuffer: ByteBuffer(string: PlaygroundPage.html)))
        }
        router.get("/health") { _, _ in await self.health() }
        // Liveness: the process answers HTTP (readiness, `/health`, also needs every stage to have a replica).
        router.get("/health/live") { _, _ in Self.json(.ok, Array(#"{"status":"live"}"#.utf8)) }
        router.get("/v1/models") { request, _ in
            guard self.options.apiKeys.accepts(authorization: request.headers[.authorization]) else {
                return Self.response(Self.unauthorized)
            }
            struct Models: Encodable {
                struct Model: Encodable {
                    var id: String
                    var object = "model"
                    var created = 0
                    var owned_by = "accm"
                }
                var object = "list"
                var data: [Model]
            }
            return Self.json(.ok, JSON.encode(Models(data: [.init(id: self.service.modelName)])))
        }
        router.get("/metrics") { _, _ in
            self.metrics.update(await self.service.health())
            self.metrics.requestsRunning.set(Int64(self.running.load(ordering: .relaxed)))
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(bytes: self.metrics.exposition())))
        }
        router.post("/v1/chat/completions") { request, context in
            try await self.chatCompletions(request, context: context)
        }
        return router
    }

    /// The server; `onRunning` gets the port it listens on. `run()` serves until its task is cancelled.
    public func application(onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        Application(
            router: router(),
            // Each connection gets a handler that notices its client going away (see `ClientWatch`).
            server: .http1(configuration: .init(additionalChannelHandlers: [ClientWatchHandler()])),
            configuration: ApplicationConfiguration(address: .hostname(options.host, port: options.port), serverName: "accm"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) },
            logger: logger)
    }

    /// Serves until SIGTERM or SIGINT (then finishes the requests it holds); `onRunning` gets the port it listens on.
    public func run(onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        try await application(onRunning: onRunning).runService()
    }

    // MARK: Health

    private func health() async -> Response {
        let health = await service.health()
        struct Body: Encodable {
            struct StageBody: Encodable {
                var ready: Bool
                var replicas: Int
                var queued: Int
            }
            var status: String
            var stages: [String: StageBody]
            var error: String?
        }
        var stages: [String: Body.StageBody] = [:]
        for stage in Stage.allCases {
            let state = health.stages[stage] ?? .init(replicas: 0)
            stages[stage.rawValue] = .init(ready: state.replicas > 0, replicas: state.replicas, queued: state.queued)
        }
        let body = Body(status: health.isReady ? "ready" : "not_ready", stages: stages, error: health.unreachable)
        return Self.json(health.isReady ? .ok : .serviceUnavailable, JSON.encode(body))
    }

    // MARK: Chat completions

    private static let unauthorized = APIError(
        status: .unauthorized, message: "a valid API key is needed: send it as 'Authorization: Bearer KEY'",
        type: "invalid_request_error", code: "invalid_api_key")

    /// What the stages report while a request is answered.
    enum Event: Sendable {
        case text(String)
        case finished(Result<ACCMAnswer, StageError>)
        /// No news for a while (a stream writes a comment, which fails once its client has gone).
        case tick
    }

    private func chatCompletions(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        let started = ContinuousClock.now
        let id = "chatcmpl-" + (0..<12).map { _ in String(UInt8.random(in: 0...255), radix: 16) }.joined()
        var logger = self.logger
        logger[metadataKey: "request_id"] = "\(id)"
        func fail(_ error: APIError) -> Response {
            metrics.requests(status: String(error.status.code)).increment()
            logger.info("refused", metadata: ["status": "\(error.status.code)", "error": "\(error.message)"])
            return Self.response(error)
        }
        guard options.apiKeys.accepts(authorization: request.headers[.authorization]) else { return fail(Self.unauthorized) }
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > options.maxBodyBytes {
            return fail(Self.tooLarge(length, limit: options.maxBodyBytes))
        }
        // The client going away before its answer stops the request in every stage (looked up before the body is
        // read: a client gone meanwhile is remembered). The watch ends as this function returns: from then on a
        // stream's writes notice a client that went away.
        let watch = await ClientWatch.of(context.channel)
        defer { watch?.stop() }
        let bytes: ByteBuffer
        do {
            bytes = try await request.body.collect(upTo: options.maxBodyBytes)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            return fail(Self.tooLarge(nil, limit: options.maxBodyBytes))
        }
        var chat: ChatRequest
        do throws(APIError) {
            chat = try ChatRequest.parse(bytes.readableBytesView, limits: options.limits)
            if let url = chat.imageURL { chat.request.image = .encoded(try await fetchImage(url)) }
        } catch {
            return fail(error)
        }
        if let model = chat.model, model != service.modelName {
            return fail(APIError(status: .notFound, message: "the model '\(model)' does not exist; this server serves "
                + "'\(service.modelName)'", type: "invalid_request_error", param: "model", code: "model_not_found"))
        }
        logger.info("chat completion", metadata: [
            "stream": "\(chat.stream)", "image": "\(chat.request.image != nil)", "visual_tokens": "\(chat.request.budget)",
            "history": "\(chat.request.conversation.history.count)"])

        let (events, sink) = AsyncStream<Event>.makeStream()
        let service = self.service, timeout = options.requestTimeout, accmRequest = chat.request
        let task = Task {
            let result: Result<ACCMAnswer, StageError>
            do throws(StageError) {
                result = .success(try await service.answer(accmRequest, timeout: timeout) { sink.yield(.text($0)) })
            } catch {
                result = .failure(error)
            }
            sink.yield(.finished(result))
            sink.finish()
        }
        watch?.onGone { task.cancel() }
        running.add(1, ordering: .relaxed)
        let first = await events.first { _ in true } ?? .finished(.failure(StageError(.cancelled, "the request was cancelled")))
        if case .finished(.failure(let error)) = first {
            running.subtract(1, ordering: .relaxed)
            return fail(APIError(error))
        }
        if chat.stream {
            return self.stream(chat, id: id, first: first, rest: events, task: task, sink: sink, started: started, logger: logger)
        }
        defer { running.subtract(1, ordering: .relaxed) }
        var firstText: ContinuousClock.Instant?
        var event = first
        while true {
            switch event {
            case .text:
                if firstText == nil {
                    firstText = .now
                    metrics.timeToFirstToken.record(.now - started)
                }
            case .tick: break
            case .finished(.failure(let error)):
                return fail(APIError(error))
            case .finished(.success(let answer)):
                return answered(chat, id: id, answer: answer, started: started, logger: logger)
            }
            guard let next = await events.first(where: { _ in true }) else {
                return fail(APIError(StageError(.cancelled, "the request was cancelled")))
            }
            event = next
        }
    }

    private func answered(_ chat: ChatRequest, id: String, answer: ACCMAnswer, started: ContinuousClock.Instant,
                          logger: Logger) -> Response {
        recordAnswered(answer, started: started, stream: false, logger: logger)
        let completion = ChatCompletion(
            id: id, created: Self.now(), model: service.modelName,
            choices: [.init(message: .init(content: answer.text), finish_reason: finishReason(answer.finishReason))],
            usage: Usage(answer),
            accm: ACCMReport(answer, candidates: chat.returnCandidates, timings: chat.returnTimings, layout: options.imageLayout))
        return Self.json(.ok, JSON.encode(completion))
    }

    /// The answer as server-sent events: a role chunk, text chunks, the last chunk (finish reason and the `accm`
    /// object), the usage chunk when asked, `[DONE]`. A failure after the stream began is sent as an error event.
    private func stream(_ chat: ChatRequest, id: String, first: Event, rest events: AsyncStream<Event>, task: Task<Void, Never>,
                        sink: AsyncStream<Event>.Continuation, started: ContinuousClock.Instant, logger: Logger) -> Response {
        let model = service.modelName, created = Self.now(), metrics = self.metrics, layout = options.imageLayout
        let ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(2))
                sink.yield(.tick)
            }
        }
        let body = ResponseBody { writer in
            defer {
                ticker.cancel()
                task.cancel()  // a no-op once answered; a client gone mid-stream stops the request in every stage
                self.running.subtract(1, ordering: .relaxed)
            }
            func send(_ chunk: ChatCompletionChunk) async throws {
                try await writer.write(ByteBuffer(bytes: Array("data: ".utf8) + JSON.encode(chunk) + Array("\n\n".utf8)))
            }
            func chunk(_ delta: ChatCompletionChunk.Choice.Delta, finish: String? = nil) -> ChatCompletionChunk {
                ChatCompletionChunk(id: id, created: created, model: model, choices: [.init(delta: delta, finish_reason: finish)])
            }
            try await send(chunk(.init(role: "assistant", content: "")))
            var lastText: ContinuousClock.Instant?
            var event: Event? = first
            while let current = event {
                switch current {
                case .text(let delta):
                    let now = ContinuousClock.now
                    if let lastText { metrics.interTokenLatency.record(now - lastText) } else { metrics.timeToFirstToken.record(now - started) }
                    lastText = now
                    try await send(chunk(.init(content: delta)))
                case .tick:
                    try await writer.write(ByteBuffer(string: ": waiting\n\n"))
                case .finished(.success(let answer)):
                    var last = chunk(.init(), finish: finishReason(answer.finishReason))
                    last.accm = ACCMReport(answer, candidates: chat.returnCandidates, timings: chat.returnTimings, layout: layout)
                    try await send(last)
                    if chat.includeUsage {
                        try await send(ChatCompletionChunk(id: id, created: created, model: model, choices: [], usage: Usage(answer)))
                    }
                    try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                    try await writer.finish(nil)
                    self.recordAnswered(answer, started: started, stream: true, logger: logger)
                    return
                case .finished(.failure(let error)):
                    let apiError = APIError(error)
                    metrics.requests(status: String(apiError.status.code)).increment()
                    logger.info("failed mid-stream", metadata: ["status": "\(apiError.status.code)", "error": "\(error.message)"])
                    try await writer.write(ByteBuffer(bytes: Array("data: ".utf8) + apiError.json + Array("\n\ndata: [DONE]\n\n".utf8)))
                    try await writer.finish(nil)
                    return
                }
                event = await events.first { _ in true }
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
    }

    /// Counts and logs an answered request.
    private func recordAnswered(_ answer: ACCMAnswer, started: ContinuousClock.Instant, stream: Bool, logger: Logger) {
        let elapsed = ContinuousClock.now - started
        metrics.record(answer, elapsed: elapsed)
        metrics.requests(status: "200").increment()
        logger.info("answered", metadata: [
            "status": "200", "stream": "\(stream)", "seconds": "\(elapsed.inSeconds)", "prompt_tokens": "\(answer.promptTokens)",
            "completion_tokens": "\(answer.sampledTokens)", "visual_tokens_kept": "\(answer.keptIndices.count)"])
    }

    // MARK: Images from allow-listed hosts

    private func fetchImage(_ url: URL) async throws(APIError) -> [UInt8] {
        let limit = options.limits.maxImageBytes
        var request = URLRequest(url: url)
        request.timeoutInterval = options.imageFetchTimeout.inSeconds
        let result: Result<(Data, URLResponse), any Error> = await withCheckedContinuation { continuation in
            URLSession.shared.dataTask(with: request) { data, response, error in
                if let data, let response { continuation.resume(returning: .success((data, response))) } else {
                    continuation.resume(returning: .failure(error ?? URLError(.badServerResponse)))
                }
            }.resume()
        }
        let param = "messages"
        switch result {
        case .failure(let error):
            throw APIError.invalid("the image at \(url) could not be fetched: \(error.localizedDescription)", param: param,
                                   code: "invalid_image")
        case .success(let (data, response)):
            if let http = response as? HTTPURLResponse, !(200..<300).contains(http.statusCode) {
                throw APIError.invalid("the image at \(url) could not be fetched: HTTP \(http.statusCode)", param: param,
                                       code: "invalid_image")
            }
            guard data.count <= limit else {
                throw APIError.invalid("the image at \(url) is \(data.count) bytes, over the limit of \(limit) bytes",
                                       param: param, code: "image_too_large")
            }
            return [UInt8](data)
        }
    }

    // MARK: Helpers

    private static func tooLarge(_ length: Int?, limit: Int) -> APIError {
        APIError(status: .contentTooLarge, message: "the request body is \(length.map { "\($0) bytes" } ?? "larger than that"), "
            + "over the limit of \(limit) bytes", type: "invalid_request_error", code: "request_too_large")
    }

    static func json(_ status: HTTPResponse.Status, _ bytes: [UInt8]) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    static func response(_ error: APIError) -> Response {
        var response = json(error.status, error.json)
        if let seconds = error.retryAfterSeconds { response.headers[.retryAfter] = String(seconds) }
        return response
    }

    static func now() -> Int { Int(Date().timeIntervalSince1970) }
}
