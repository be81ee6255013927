// The gateway as an HTTP client sees it, over a loopback socket, in front of a fake service: OpenAI's response
// and stream shapes, ACCM's report, errors with their statuses, keys, limits, health, metrics, one connection
// carrying request after request, and a client that goes away cancelling its request.

import ACCMMessages
import Foundation
import Gateway
import XCTest

final class GatewayHTTPTests: XCTestCase {
    func testAnAnswerHasOpenAIsShapeAndACCMsReport() async throws {
        let gateway = try await RunningGateway.start(FakeService())
        defer { gateway.stop() }
        let response = try await offPool {
            try HTTPTestClient.post(port: gateway.port, "/v1/chat/completions",
                                    json: chat(extra: ["accm": ["return_candidates": true, "return_timings": true]]))
        }
        XCTAssertEqual(response.status, 200, response.body)
        XCTAssertEqual(response.headers["content-type"], "application/json")
        let json = response.json
        XCTAssertEqual(json["object"] as? String, "chat.completion")
        XCTAssertEqual(json["model"] as? String, "fake-model")
        XCTAssertTrue((json["id"] as? String)?.hasPrefix("chatcmpl-") ?? false)
        let choice = try XCTUnwrap((json["choices"] as? [[String: Any]])?.first)
        XCTAssertEqual((choice["message"] as? [String: Any])?["content"] as? String, "green")
        XCTAssertEqual(choice["finish_reason"] as? String, "stop")
        let usage = try XCTUnwrap(json["usage"] as? [String: Any])
        XCTAssertEqual(usage["prompt_tokens"] as? Int, 40)
        XCTAssertEqual(usage["completion_tokens"] as? Int, 3)  // two tokens and the stop token
        XCTAssertEqual(usage["visual_tokens_kept"] as? Int, 4)
        XCTAssertEqual(usage["visual_tokens_dropped"] as? Int, 60)
        let accm = try XCTUnwrap(json["accm"] as? [String: Any])
        XCTAssertEqual(accm["kept_patches"] as? [Int], [3, 17, 40, 63])
        XCTAssertEqual(accm["grid"] as? [String: Int], ["rows": 8, "cols": 8])
        XCTAssertEqual(accm["caption"] as? String, "a green cross at the top")
        XCTAssertEqual(accm["chosen_candidate"] as? Int, 1)
        XCTAssertEqual((accm["candidates"] as? [[String: Any]])?.count, 2)
        XCTAssertEqual((accm["flops"] as? [String: Double])?["unpruned"], 9e8)
        XCTAssertEqual((accm["stage_seconds"] as? [String: Double])?["decoder"], 0.03)
    }

    func testAStreamIsOpenAIsChunksEndingWithDone() async throws {
        let gateway = try await RunningGateway.start(FakeService())
        defer { gateway.stop() }
        let response = try await offPool {
            try HTTPTestClient.post(port: gateway.port, "/v1/chat/completions",
                                    json: chat(extra: ["stream": true, "stream_options": ["include_usage": true]]))
        }
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.headers["content-type"], "text/event-stream")
        let events = response.events
        XCTAssertEqual(events.last, "[DONE]")
        let chunks = events.dropLast().map { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] ?? [:] }
        XCTAssertTrue(chunks.allSatisfy { $0["object"] as? String == "chat.completion.chunk" })
        let deltas = chunks.compactMap { (($0["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any]) }
        XCTAssertEqual(deltas.first?["role"] as? String, "assistant")
        XCTAssertEqual(deltas.compactMap { $0["content"] as? String }.joined(), "green")
        let finishing = chunks.filter { (($0["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String) != nil }
        XCTAssertEqual(finishing.count, 1)
        XCTAssertEqual((finishing[0]["accm"] as? [String: Any])?["kept_patches"] as? [Int], [3, 17, 40, 63])
        let usage = try XCTUnwrap(chunks.last)
        XCTAssertEqual((usage["choices"] as? [Any])?.count, 0)
        XCTAssertEqual((usage["usage"] as? [String: Any])?["total_tokens"] as? Int, 43)
    }

    func testStageErrorsGetTheirHTTPStatus() async throws {
        let cases: [(StageError, Int, String)] = [
            (StageError(.invalidRequest, "the question is empty", field: "question"), 400, "messages"),
            (StageError(.overloaded, "full", retryAfterMilliseconds: 2500), 429, ""),
            (StageError(.stageUnavailable, "no live vision worker"), 503, ""),
            (StageError(.deadlineExceeded, "too slow"), 504, ""),
            (StageError(.nonFinite, "NaN"), 500, ""),
        ]
        let service = FakeService()
        let gateway = try await RunningGateway.start(service)
        defer { gateway.stop() }
        for (error, status, param) in cases {
            service.script.withLock { $0.error = error }
            for stream in [false, true] {
                let response = try await offPool {
                    try HTTPTestClient.post(port: gateway.port, "/v1/chat/completions", json: chat(extra: ["stream": stream]))
                }
                XCTAssertEqual(response.status, status, "\(error.code) stream=\(stream)")
                let detail = try XCTUnwrap(response.json["error"] as? [String: Any], response.body)
                XCTAssertEqual(detail["message"] as? String, error.message)
                XCTAssertEqual(detail["code"] as? String, error.code.rawValue)
                if !param.isEmpty { XCTAssertEqual(detail["param"] as? String, param) }
                if status == 429 { XCTAssertEqual(response.headers["retry-after"], "3") }
            }
        }
    }

    func testAKeyIsNeededWhenKeysAreSet() async throws {
        let gateway = try await RunningGateway.start(FakeService(), options: GatewayOptions(apiKeys: APIKeys(["k-1", "k-2"])))
        defer { gateway.stop() }
        for headers in [[:], ["Authorization": "Bearer wrong"], ["Authorization": "k-1"]] {
            let response = try await offPool {
                try HTTPTestClient.post(port: gateway.port, "/v1/chat/completions", json: chat(), headers: headers)
            }
            XCTAssertEqual(response.status, 401, "\(headers)")
            XCTAssertEqual((response.json["error"] as? [String: Any])?["code"] as? String, "invalid_api_key")
        }
        let models = try await offPool { try HTTPTestClient.get(port: gateway.port, "/v1/models") }
        XCTAssertEqual(models.status, 401)
        let ok = try await offPool {
            try HTTPTestClient.post(port: gateway.port, "/v1/chat/completions", json: chat(), headers: ["Authorization": "Bearer k-2"])
        }
        XCTAssertEqual(ok.status, 200)
        let health = try await offPool { try HTTPTestClient.get(port: gateway.port, "/health") }
        XCTAssertEqual(health.status, 200, "health needs no key (probes)")
    }

    func testABodyOverTheLimitIs413() async throws {
        let gateway = try await RunningGateway.start(FakeService(), options: GatewayOptions(maxBodyBytes: 4096))
        defer { gateway.stop() }
        let response = try await offPool {
            try HTTPTestClient.post(port: gateway.port, "/v1/chat/completions", json: chat(String(repeating: "x", count: 5000)))
        }
        XCTAssertEqual(response.status, 413)
        XCTAssertTrue(((response.json["error"] as? [String: Any])?["message"] as? String)?.contains("4096") ?? false)
    }

    func testBadJSONAndAnUnknownModelAreRefused() async throws {
        let gateway = try await RunningGateway.start(FakeService())
        defer { gateway.stop() }
        let bad = try await offPool {
            try HTTPTestClient.request(port: gateway.port, "POST", "/v1/chat/completions", body: Array("{nope".utf8))
        }
        XCTAssertEqual(bad.status, 400)
        let unknown = try await offPool {
            try HTTPTestClient.post(port: gateway.port, "/v1/chat/completions", json: chat(extra: ["model": "gpt-4o"]))
        }
        XCTAssertEqual(unknown.status, 404)
        XCTAssertEqual((unknown.json["error"] as? [String: Any])?["code"] as? String, "model_not_found")
    }

    func testHealthIsReadyOnlyWhenEveryStageHasAReplica() async throws {
        let service = FakeService()
        let gateway = try await RunningGateway.start(service)
        defer { gateway.stop() }
        let ready = try await offPool { try HTTPTestClient.get(port: gateway.port, "/health") }
        XCTAssertEqual(ready.status, 200)
        XCTAssertEqual(ready.json["status"] as? String, "ready")
        service.health.withLock { $0.stages[.caption] = .init(replicas: 0) }
        let notReady = try await offPool { try HTTPTestClient.get(port: gateway.port, "/health") }
        XCTAssertEqual(notReady.status, 503)
        XCTAssertEqual(((notReady.json["stages"] as? [String: Any])?["caption"] as? [String: Any])?["ready"] as? Bool, false)
        XCTAssertEqual(((notReady.json["stages"] as? [String: Any])?["vision"] as? [String: Any])?["ready"] as? Bool, true)
    }

    func testModelsListsTheServedModel() async throws {
        let gateway = try await RunningGateway.start(FakeService())
        defer { gateway.stop() }
        let response = try await offPool { try HTTPTestClient.get(port: gateway.port, "/v1/models") }
        XCTAssertEqual(((response.json["data"] as? [[String: Any]])?.first)?["id"] as? String, "fake-model")
    }

    func testMetricsCountRequestsTokensAndTheClustersState() async throws {
        let service = FakeService()
        let gateway = try await RunningGateway.start(service)
        defer { gateway.stop() }
        for _ in 0..<3 {
            _ = try await offPool { try HTTPTestClient.post(port: gateway.port, "/v1/chat/completions", json: chat(extra: ["stream": true])) }
        }
        _ = try await offPool { try HTTPTestClient.post(port: gateway.port, "/v1/chat/completions", json: chat(extra: ["n": 3])) }
        let metrics = try await offPool { try HTTPTestClient.get(port: gateway.port, "/metrics") }.body
        for line in ["accm:requests_total{status=\"200\"} 3", "accm:requests_total{status=\"400\"} 1",
                     "accm:generation_tokens_total 9", "accm:visual_tokens_kept_total 12", "accm:visual_tokens_dropped_total 180",
                     "accm:replicas{stage=\"decoder\"} 1", "accm:queue_depth{stage=\"vision\"} 2",
                     "accm:time_to_first_token_seconds_count 3", "accm:inter_token_latency_seconds_count 3",
                     "accm:stage_latency_seconds_count{stage=\"caption\"} 3", "accm:queue_wait_seconds_count{stage=\"decoder\"} 3",
                     "accm:flops_saved_total 7.5e+08"] {
            let (name, value) = (line[..<line.lastIndex(of: " ")!], line[line.index(after: line.lastIndex(of: " ")!)...])
            let found = metrics.split(separator: "\n").first { $0.hasPrefix(name + " ") }
            XCTAssertNotNil(found, "no \(name) in\n\(metrics)")
            if let found { XCTAssertEqual(Double(found.split(separator: " ").last!), Double(value), String(found)) }
        }
    }

    func testAClientThatGoesAwayCancelsItsRequest() async throws {
        let service = FakeService(FakeService.Script(pieces: ["a", "b", "c", "d"], pause: .seconds(2)))
        let gateway = try await RunningGateway.start(service)
        defer { gateway.stop() }
        let port = gateway.port
        for stream in [false, true] {
            let before = service.cancellations.load(ordering: .relaxed)
            try await offPool {
                let fd = try HTTPTestClient.connect(port: port)
                let body = try JSONSerialization.data(withJSONObject: chat(extra: ["stream": stream]))
                HTTPTestClient.send(fd, method: "POST", path: "/v1/chat/completions", headers: ["Content-Type": "application/json"],
                                    body: [UInt8](body))
                usleep(300_000)
                close(fd)  // gone before the first text
            }
            let deadline = ContinuousClock.now + .seconds(8)
            while service.cancellations.load(ordering: .relaxed) == before, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
            }
            XCTAssertEqual(service.cancellations.load(ordering: .relaxed), before + 1, "stream=\(stream): not cancelled")
        }
        // The gateway goes on answering others.
        service.script.withLock { $0 = FakeService.Script() }
        let response = try await offPool { try HTTPTestClient.post(port: port, "/v1/chat/completions", json: chat()) }
        XCTAssertEqual(response.status, 200)
    }

    /// Pooling clients (the openai package's httpx, browsers) send their next request on the connection the last
    /// one came back on. Every chat completion used to close its connection after the response (with no
    /// `Connection: close`), so a client that reused it in time saw "Server disconnected without sending a
    /// response": answers, streams and refusals alike now leave it open for the next request.
    func testOneConnectionCarriesRequestAfterRequest() async throws {
        let gateway = try await RunningGateway.start(FakeService())
        defer { gateway.stop() }
        let path = "/v1/chat/completions"
        let (responses, leftOpen) = try await offPool {
            try HTTPTestClient.keepAlive(port: gateway.port, [
                try .post(path, json: chat()),
                try .post(path, json: chat(extra: ["stream": true])),
                try .post(path, json: chat(image: false)),
                try .post(path, json: chat(extra: ["n": 2])),
                try .post(path, json: ["model": "no-such-model", "messages": [["role": "user", "content": "hi"]]]),
                try .post(path, json: chat()),
                .get("/v1/models"),
            ])
        }
        XCTAssertEqual(responses.map(\.status), [200, 200, 200, 400, 404, 200, 200], responses.map(\.body).joined(separator: "\n"))
        XCTAssertEqual(responses[1].events.last, "[DONE]")
        XCTAssertEqual(responses[3].json["error"].flatMap { ($0 as? [String: Any])?["param"] as? String }, "n")
        XCTAssertTrue(responses.allSatisfy { $0.headers["connection"] != "close" }, "\(responses.map(\.headers))")
        XCTAssertTrue(leftOpen, "the server closed the connection after the last response")
    }

    func testThePlaygroundIsOneSelfContainedPage() async throws {
        let gateway = try await RunningGateway.start(FakeService())
        defer { gateway.stop() }
        let page = try await offPool { try HTTPTestClient.get(port: gateway.port, "/") }
        XCTAssertEqual(page.status, 200)
        XCTAssertEqual(page.headers["content-type"], "text/html; charset=utf-8")
        XCTAssertTrue(page.headers["content-security-policy"]?.contains("default-src 'none'") ?? false)
        XCTAssertTrue(page.body.contains("/v1/chat/completions"))
        for external in ["src=\"http", "href=\"http", "@import", "url(http"] {
            XCTAssertFalse(page.body.contains(external), "the page loads something from outside: \(external)")
        }
    }
}
