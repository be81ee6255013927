import Models
import Tensor
import Weights
import XCTest

/// Weights kept in their stored half-precision type compute what transformers computes in fp32 on the same
/// rounded weights (within the parity tolerance, 1e-4); int8/int4 weights made at load stay near it, and
/// how near is printed for each fixture; int8/int4 prefill computes in integers what their decode computes.
final class WeightFormatParityTests: XCTestCase {
    private func sequences(_ fixture: Fixture) throws -> [[Int]] {
        let ids = try fixture.integers("input_ids")
        let length = fixture.shape("input_ids")[1]
        return stride(from: 0, to: ids.count, by: length).map { Array(ids[$0..<($0 + length)]) }
    }

    /// Logits of every sequence from a full forward (the blocked sgemm path), and of its last position
    /// again from one decode step after a prefill of the rest (the matrix-vector path).
    private func logits(_ model: some CausalLanguageModel, _ ids: [Int]) throws -> (full: Tensor, lastByDecode: Tensor) {
        var cache = model.makeCache(capacity: ids.count)
        let full = model.logits(try model.forward(model.embed(ids), cache: &cache, recordHiddenStates: false).hidden)
        cache.truncate(to: 0)
        _ = try model.forward(model.embed(Array(ids.dropLast())), cache: &cache, recordHiddenStates: false)
        let step = model.logits(try model.forward(model.embed([ids.last!]), cache: &cache, recordHiddenStates: false).hidden)
        return (full, step)
    }

    /// Largest |Δ| between the model's logits and the reference, over every sequence and both paths.
    private func worstDifference(_ model: some CausalLanguageModel, _ fixture: Fixture) throws -> (absolute: Float, reference: Float) {
        let expected = try fixture.tensor("logits")
        var worst: Float = 0, largest: Float = 0
        for (b, ids) in try sequences(fixture).enumerated() {
            let reference = expected.slice(b)
            let (full, step) = try logits(model, ids)
            XCTAssertEqual(full.shape, reference.shape)
            let last = reference.rows((ids.count - 1)..<ids.count)
            worst = max(worst, full.maxAbsoluteDifference(reference), step.maxAbsoluteDifference(last))
            largest = max(largest, reference.scalars.map(abs).max()!)
        }
        return (worst, largest)
    }

    func testBF16LlamaKeptInBF16MatchesTransformers() throws {
        for name in ["llama", "llama_blocks"] {
            let fixture = try Fixture(name)
            let model = try Llama(directory: fixture.directory)
            XCTAssertEqual(model.matrixFormats, [.bf16], "\(name): the weights stay bf16")
            let (difference, _) = try worstDifference(model, fixture)
            XCTAssertLessThanOrEqual(difference, Fixture.tolerance, name)
        }
        let tied = try Llama(directory: try Fixture("llama_tied").directory)
        XCTAssertEqual(tied.matrixFormats, [.f16])
        XCTAssertLessThanOrEqual(try worstDifference(tied, try Fixture("llama_tied")).absolute, Fixture.tolerance)
    }

    /// An f16 KV cache rounds every cached key and value (relative error up to 2⁻¹¹): the logits stay within
    /// 0.5% of the largest logit of transformers' fp32 reference on the LLaMA and GPT-2 fixtures, on the
    /// prefill and the decode paths; the error is printed for each.
    func testAnF16CacheStaysNearTheExactLogits() throws {
        for name in ["llama", "llama_blocks", "llama_tied", "gpt2_bf16"] {
            let fixture = try Fixture(name)
            let (difference, largest): (Float, Float)
            if name.hasPrefix("gpt2") {
                var model = try GPT2(directory: fixture.directory)
                model.cacheFormat = .f16
                (difference, largest) = try worstDifference(model, fixture)
            } else {
                var model = try Llama(directory: fixture.directory)
                model.cacheFormat = .f16
                XCTAssertEqual(model.makeCache(capacity: 4).format, .f16)
                (difference, largest) = try worstDifference(model, fixture)
            }
            print(String(format: "f16 KV cache, %@: largest logit error %.2e (%.2e of the largest logit)",
                         name, difference, difference / largest))
            XCTAssertLessThanOrEqual(difference, 5e-3 * largest, name)
        }
    }

    func testBF16GPT2KeptInBF16MatchesTransformers() throws {
        let fixture = try Fixture("gpt2_bf16")
        let model = try GPT2(directory: fixture.directory)
        XCTAssertLessThanOrEqual(try worstDifference(model, fixture).absolute, Fixture.tolerance)
    }

    /// int8 and int4 prefill compute in integers, their rows quantized to 8-bit blocks as a decode step's row is,
    /// so a prompt's positions get the logits that decoding it one token at a time gives: the same integer sums, up
    /// to the order of fp32 additions. Where the two paths' fp32 attention sums differ in the last bit, an
    /// activation lying on a rounding boundary can round to the neighbouring 8-bit step (int4: at 2 of 22
    /// positions, by 0.9% of the largest logit), so: most positions within the parity tolerance, every one within
    /// 2% of the largest logit. Against transformers on the Q8_0/Q4_0 round trip of the weights with fp32
    /// activations (`logits.int8`, `logits.int4`, made by the fixture script with llama.cpp's reference
    /// quantizers), the difference is the 8-bit rounding of the activations, printed, and within 8% of the
    /// largest logit on these large random weights (int8 5.4% and int4 3.6% at worst: both are the activations'
    /// 8-bit rounding, which these random weights amplify differently).
    func testQuantizedPrefillComputesWhatDecodingTokenByTokenComputes() throws {
        let fixture = try Fixture("llama_blocks")
        for format in [WeightFormat.int8, .int4] {
            let model = try Llama(directory: fixture.directory, matrixFormat: format)
            XCTAssertEqual(model.matrixFormats, [format], "every matrix holds whole blocks of 32")
            let expected = try fixture.tensor("logits.\(format.rawValue)")
            var positions = 0, exact = 0
            for (b, ids) in try sequences(fixture).enumerated() {
                let full = try logits(model, ids).full
                let reference = expected.slice(b), largest = reference.scalars.map(abs).max()!
                var cache = model.makeCache(capacity: ids.count)
                for (position, id) in ids.enumerated() {
                    let step = model.logits(try model.forward(model.embed([id]), cache: &cache, recordHiddenStates: false).hidden)
                    let difference = step.maxAbsoluteDifference(full.rows(position..<(position + 1)))
                    XCTAssertLessThanOrEqual(difference, 0.02 * largest, "\(format) sequence \(b) position \(position): prefill against decode")
                    positions += 1
                    if difference <= Fixture.tolerance { exact += 1 }
                }
                let difference = full.maxAbsoluteDifference(reference)
                print(String(format: "%@ prefill, llama_blocks sequence %d: against transformers on the round-trip weights "
                             + "%.4f (%.4f of the largest logit)", format.rawValue, b, difference, difference / largest))
                XCTAssertLessThanOrEqual(difference, 0.08 * largest, "\(format) sequence \(b) against transformers")
            }
            print("\(format) prefill against decode: \(exact) of \(positions) positions within \(Fixture.tolerance)")
            XCTAssertGreaterThanOrEqual(Double(exact), 0.9 * Double(positions), "\(format): most positions see the same integer sums")
        }
    }

    /// The error int8/int4 add against fp32 on the unquantized weights (the quantization itself, plus the 8-bit
    /// activations of the decode path): the largest logit error relative to the largest reference logit,
    /// printed for each parity fixture. int4 errs more than int8 everywhere.
    func testQuantizedWeightsErrorAgainstFloatIsReported() throws {
        for name in ["llama_blocks", "gpt2", "gpt2_bf16"] {
            let fixture = try Fixture(name)
            var relative: [WeightFormat: Float] = [:]
            for format in [WeightFormat.int8, .int4] {
                let (absolute, largest) = name.hasPrefix("gpt2")
                    ? try worstDifference(GPT2(directory: fixture.directory, matrixFormat: format), fixture)
                    : try worstDifference(Llama(directory: fixture.directory, matrixFormat: format), fixture)
                relative[format] = absolute / largest
                print(String(format: "%@ in %@: logits max |Δ| %.4f against fp32, relative to the largest logit (%.2f): %.4f",
                             name, format.rawValue, absolute, largest, absolute / largest))
            }
            XCTAssertTrue(relative.values.allSatisfy(\.isFinite), name)
            XCTAssertLessThan(relative[.int8]!, relative[.int4]!, name)
        }
    }
}
