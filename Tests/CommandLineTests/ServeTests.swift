import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// `accm serve` on the shipped model, as its users meet it: curl, the official `openai` Python package, the
/// playground in headless Chromium, `promtool check metrics` and a real Prometheus server scraping it. The
/// answers through HTTP are the embedded pipeline's (`accm ask`), token for token. Each outside tool is
/// skipped, saying why, where it is missing, except under CI (CI set), where that fails.
final class ServeTests: XCTestCase {
    private static let image = Accm.root.appendingPathComponent("Training/test/images/00000.png").path
    private static let question = "What color is the cross?"

    /// `accm serve --port 0`, once it is ready; its port.
    private func serve(_ extra: [String] = []) throws -> (BackgroundProcess, Int) {
        let process = try BackgroundProcess(["serve", "--port", "0"] + extra)
        XCTAssertTrue(process.waitFor("serving ", timeout: 120), "accm serve did not start:\n\(process.output)")
        let line = process.output.split(separator: "\n").first { $0.hasPrefix("serving ") } ?? ""
        guard let url = line.split(separator: " ").first(where: { $0.hasPrefix("http://") }),
              let port = Int(url.split(separator: ":").last?.trimmingCharacters(in: CharacterSet(charactersIn: "/")) ?? "") else {
            XCTFail("no port in \(line)")
            throw XCTSkip("no server")
        }
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, (try? curl(["-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(port)/health"])) != "200" {
            usleep(100_000)
        }
        return (process, port)
    }

    private func curl(_ arguments: [String]) throws -> String {
        let result = try Accm.run(["curl", "-sS", "--max-time", "60"] + arguments, executable: "/usr/bin/env", timeout: 90)
        guard result.status == 0 else { throw NSError(domain: "curl", code: Int(result.status ?? -1), userInfo: [NSLocalizedDescriptionKey: result.stderr]) }
        return result.stdout
    }

    /// Fails under CI, skips elsewhere, when `check` (a shell command) does not succeed.
    private func require(_ tool: String, _ check: String) throws {
        let probe = try Accm.run(["bash", "-c", check], executable: "/usr/bin/env", timeout: 60)
        guard probe.status != 0 else { return }
        if ProcessInfo.processInfo.environment["CI"] != nil {
            XCTFail("\(tool) is needed (installed by .ci/run); CI is set, so this is a failure: \(probe.stderr)")
        }
        throw XCTSkip("\(tool) is missing: skipped")
    }

    private func embeddedAnswer() throws -> [String: Any] {
        let ask = try Accm.run(["ask", "--image", Self.image, "--keep", "4", "--max-tokens", "16", "--json", Self.question])
        XCTAssertEqual(ask.status, 0, ask.stderr)
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(ask.stdout.utf8)) as? [String: Any])
    }

    private func chatBody(stream: Bool) throws -> String {
        let image = try Data(contentsOf: URL(fileURLWithPath: Self.image)).base64EncodedString()
        let body: [String: Any] = [
            "messages": [["role": "user", "content": [
                ["type": "text", "text": Self.question], ["type": "image_url", "image_url": ["url": "data:image/png;base64," + image]]]]],
            "temperature": 0, "max_tokens": 16, "stream": stream, "accm": ["visual_tokens": 4, "return_candidates": true],
        ]
        return String(decoding: try JSONSerialization.data(withJSONObject: body), as: UTF8.self)
    }

    func testCurlGetsTheEmbeddedPipelinesAnswerPlainAndStreamed() throws {
        let (server, port) = try serve()
        defer { server.stop() }
        let expected = try embeddedAnswer()
        let url = "http://127.0.0.1:\(port)/v1/chat/completions"
        let plain = try curl(["-H", "Content-Type: application/json", "-d", try chatBody(stream: false), url])
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(plain.utf8)) as? [String: Any], plain)
        let message = ((json["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String
        XCTAssertEqual(message, expected["answer"] as? String)
        let accm = try XCTUnwrap(json["accm"] as? [String: Any])
        XCTAssertEqual(accm["kept_patches"] as? [Int], expected["keptIndices"] as? [Int])
        XCTAssertEqual(accm["caption"] as? String, expected["caption"] as? String)
        XCTAssertEqual((accm["candidates"] as? [[String: Any]])?.map { $0["text"] as? String },
                       (expected["candidates"] as? [[String: Any]])?.map { $0["text"] as? String })

        let streamed = try curl(["-N", "-H", "Content-Type: application/json", "-d", try chatBody(stream: true), url])
        let events = streamed.components(separatedBy: "\n\n").compactMap { $0.hasPrefix("data: ") ? String($0.dropFirst(6)) : nil }
        XCTAssertEqual(events.last, "[DONE]", streamed)
        let text = events.dropLast().compactMap { event -> String? in
            let chunk = (try? JSONSerialization.jsonObject(with: Data(event.utf8))) as? [String: Any]
            return ((chunk?["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any])?["content"] as? String
        }.joined()
        XCTAssertEqual(text, expected["answer"] as? String)

        // Bad input costs that request a 400 naming the problem; the server goes on.
        let bad = try curl(["-H", "Content-Type: application/json", "-d", #"{"messages":[{"role":"user","content":"hi"}],"n":3}"#, url])
        XCTAssertTrue(bad.contains("\"param\":\"n\""), bad)
        XCTAssertEqual(try curl(["-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(port)/health"]), "200")
    }

    func testTheOfficialOpenAIClientWorksPlainStreamedWithAnImageAndWithErrors() throws {
        try require("python3 with the openai package (pip install openai)", "python3 -c 'import openai'")
        let (server, port) = try serve()
        defer { server.stop() }
        let expected = try embeddedAnswer()
        let script = Accm.root.appendingPathComponent("Tests/Clients/openai_check.py").path
        let run = try Accm.run(["python3", script, "--base-url", "http://127.0.0.1:\(port)/v1", "--image", Self.image,
                                "--question", Self.question], executable: "/usr/bin/env", timeout: 180)
        XCTAssertEqual(run.status, 0, run.stdout + run.stderr)
        let seen = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any], run.stdout)
        print("openai client: \(run.stdout)")
        let plain = try XCTUnwrap(seen["plain"] as? [String: Any])
        XCTAssertEqual(plain["text"] as? String, expected["answer"] as? String)
        XCTAssertEqual(plain["kept_patches"] as? [Int], expected["keptIndices"] as? [Int])
        XCTAssertEqual((seen["stream"] as? [String: Any])?["text"] as? String, expected["answer"] as? String)
        XCTAssertEqual((seen["stream"] as? [String: Any])?["finish_reason"] as? String, "stop")
        XCTAssertEqual((seen["text_only"] as? [String: Any])?["visual_tokens_kept"] as? Int, 0)
        let errors = try XCTUnwrap(seen["errors"] as? [String: [String: Any]])
        XCTAssertEqual(errors["n"]?["status"] as? Int, 400)
        XCTAssertEqual(errors["n"]?["param"] as? String, "n")
        XCTAssertTrue((errors["image"]?["message"] as? String)?.contains("JPEG or PNG") ?? false, "\(errors)")
        XCTAssertEqual(errors["model"]?["status"] as? Int, 404)
    }

    func testThePlaygroundInHeadlessChromiumShowsTheAnswerTheKeptPatchesAndTheChosenCaption() throws {
        try require("Chromium and Playwright (apt-get install chromium; pip install playwright)",
                    "command -v chromium && python3 -c 'import playwright'")
        let (server, port) = try serve()
        defer { server.stop() }
        let expected = try embeddedAnswer()
        let screenshot = FileManager.default.temporaryDirectory.appendingPathComponent("accm-playground.png").path
        let script = Accm.root.appendingPathComponent("Tests/Browser/playground_check.py").path
        let run = try Accm.run(["python3", script, "--url", "http://127.0.0.1:\(port)/", "--image", Self.image,
                                "--question", Self.question, "--budget", "4", "--max-tokens", "16", "--screenshot", screenshot],
                               executable: "/usr/bin/env", timeout: 180)
        XCTAssertEqual(run.status, 0, run.stdout + run.stderr)
        print("playground: \(run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)); screenshot: \(screenshot)")
        let shown = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any], run.stdout)
        XCTAssertEqual(shown["status"] as? String, "done")
        XCTAssertEqual(shown["answer"] as? String, expected["answer"] as? String)
        XCTAssertEqual(shown["kept_patches"] as? Int, (expected["keptIndices"] as? [Int])?.count)
        XCTAssertEqual(shown["chosen_caption"] as? String, expected["caption"] as? String)
        XCTAssertEqual(shown["candidates"] as? Int, (expected["candidates"] as? [Any])?.count)
    }

    func testMetricsPassPromtoolAndARealPrometheusScrapesThem() throws {
        try require("promtool and prometheus (apt-get install prometheus)", "command -v promtool && command -v prometheus")
        // Names as promtool's lint wants them (it reserves colons for recording rules) …
        let (linted, lintedPort) = try serve(["--metric-prefix", "accm_"])
        let scratch = try ScratchDirectory()
        let exposition = scratch.path("metrics.txt")
        _ = try curl(["-N", "-H", "Content-Type: application/json", "-d", try chatBody(stream: true),
                      "http://127.0.0.1:\(lintedPort)/v1/chat/completions"])
        try curl(["http://127.0.0.1:\(lintedPort)/metrics"]).write(toFile: exposition, atomically: true, encoding: .utf8)
        linted.stop()
        let lint = try Accm.run(["bash", "-c", "promtool check metrics < \(exposition)"], executable: "/usr/bin/env", timeout: 60)
        XCTAssertEqual(lint.status, 0, "promtool check metrics:\n\(lint.stdout)\(lint.stderr)")
        XCTAssertTrue(try String(contentsOfFile: exposition, encoding: .utf8).contains("accm_requests_total{status=\"200\"} 1"))
        // … and by default as vLLM names its own (vllm:…): the only remark promtool makes is about that colon.
        let (server, port) = try serve()
        defer { server.stop() }
        let url = "http://127.0.0.1:\(port)/v1/chat/completions"
        let body = try chatBody(stream: true)
        for _ in 0..<3 { _ = try curl(["-N", "-H", "Content-Type: application/json", "-d", body, url]) }
        _ = try curl(["-H", "Content-Type: application/json", "-d", #"{"messages":[],"tools":[]}"#, url])

        try curl(["http://127.0.0.1:\(port)/metrics"]).write(toFile: exposition, atomically: true, encoding: .utf8)
        let colons = try Accm.run(["bash", "-c", "promtool check metrics < \(exposition)"], executable: "/usr/bin/env", timeout: 60)
        let remarks = (colons.stdout + colons.stderr).split(separator: "\n").filter { !$0.hasSuffix("metric names should not contain ':'") }
        XCTAssertEqual(remarks, [], "promtool check metrics found more than the colon:\n\(colons.stdout)\(colons.stderr)")

        let prometheusPort = freeLoopbackPort()
        let config = """
            global: {scrape_interval: 1s, evaluation_interval: 1s}
            scrape_configs:
              - job_name: accm
                static_configs: [{targets: ['127.0.0.1:\(port)']}]
            """
        try config.write(toFile: scratch.path("prometheus.yml"), atomically: true, encoding: .utf8)
        let prometheus = try BackgroundProcess([
            "--config.file=\(scratch.path("prometheus.yml"))", "--storage.tsdb.path=\(scratch.path("data"))",
            "--web.listen-address=127.0.0.1:\(prometheusPort)",
        ], executable: "/usr/bin/prometheus")
        defer { prometheus.stop() }
        let query = "sum(accm:requests_total{status=\"200\"})"
        var answered: Double?
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            if let reply = try? curl(["-G", "--data-urlencode", "query=\(query)", "http://127.0.0.1:\(prometheusPort)/api/v1/query"]),
               let json = (try? JSONSerialization.jsonObject(with: Data(reply.utf8))) as? [String: Any],
               let results = (json["data"] as? [String: Any])?["result"] as? [[String: Any]],
               let value = (results.first?["value"] as? [Any])?.last as? String {
                answered = Double(value)
                if answered == 3 { break }
            }
            usleep(500_000)
        }
        XCTAssertEqual(answered, 3, "Prometheus did not report the 3 answered requests:\n\(prometheus.output.suffix(2000))")
        let refused = try curl(["-G", "--data-urlencode", "query=accm:requests_total{status=\"400\"}",
                                "http://127.0.0.1:\(prometheusPort)/api/v1/query"])
        XCTAssertTrue(refused.contains("\"1\"]"), refused)
    }
}
