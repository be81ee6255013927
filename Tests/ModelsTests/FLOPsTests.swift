import Foundation
import Models
import XCTest

/// The analytic counts against the figures Scripts/bench_engine_torch.py derives independently from the
/// PyTorch modules (same convention: 2·rows·in·out per linear map, 4·heads·headDim per attention pair).
final class FLOPsTests: XCTestCase {
    private func config<T: Decodable>(_ type: T.Type, _ fields: [String: Any]) throws -> T {
        try JSONDecoder().decode(type, from: JSONSerialization.data(withJSONObject: fields))
    }

    func testViTL14At336CountsAsThePyTorchBaselineDoes() throws {
        let vit = try config(CLIPTowerConfiguration.self, [
            "hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16,
            "image_size": 336, "patch_size": 14,
        ])
        XCTAssertEqual(vit.visionFLOPs(images: 1), 381_918_216_192)
    }

    func testGPT2PrefillAndDecodeCountAsThePyTorchBaselineDoes() throws {
        let gpt2 = try config(GPT2Configuration.self, [:])
        XCTAssertEqual(gpt2.flops(newTokens: 64, cached: 0, logitRows: 64), 15_888_777_216)
        XCTAssertEqual(gpt2.flops(newTokens: 1, cached: 64, logitRows: 1), 249_460_224)
        XCTAssertEqual(gpt2.decodeWeightBytes, 494_128_128)
    }

    func testLlama7BLayerCountsAsThePyTorchBaselineDoes() throws {
        let layer = try config(LlamaConfiguration.self, [
            "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 1, "num_attention_heads": 32,
            "num_key_value_heads": 32, "vocab_size": 32,
        ])
        XCTAssertEqual(layer.flops(newTokens: 640, cached: 0, logitRows: 0), 262_400_901_120)
        XCTAssertEqual(layer.flops(newTokens: 1, cached: 640, logitRows: 0), 415_252_480)
        XCTAssertEqual(layer.decodeWeightBytes(withHead: false), 809_500_672)
    }

    func testCausalPairsCountEveryVisibleKey() {
        XCTAssertEqual(FLOPs.causalPairs(newTokens: 3, cached: 0), 6)
        XCTAssertEqual(FLOPs.causalPairs(newTokens: 1, cached: 10), 11)
    }
}
