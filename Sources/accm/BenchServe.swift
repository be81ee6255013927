// `accm bench serve`: an open-loop load at rising request rates against `accm serve` (started here as a child
// process), through its OpenAI-compatible HTTP API: streaming chat completions of the committed test split, sent
// at their scheduled times whatever is still running, over a minimal HTTP/1.1 client on POSIX sockets.

import ArgumentParser
import Dispatch
import Foundation

#if canImport(Glibc)
import Glibc
#endif

struct BenchServe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Open-loop load at rising request rates against `accm serve` (a child process): throughput, latency, "
            + "time to first token, 429s and the gateway's memory.",
        discussion: """
            Each request is a streaming chat completion (temperature 0, max_tokens 16, accm.visual_tokens 4) of a \
            question of the committed test split with its PNG as a base64 data URL, sent on its own connection \
            (HTTP/1.1, Connection: close) at its scheduled time. Latency runs from the scheduled time to `data: [DONE]`; \
            time to first token to the first chunk with non-empty content. With --minutes: one run at --rate, a row \
            every 30 s, to show the gateway's memory stays bounded.
            """)

    @Option(help: "Comma list of offered request rates (requests/s), one load step each.")
    var rates = "5,10,20,40,80"

    @Option(help: "Seconds of arrivals per rate.")
    var seconds: Double = 20

    @Option(help: "Instead of --rates: one run of this many minutes at --rate, a row every 30 s.")
    var minutes: Double?

    @Option(help: "With --minutes: the offered rate (requests/s).")
    var rate: Double = 10

    @Option(help: "The model directory `accm serve` loads (default: its own, $ACCM_MODEL or Models/accm-world).")
    var model: String?

    @Option(help: "Threads of `accm serve` (default: its own, every online core).")
    var threads: Int?

    @Option(help: "`accm serve --max-queued` (requests waiting for one stage before 429; default: its own, 64).")
    var maxQueued: Int?

    @Option(help: "Most connections open at once; an arrival past it is not sent and counted as unsent.")
    var maxConnections = 512

    @Option(help: "Arrival process: poisson (exponential gaps) or fixed (even gaps).")
    var arrivals = "poisson"

    @Option(help: "Seed of the arrival times (rate step i uses seed + i).")
    var seed: UInt64 = 0

    @Option(help: "max_tokens of every request.")
    var maxTokens = 16

    @Option(help: "accm.visual_tokens of every request.")
    var visualTokens = 4

    @Option(help: "Seconds one request may take (connect to [DONE]) before it counts as an error.")
    var requestTimeout: Double = 300

    func validate() throws {
        if minutes == nil { _ = try rateList() }
        if !(seconds > 0) { throw ValidationError("--seconds must be positive") }
        if let minutes, !(minutes > 0) { throw ValidationError("--minutes must be positive") }
        if !(rate > 0) { throw ValidationError("--rate must be positive") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        if let maxQueued, maxQueued < 1 { throw ValidationError("--max-queued must be at least 1") }
        if !(1...4096).contains(maxConnections) { throw ValidationError("--max-connections must be in 1...4096") }
        if arrivals != "poisson" && arrivals != "fixed" { throw ValidationError("--arrivals must be poisson or fixed") }
        if maxTokens < 1 || visualTokens < 1 { throw ValidationError("--max-tokens and --visual-tokens must be at least 1") }
        if !(requestTimeout > 0) { throw ValidationError("--request-timeout must be positive") }
    }

    func rateList() throws -> [Double] {
        try rates.split(separator: ",").map { value -> Double in
            guard let r = Double(value.trimmingCharacters(in: .whitespaces)), r > 0, r <= 10_000 else {
                throw ValidationError("rate '\(value)' (requests/s in (0, 10000])")
            }
            return r
        }
    }

    func run() throws {
        print(MachineDescription.current.lines.joined(separator: "\n"))
        let bodies = try requestBodies()

        var arguments = ["serve", "--host", "127.0.0.1", "--port", "0"]
        if let model { arguments += ["--model", model] }
        if let threads { arguments += ["--threads", "\(threads)"] }
        if let maxQueued { arguments += ["--max-queued", "\(maxQueued)"] }
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("accm-bench-serve-\(getpid()).log").path
        let gateway = try ServeProcess(arguments, log: log)
        defer { gateway.stop() }
        let signals = ProcessLifetime.onTermination(parent: nil) {
            gateway.stop()
            Foundation.exit(130)
        }
        try withExtendedLifetime(signals) {
            let line = try gateway.waitUntilListening(timeout: 180)
            print("gateway: `accm \(arguments.joined(separator: " "))` (output in \(log))")
            print("gateway: \(line)")
            try gateway.waitUntilHealthy(timeout: 180)
            try warmUp(gateway, bodies)
            if let minutes { try longRun(gateway, bodies, minutes: minutes) } else { try steps(gateway, bodies) }
        }
    }

    // MARK: Requests

    /// One JSON body per line of the committed test split: its question and its PNG as a data URL.
    private func requestBodies() throws -> [[UInt8]] {
        let split = URL(fileURLWithPath: DefaultPaths.testSplit)
        let lines = try String(contentsOf: split.appendingPathComponent("test.jsonl"), encoding: .utf8).split(separator: "\n")
        var images: [String: String] = [:]
        var bodies: [[UInt8]] = []
        for line in lines {
            guard let item = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let question = item["question"] as? String, let image = item["image"] as? String
            else { throw CommandError("\(split.path)/test.jsonl: a line without question and image") }
            if images[image] == nil {
                images[image] = try Data(contentsOf: split.appendingPathComponent(image)).base64EncodedString()
            }
            let body: [String: Any] = [
                "model": "accm-world",
                "messages": [["role": "user", "content": [
                    ["type": "text", "text": question],
                    ["type": "image_url", "image_url": ["url": "data:image/png;base64," + images[image]!]],
                ] as [Any]]],
                "max_tokens": maxTokens, "temperature": 0, "seed": 0, "stream": true,
                "accm": ["visual_tokens": visualTokens],
            ]
            bodies.append([UInt8](try JSONSerialization.data(withJSONObject: body, options: [.withoutEscapingSlashes])))
        }
        guard !bodies.isEmpty else { throw CommandError("\(split.path)/test.jsonl has no questions") }
        return bodies
    }

    /// A few requests one at a time before any figure: each must be answered.
    private func warmUp(_ gateway: ServeProcess, _ bodies: [[UInt8]]) throws {
        let client = HTTPClient(port: gateway.port, timeout: requestTimeout)
        for body in bodies.prefix(4) {
            let outcome = client.chatCompletion(body, scheduled: monotonicSeconds())
            guard outcome.kind == .answered else { throw CommandError("a warm-up request failed: \(outcome.detail)") }
        }
    }

    private var setup: String {
        "streaming chat completions (temperature 0, max_tokens \(maxTokens), accm.visual_tokens \(visualTokens)) of the committed "
            + "test split's questions and PNGs (data URLs), \(arrivals == "poisson" ? "Poisson" : "evenly spaced") arrivals "
            + "(seed \(seed)), one connection per request, at most \(maxConnections) open; gateway: "
            + "\(threads.map { "\($0) threads" } ?? "default threads"), max-queued \(maxQueued.map(String.init) ?? "default (64)")"
    }

    // MARK: Rate steps

    private func steps(_ gateway: ServeProcess, _ bodies: [[UInt8]]) throws {
        let list = try rateList()
        print("\n## Open-loop load on accm serve, \(Self.format(seconds)) s of arrivals per rate: " + setup)
        print("Latency: scheduled send → `data: [DONE]`; TTFT: scheduled send → first chunk with non-empty content (answers only). "
            + "Answers/s: answers / (first arrival → last answer, the drain included). RSS: the gateway process's VmHWM (peak so far) "
            + "and VmRSS after the step's drain.")
        print("| offered req/s | sent | unsent (cap) | peak open | answers/s | p50 latency | p99 latency | p50 TTFT | p99 TTFT "
            + "| 200 | 429 | other | Retry-After | peak RSS | RSS |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        flushStandardOutput()
        var notes: [String] = []
        var first429: Double?
        for (i, offered) in list.enumerated() {
            let load = LoadRun(port: gateway.port, bodies: bodies, cap: maxConnections, timeout: requestTimeout)
            load.begin()
            let arrivalSeconds = load.offer(rate: offered, seconds: seconds, fixed: arrivals == "fixed", seed: seed &+ UInt64(i))
            load.drain()
            try gateway.checkAlive()
            let outcomes = load.outcomes()
            let memory = gateway.memory()
            let s = Summary(outcomes, since: load.start)
            if s.tooMany > 0 && first429 == nil { first429 = offered }
            print("| \(Self.format(offered)) | \(load.sent) | \(load.unsent) | \(load.peakOpen) | \(s.throughput) | \(s.latency.p50) "
                + "| \(s.latency.p99) | \(s.ttft.p50) | \(s.ttft.p99) | \(s.answered) | \(s.tooMany) | \(s.failed) | \(s.retryAfter) "
                + "| \(memory.peak) | \(memory.current) |")
            flushStandardOutput()
            if !s.failures.isEmpty {
                notes.append("\(Self.format(offered)) req/s: other errors: "
                    + s.failures.map { "\($0.value) × \($0.key)" }.joined(separator: "; "))
            }
            notes.append(String(format: "%@ req/s: %d arrivals in %.1f s (%.2f/s offered in fact)", Self.format(offered),
                                load.sent + load.unsent, arrivalSeconds, Double(load.sent + load.unsent) / max(arrivalSeconds, 1e-9)))
        }
        print("")
        if let first429 {
            print("429s start at \(Self.format(first429)) req/s (the first offered rate with any 429).")
        } else {
            print("No rate drew a 429 (up to \(Self.format(list.max()!)) req/s offered).")
        }
        for note in notes { print("- " + note) }
    }

    // MARK: One long run

    private func longRun(_ gateway: ServeProcess, _ bodies: [[UInt8]], minutes: Double) throws {
        let window = 30.0
        print("\n## Open-loop load on accm serve at \(Self.format(rate)) req/s for \(Self.format(minutes)) min, a row per "
            + "\(Int(window)) s of answers (by completion time): " + setup)
        print("| until | answers/s | p50 latency | p99 latency | p50 TTFT | p99 TTFT | 200 | 429 | other | unsent | peak RSS | RSS |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        flushStandardOutput()
        let load = LoadRun(port: gateway.port, bodies: bodies, cap: maxConnections, timeout: requestTimeout)
        load.begin()
        let done = DispatchSemaphore(value: 0)
        let offeredRate = rate, fixed = arrivals == "fixed", seed = self.seed, duration = minutes * 60
        let arrivalsThread = Thread {
            _ = load.offer(rate: offeredRate, seconds: duration, fixed: fixed, seed: seed)
            load.drain()
            done.signal()
        }
        arrivalsThread.stackSize = 1 << 20
        arrivalsThread.start()
        var taken = 0, rows = 0, unsentBefore = 0
        var rss: [Int] = []
        var finished = false
        while !finished {
            rows += 1
            let mark = load.start + Double(rows) * window
            while monotonicSeconds() < mark, !finished {
                if done.wait(timeout: .now() + 0.2) == .success { finished = true }
            }
            let all = load.outcomes()
            let slice = Array(all[taken...])
            taken = all.count
            let since = load.start + Double(rows - 1) * window
            let until = min(monotonicSeconds(), mark)
            let s = Summary(slice, since: since, until: until)
            let memory = gateway.memory()
            if let kilobytes = memory.currentKilobytes { rss.append(kilobytes) }
            let unsent = load.unsent
            print(String(format: "| %.0f s |", until - load.start) + " \(s.throughput) | \(s.latency.p50) | \(s.latency.p99) | \(s.ttft.p50) "
                + "| \(s.ttft.p99) | \(s.answered) | \(s.tooMany) | \(s.failed) | \(unsent - unsentBefore) | \(memory.peak) "
                + "| \(memory.current) |")
            flushStandardOutput()
            unsentBefore = unsent
            try gateway.checkAlive()
        }
        let total = Summary(load.outcomes(), since: load.start)
        print("")
        print("Whole run: \(load.sent) sent, \(load.unsent) unsent, \(total.answered) answered (\(total.throughput) answers/s), "
            + "\(total.tooMany) × 429, \(total.failed) other; latency p50 \(total.latency.p50), p99 \(total.latency.p99).")
        if rss.count >= 2 {
            let mid = rss[rss.count / 2], last = rss.last!, most = rss.max()!
            print("Gateway RSS: \(Memory.text(rss[0])) after the first \(Int(window)) s, \(Memory.text(mid)) half-way, "
                + "\(Memory.text(last)) at the end (most sampled \(Memory.text(most))); end − half-way: "
                + String(format: "%+.1f MiB", Double(last - mid) / 1024) + ".")
        }
        for failure in total.failures { print("- other errors: \(failure.value) × \(failure.key)") }
    }

    static func format(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(format: "%g", value)
    }
}

// MARK: - The gateway process

/// `accm serve` as a child (ChildProcess: this binary, output in a file, SIGTERM then SIGKILL after 10 s), stopped
/// once whatever asks, and not signalled once it has been reaped.
private final class ServeProcess: @unchecked Sendable {
    private let child: ChildProcess
    private let lock = NSLock()
    private var gone = false
    private(set) var port = 0

    init(_ arguments: [String], log: String) throws { child = try ChildProcess(arguments, log: log) }

    func stop() {
        lock.lock()
        defer { lock.unlock() }
        if gone { return }
        gone = true
        child.stop()
    }

    /// Throws (with the end of its output) if the child has exited.
    func checkAlive() throws {
        lock.lock()
        defer { lock.unlock() }
        var status: Int32 = 0
        guard !gone, waitpid(child.pid, &status, WNOHANG) == child.pid else { return }
        gone = true
        let tail = ((try? String(contentsOfFile: child.log, encoding: .utf8)) ?? "").split(separator: "\n").suffix(10)
        throw CommandError("accm serve exited (wait status \(status)); the end of \(child.log):\n" + tail.joined(separator: "\n"))
    }

    /// Waits for the "serving NAME at http://HOST:PORT/ …" line; returns it and keeps the port.
    func waitUntilListening(timeout: Double) throws -> String {
        let deadline = monotonicSeconds() + timeout
        while monotonicSeconds() < deadline {
            try checkAlive()
            let text = (try? String(contentsOfFile: child.log, encoding: .utf8)) ?? ""
            if let line = text.split(separator: "\n").first(where: { $0.hasPrefix("serving ") }),
               let url = line.range(of: "http://") {
                let hostPort = line[url.upperBound...].prefix { $0 != "/" }
                if let colon = hostPort.lastIndex(of: ":"), let port = Int(hostPort[hostPort.index(after: colon)...]) {
                    self.port = port
                    return String(line)
                }
            }
            usleep(100_000)
        }
        throw CommandError("accm serve printed no \"serving … at http://HOST:PORT/\" line within \(Int(timeout)) s (see \(child.log))")
    }

    func waitUntilHealthy(timeout: Double) throws {
        let client = HTTPClient(port: port, timeout: 10)
        let deadline = monotonicSeconds() + timeout
        var last = ""
        while monotonicSeconds() < deadline {
            try checkAlive()
            let (status, body) = client.get("/health")
            if status == 200 { return }
            last = "\(status) \(body)"
            usleep(200_000)
        }
        throw CommandError("GET /health did not answer 200 within \(Int(timeout)) s (last: \(last))")
    }

    func memory() -> Memory {
        let text = (try? String(contentsOfFile: "/proc/\(child.pid)/status", encoding: .utf8)) ?? ""
        func kilobytes(_ key: String) -> Int? {
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(key) }) else { return nil }
            return Int(line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first ?? "")
        }
        return Memory(peakKilobytes: kilobytes("VmHWM:"), currentKilobytes: kilobytes("VmRSS:"))
    }
}

private struct Memory {
    var peakKilobytes: Int?
    var currentKilobytes: Int?
    var peak: String { peakKilobytes.map(Self.text) ?? "–" }
    var current: String { currentKilobytes.map(Self.text) ?? "–" }
    static func text(_ kilobytes: Int) -> String { String(format: "%.1f MiB", Double(kilobytes) / 1024) }
}

// MARK: - Open-loop arrivals

/// One load step: arrivals sent at their scheduled times, each on a thread of its own (at most `cap` at once).
private final class LoadRun: @unchecked Sendable {
    let port: Int
    let bodies: [[UInt8]]
    let cap: Int
    let timeout: Double
    private(set) var start = 0.0
    private let lock = NSLock()
    private var results: [Outcome] = []
    private var open = 0
    private var _peakOpen = 0, _sent = 0, _unsent = 0
    private let group = DispatchGroup()

    init(port: Int, bodies: [[UInt8]], cap: Int, timeout: Double) {
        self.port = port
        self.bodies = bodies
        self.cap = cap
        self.timeout = timeout
    }

    var sent: Int { lock.withLock { _sent } }
    var unsent: Int { lock.withLock { _unsent } }
    var peakOpen: Int { lock.withLock { _peakOpen } }
    func outcomes() -> [Outcome] { lock.withLock { results } }

    /// Fixes the time the arrivals count from (before `offer`, on the thread that reads `start`).
    func begin() { start = monotonicSeconds() + 0.01 }

    /// Sends arrivals for `seconds` from `start` at `rate` (exponential or even gaps); returns the seconds they spanned.
    @discardableResult
    func offer(rate: Double, seconds: Double, fixed: Bool, seed: UInt64) -> Double {
        var random = SplitMix64(seed: seed)
        let end = start + seconds
        var t = start
        var index = Int(random.next() % UInt64(bodies.count))
        while true {
            t += fixed ? 1 / rate : -log(1 - random.nextDouble()) / rate
            if t >= end { break }
            sleep(until: t)
            let admitted: Bool = lock.withLock {
                guard open < cap else {
                    _unsent += 1
                    return false
                }
                open += 1
                _sent += 1
                _peakOpen = max(_peakOpen, open)
                return true
            }
            guard admitted else { continue }
            let body = bodies[index % bodies.count], scheduled = t
            index += 1
            group.enter()
            let thread = Thread { [self] in
                let outcome = HTTPClient(port: port, timeout: timeout).chatCompletion(body, scheduled: scheduled)
                lock.withLock {
                    results.append(outcome)
                    open -= 1
                }
                group.leave()
            }
            thread.stackSize = 512 << 10
            thread.start()
        }
        return seconds
    }

    /// Waits for every sent request to end (each is bounded by the client's timeout).
    func drain() { group.wait() }

    private func sleep(until t: Double) {
        while true {
            let left = t - monotonicSeconds()
            if left <= 0 { return }
            usleep(useconds_t(min(left, 0.05) * 1e6))
        }
    }
}

/// What became of one request.
private struct Outcome {
    enum Kind { case answered, tooMany, failed }
    var kind: Kind
    var status: Int
    var scheduled: Double
    var finished: Double
    var firstToken: Double?
    var retryAfter: String?
    var detail: String
    var latency: Double { finished - scheduled }
}

/// Counts and percentiles of a set of outcomes, as table cells.
private struct Summary {
    var answered = 0, tooMany = 0, failed = 0
    var throughput = "–"
    var latency: (p50: String, p99: String) = ("–", "–")
    var ttft: (p50: String, p99: String) = ("–", "–")
    var retryAfter = "–"
    var failures: [(key: String, value: Int)] = []

    /// Throughput: answers over `since` → `until` (default: the last answer).
    init(_ outcomes: [Outcome], since: Double, until: Double? = nil) {
        let answers = outcomes.filter { $0.kind == .answered }
        answered = answers.count
        tooMany = outcomes.filter { $0.kind == .tooMany }.count
        failed = outcomes.filter { $0.kind == .failed }.count
        if let end = until ?? answers.map(\.finished).max(), end > since, !answers.isEmpty {
            throughput = String(format: "%.2f", Double(answers.count) / (end - since))
        }
        latency = Self.percentiles(answers.map(\.latency))
        ttft = Self.percentiles(answers.compactMap { a in a.firstToken.map { t in t - a.scheduled } })
        let retries = Set(outcomes.compactMap(\.retryAfter))
        if !retries.isEmpty { retryAfter = retries.sorted().joined(separator: ",") + " s" }
        var counts: [String: Int] = [:]
        for o in outcomes where o.kind == .failed { counts[o.detail, default: 0] += 1 }
        failures = counts.sorted { $0.value > $1.value }.map { (key: $0.key, value: $0.value) }
    }

    static func percentiles(_ values: [Double]) -> (p50: String, p99: String) {
        guard !values.isEmpty else { return ("–", "–") }
        let sorted = values.sorted()
        let p50 = sorted[sorted.count / 2], p99 = sorted[min(sorted.count - 1, sorted.count * 99 / 100)]
        return (milliseconds(p50), milliseconds(p99))
    }

    static func milliseconds(_ s: Double) -> String {
        s >= 10 ? String(format: "%.1f s", s) : String(format: "%.0f ms", s * 1e3)
    }
}

// MARK: - A minimal HTTP/1.1 client

/// One request per connection to 127.0.0.1:port (`Connection: close`), over POSIX sockets; responses with a
/// Content-Length, chunked ones, or ones that end at the close.
private struct HTTPClient {
    let port: Int
    let timeout: Double

    /// POSTs a streaming chat completion and follows its server-sent events to `data: [DONE]`.
    func chatCompletion(_ body: [UInt8], scheduled: Double) -> Outcome {
        var outcome = Outcome(kind: .failed, status: 0, scheduled: scheduled, finished: 0, firstToken: nil, retryAfter: nil, detail: "")
        let head = "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nContent-Type: application/json\r\n"
            + "Accept: text/event-stream\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        var events = EventStream()
        let result = exchange(Array(head.utf8) + body) { status, bytes in
            guard status == 200 else { return true }
            return events.feed(bytes, outcome: &outcome)
        }
        outcome.finished = monotonicSeconds()
        switch result {
        case .failure(let error):
            outcome.detail = error.description
        case .success(let response):
            outcome.status = response.status
            if response.status == 429 {
                outcome.kind = .tooMany
                outcome.retryAfter = response.headers["retry-after"] ?? "none"
                outcome.detail = "HTTP 429"
            } else if response.status != 200 {
                outcome.detail = "HTTP \(response.status)"
                if let code = Self.errorCode(response.body) { outcome.detail += " \(code)" }
            } else if let error = events.error {
                outcome.detail = "error event in the stream: \(error)"
            } else if let done = events.done {
                outcome.kind = .answered
                outcome.finished = done
            } else {
                outcome.detail = "the stream ended without data: [DONE]"
            }
        }
        return outcome
    }

    func get(_ path: String) -> (Int, String) {
        let head = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n\r\n"
        switch exchange(Array(head.utf8), streaming: nil) {
        case .failure(let error): return (0, error.description)
        case .success(let response): return (response.status, String(decoding: response.body, as: UTF8.self))
        }
    }

    struct Response {
        var status: Int
        var headers: [String: String]
        var body: [UInt8]
    }

    /// Sends `request` on a fresh connection and reads the response. `streaming`, if given, is handed the status
    /// and each piece of the decoded body as it comes (then not kept in `body`); returning false ends the read.
    private func exchange(_ request: [UInt8], streaming: ((Int, [UInt8]) -> Bool)?) -> Result<Response, BenchHTTPFailure> {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return .failure(BenchHTTPFailure("socket: \(String(cString: strerror(errno)))")) }
        defer { close(fd) }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let deadline = monotonicSeconds() + timeout
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port)).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return .failure(BenchHTTPFailure("connect: \(String(cString: strerror(errno)))")) }
        func setTimeout(_ option: Int32) -> Bool {
            let left = max(0.001, deadline - monotonicSeconds())
            var tv = timeval(tv_sec: Int(left), tv_usec: Int((left - left.rounded(.down)) * 1e6))
            return setsockopt(fd, SOL_SOCKET, option, &tv, socklen_t(MemoryLayout<timeval>.size)) == 0
        }
        _ = setTimeout(SO_SNDTIMEO)
        var offset = 0
        while offset < request.count {
            let n = request[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return .failure(BenchHTTPFailure("send: \(n == 0 ? "closed" : String(cString: strerror(errno)))")) }
            offset += n
        }

        var buffer: [UInt8] = []
        var response: Response?
        var headerEnd = 0
        var length: Int?
        var chunked = false
        var chunks = ChunkDecoder()
        var bodySeen = 0
        var piece = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            guard monotonicSeconds() < deadline, setTimeout(SO_RCVTIMEO) else {
                return .failure(BenchHTTPFailure("timed out after \(Int(timeout)) s"))
            }
            let n = piece.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { return .failure(BenchHTTPFailure("timed out after \(Int(timeout)) s")) }
                return .failure(BenchHTTPFailure("recv: \(String(cString: strerror(errno)))"))
            }
            let closed = n == 0
            var fresh = Array(piece[0..<n])
            if response == nil {
                buffer += fresh
                guard let end = Self.find([13, 10, 13, 10], in: buffer) else {
                    if closed { return .failure(BenchHTTPFailure(buffer.isEmpty ? "closed before a response" : "closed inside the headers")) }
                    continue
                }
                headerEnd = end + 4
                guard let parsed = Self.parseHead(Array(buffer[0..<end])) else {
                    return .failure(BenchHTTPFailure("bad status line: \(String(decoding: buffer.prefix(80), as: UTF8.self))"))
                }
                response = parsed
                chunked = parsed.headers["transfer-encoding"]?.lowercased().contains("chunked") ?? false
                length = parsed.headers["content-length"].flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }
                fresh = Array(buffer[headerEnd...])
                buffer = []
            }
            var decoded: [UInt8]
            var complete = false
            if chunked {
                guard let out = chunks.feed(fresh) else { return .failure(BenchHTTPFailure("bad chunked encoding")) }
                decoded = out
                complete = chunks.finished
            } else {
                decoded = fresh
                bodySeen += fresh.count
                if let length, bodySeen >= length {
                    decoded = Array(decoded.prefix(decoded.count - (bodySeen - length)))
                    complete = true
                }
            }
            if let streaming {
                if !streaming(response!.status, decoded) { return .success(response!) }
                if response!.status != 200 { response!.body += decoded }
            } else {
                response!.body += decoded
            }
            if complete || (closed && !chunked && length == nil) { return .success(response!) }
            if closed { return chunked ? .failure(BenchHTTPFailure("closed inside a chunked body")) : .failure(BenchHTTPFailure("closed before Content-Length")) }
        }
    }

    private static func parseHead(_ bytes: [UInt8]) -> Response? {
        let lines = String(decoding: bytes, as: UTF8.self).components(separatedBy: "\r\n")
        let status = lines[0].split(separator: " ")
        guard status.count >= 2, status[0].hasPrefix("HTTP/1."), let code = Int(status[1]) else { return nil }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return Response(status: code, headers: headers, body: [])
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int = 0) -> Int? {
        guard haystack.count >= needle.count + start else { return nil }
        for i in start...(haystack.count - needle.count) where haystack[i] == needle[0] {
            if Array(haystack[i..<(i + needle.count)]) == needle { return i }
        }
        return nil
    }

    private static func errorCode(_ body: [UInt8]) -> String? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
              let error = object["error"] as? [String: Any] else { return nil }
        return (error["code"] as? String) ?? (error["type"] as? String)
    }
}

/// Undoes `Transfer-Encoding: chunked` as bytes come.
private struct ChunkDecoder {
    private var pending: [UInt8] = []
    private var left = 0  // data bytes of the current chunk still to come
    private var needCRLF = false  // the CRLF after a chunk's data
    private(set) var finished = false

    /// The data bytes in `bytes` (with what was held back), or nil on a malformed stream.
    mutating func feed(_ bytes: [UInt8]) -> [UInt8]? {
        pending += bytes
        var out: [UInt8] = []
        var i = 0
        while !finished {
            if left > 0 {
                let take = min(left, pending.count - i)
                if take == 0 { break }
                out += pending[i..<(i + take)]
                i += take
                left -= take
                if left == 0 { needCRLF = true }
                continue
            }
            if needCRLF {
                guard pending.count - i >= 2 else { break }
                guard pending[i] == 13, pending[i + 1] == 10 else { return nil }
                i += 2
                needCRLF = false
                continue
            }
            guard let end = HTTPClient.find([13, 10], in: pending, from: i) else { break }
            let line = String(decoding: pending[i..<end], as: UTF8.self)
            let hex = line.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
            guard let size = Int(hex, radix: 16), size >= 0 else { return nil }
            i = end + 2
            if size == 0 { finished = true } else { left = size }
        }
        pending.removeFirst(i)
        return out
    }
}

/// Server-sent events of a chat completion stream: the first non-empty content, `[DONE]`, an error event.
private struct EventStream {
    private var pending: [UInt8] = []
    private(set) var done: Double?
    private(set) var error: String?

    /// Takes decoded body bytes; false once `[DONE]` has come (nothing more to read).
    mutating func feed(_ bytes: [UInt8], outcome: inout Outcome) -> Bool {
        pending += bytes
        var start = 0
        while let newline = pending[start...].firstIndex(of: 10) {
            var line = pending[start..<newline]
            start = newline + 1
            if line.last == 13 { line = line.dropLast() }
            guard line.starts(with: Array("data:".utf8)) else { continue }
            var payload = line.dropFirst(5)
            if payload.first == 32 { payload = payload.dropFirst() }
            if payload.elementsEqual(Array("[DONE]".utf8)) {
                done = monotonicSeconds()
                return false
            }
            guard let object = try? JSONSerialization.jsonObject(with: Data(payload)) as? [String: Any] else { continue }
            if let failure = object["error"] as? [String: Any] {
                error = (failure["code"] as? String) ?? (failure["message"] as? String) ?? "error"
                continue
            }
            if outcome.firstToken == nil, let choices = object["choices"] as? [[String: Any]],
               let delta = choices.first?["delta"] as? [String: Any], let content = delta["content"] as? String,
               !content.isEmpty {
                outcome.firstToken = monotonicSeconds()
            }
        }
        pending.removeFirst(start)
        return true
    }
}

/// Seconds on the monotonic clock.
private func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// Why one benchmark exchange failed (a transport error, a malformed response).
struct BenchHTTPFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
