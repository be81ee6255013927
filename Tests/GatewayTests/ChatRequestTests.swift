// How a chat completion body becomes an ACCM request: OpenAI's fields, LLaVA's conversation layout, ACCM's
// knobs, and a 400 naming every parameter that cannot be used.

import ACCMMessages
@testable import Gateway
import Foundation
import XCTest

final class ChatRequestTests: XCTestCase {
    private func parse(_ body: [String: Any], limits: ChatRequestLimits = ChatRequestLimits()) throws -> ChatRequest {
        try ChatRequest.parse([UInt8](JSONSerialization.data(withJSONObject: body)), limits: limits)
    }

    private func refusal(_ body: [String: Any], limits: ChatRequestLimits = ChatRequestLimits()) -> APIError? {
        do {
            _ = try parse(body, limits: limits)
            return nil
        } catch {
            return error as? APIError
        }
    }

    func testAnImageQuestionBecomesAnACCMRequestWithTheGivenKnobs() throws {
        let chat = try parse(chat(extra: [
            "max_tokens": 20, "temperature": 0.5, "top_p": 0.9, "seed": 7, "stop": ["\n"], "stream": true,
            "stream_options": ["include_usage": true],
            "accm": ["visual_tokens": 4, "pruner": "uniform", "caption": false, "return_candidates": true],
        ]))
        let request = chat.request
        XCTAssertEqual(request.question, "What color is the cross?")
        guard case .encoded(let bytes)? = request.image else { return XCTFail("no image") }
        XCTAssertEqual(bytes, [0x89, 0x50, 0x4E, 0x47, 1, 2, 3])
        XCTAssertEqual(request.budget, 4)
        XCTAssertEqual(request.pruning, .uniform)
        XCTAssertFalse(request.compensate)
        XCTAssertEqual(request.generation.maxNewTokens, 20)
        XCTAssertEqual(request.generation.sampling, SamplingOptions(temperature: 0.5, topP: 0.9, seed: 7))
        XCTAssertEqual(request.generation.stopStrings, ["\n"])
        XCTAssertTrue(chat.stream && chat.includeUsage && chat.returnCandidates)
        XCTAssertFalse(chat.returnTimings)
        XCTAssertEqual(request.conversation, .single)
    }

    func testDefaultsAreOpenAIsAndTheGatewaysBudget() throws {
        let chat = try parse(chat(), limits: ChatRequestLimits(defaultVisualTokens: 9, defaultMaxTokens: 33))
        XCTAssertEqual(chat.request.budget, 9)
        XCTAssertEqual(chat.request.pruning, .accm(ranking: .mostSimilar, cap: .byScore, textPicks: nil))
        XCTAssertTrue(chat.request.compensate)
        XCTAssertEqual(chat.request.generation.maxNewTokens, 33)
        XCTAssertEqual(chat.request.generation.sampling.temperature, 1)  // OpenAI's default
        XCTAssertFalse(chat.stream)
    }

    func testMaxCompletionTokensWinsOverMaxTokens() throws {
        XCTAssertEqual(try parse(chat(extra: ["max_tokens": 5, "max_completion_tokens": 9])).request.generation.maxNewTokens, 9)
    }

    func testSystemTextAndEarlierExchangesFormTheConversationWithTheImageInItsTurn() throws {
        let body: [String: Any] = ["messages": [
            ["role": "system", "content": "Be brief."],
            ["role": "user", "content": [["type": "image_url", "image_url": ["url": imageURL]], ["type": "text", "text": "What is this?"]]],
            ["role": "assistant", "content": "A cross."],
            ["role": "user", "content": "What color is it?"],
        ]]
        let request = try parse(body).request
        XCTAssertEqual(request.question, "What color is it?")
        XCTAssertEqual(request.conversation, Conversation(
            system: "Be brief.", history: [Exchange(user: "What is this?", assistant: "A cross.")], imageTurn: 0))
        XCTAssertNotNil(request.image)
    }

    func testConsecutiveMessagesOfOneRoleReadAsOne() throws {
        let request = try parse(["messages": [["role": "user", "content": "First line."], ["role": "user", "content": "Second?"]]]).request
        XCTAssertEqual(request.question, "First line.\nSecond?")
        XCTAssertNil(request.image)
    }

    func testATextOnlyRequestCarriesNoImage() throws {
        XCTAssertNil(try parse(chat(image: false)).request.image)
    }

    func testUnsupportedParametersAreRefusedByName() {
        for (extra, param) in [(["n": 2], "n"), (["tools": []], "tools"), (["logprobs": true], "logprobs"),
                               (["response_format": ["type": "json_object"]], "response_format"),
                               (["presence_penalty": 0.5], "presence_penalty"), (["frobnicate": 1], "frobnicate")] as [([String: Any], String)] {
            let error = refusal(chat(extra: extra))
            XCTAssertEqual(error?.status, .badRequest, "\(extra)")
            XCTAssertEqual(error?.param, param, "\(extra)")
            XCTAssertTrue(error?.message.contains(param) ?? false, error?.message ?? "accepted \(extra)")
        }
    }

    func testTheirHarmlessDefaultsAreAccepted() throws {
        XCTAssertNoThrow(try parse(chat(extra: ["n": 1, "logprobs": false, "presence_penalty": 0, "frequency_penalty": 0, "user": "u1"])))
    }

    func testFieldsOfTheWrongTypeOrRangeAreRefusedByName() {
        for (extra, param) in [(["temperature": "hot"], "temperature"), (["temperature": 3], "temperature"),
                               (["max_tokens": 0], "max_tokens"), (["max_tokens": 2.5], "max_tokens"),
                               (["top_p": 0], "top_p"), (["stream": "yes"], "stream"),
                               (["accm": ["visual_tokens": 0]], "accm.visual_tokens"),
                               (["accm": ["pruner": "magic"]], "accm.pruner"), (["accm": ["budget": 3]], "accm.budget"),
                               (["stream_options": ["include_usage": true]], "stream_options")] as [([String: Any], String)] {
            let error = refusal(chat(extra: extra))
            XCTAssertEqual(error?.status, .badRequest, "\(extra)")
            XCTAssertEqual(error?.param, param, "\(extra): \(error?.message ?? "accepted")")
        }
    }

    func testOneImagePerRequest() {
        var body = chat()
        body["messages"] = [["role": "user", "content": [
            ["type": "text", "text": "Compare"], ["type": "image_url", "image_url": ["url": imageURL]],
            ["type": "image_url", "image_url": ["url": imageURL]]]]]
        let error = refusal(body)
        XCTAssertEqual(error?.code, "too_many_images")
        XCTAssertTrue(error?.message.contains("at most 1") ?? false)
    }

    func testImageURLsAreFetchedOnlyFromAllowedHosts() throws {
        var body = chat(image: false)
        body["messages"] = [["role": "user", "content": [
            ["type": "text", "text": "What?"], ["type": "image_url", "image_url": ["url": "https://example.com/a.png"]]]]]
        XCTAssertEqual(refusal(body)?.code, "image_url_not_allowed")
        XCTAssertTrue(refusal(body)?.message.contains("data URL") ?? false)
        XCTAssertEqual(refusal(body, limits: ChatRequestLimits(allowedImageHosts: ["images.internal"]))?.code, "image_url_not_allowed")
        let allowed = try parse(body, limits: ChatRequestLimits(allowedImageHosts: ["example.com"]))
        XCTAssertEqual(allowed.imageURL?.absoluteString, "https://example.com/a.png")
    }

    func testBadDataURLsAndOversizedImagesAreRefused() {
        func with(url: String) -> [String: Any] {
            ["messages": [["role": "user", "content": [["type": "text", "text": "What?"], ["type": "image_url", "image_url": ["url": url]]]]]]
        }
        XCTAssertEqual(refusal(with(url: "data:image/gif;base64,R0lG"))?.code, "invalid_image")
        XCTAssertEqual(refusal(with(url: "data:image/png,rawbytes"))?.code, "invalid_image")
        XCTAssertEqual(refusal(with(url: "data:image/png;base64,@@@@"))?.code, "invalid_image")
        let big = "data:image/png;base64," + Data(count: 4000).base64EncodedString()
        XCTAssertEqual(refusal(with(url: big), limits: ChatRequestLimits(maxImageBytes: 1000))?.code, "image_too_large")
    }

    func testTheConversationMustEndWithTheUsersQuestion() {
        XCTAssertEqual(refusal(["messages": [["role": "user", "content": "Hi"], ["role": "assistant", "content": "Hello"]]])?.param, "messages")
        XCTAssertEqual(refusal(["messages": [["role": "assistant", "content": "Hello"], ["role": "user", "content": "Hi"]]])?.param, "messages")
        XCTAssertEqual(refusal(["messages": []])?.param, "messages")
        XCTAssertEqual(refusal(["messages": [["role": "tool", "content": "x"]]])?.param, "messages[0].role")
    }

    func testNotJSONIsRefused() {
        XCTAssertThrowsError(try ChatRequest.parse(Array("{bad".utf8), limits: ChatRequestLimits())) { error in
            XCTAssertEqual((error as? APIError)?.code, "invalid_json")
        }
        XCTAssertThrowsError(try ChatRequest.parse(Array("[1]".utf8), limits: ChatRequestLimits()))
    }
}
