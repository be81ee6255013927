import CKernels
import Tensor
import XCTest

/// The C kernels: the dispatching path (AVX2/FMA/F16C on this machine) against the portable path, and both
/// against fp32 arithmetic in Double.
final class KernelTests: XCTestCase {
    private var generator = SeededGenerator(seed: 20)

    /// Half-precision bit patterns of every kind: random finite values, ±0, subnormals, ±inf, NaN.
    private func halfPatterns(_ count: Int, bf16: Bool) -> [UInt16] {
        var values = (0..<count).map { _ in UInt16.random(in: 0...UInt16.max, using: &generator) }
        values += bf16 ? [0x0000, 0x8000, 0x0001, 0x807F, 0x7F80, 0xFF80, 0x7FC0] : [0x0000, 0x8000, 0x0001, 0x83FF, 0x7C00, 0xFC00, 0x7E00]
        return values
    }

    func testHalfToFloatPathsAgreeAndAreExact() {
        for bf16 in [true, false] {
            let source = halfPatterns(1003, bf16: bf16)
            var fast = [Float](repeating: 0, count: source.count), portable = fast
            if bf16 {
                accm_bf16_to_f32(source, &fast, source.count)
                accm_bf16_to_f32_portable(source, &portable, source.count)
            } else {
                accm_f16_to_f32(source, &fast, source.count)
                accm_f16_to_f32_portable(source, &portable, source.count)
            }
            for i in source.indices {
                // NaN payloads may differ (F16C quiets a signalling NaN); every other value is bit-identical.
                XCTAssertTrue(fast[i].isNaN ? portable[i].isNaN : fast[i].bitPattern == portable[i].bitPattern,
                              "\(bf16 ? "bf16" : "f16") \(source[i])")
                let exact: Float = bf16 ? Float(bitPattern: UInt32(source[i]) << 16) : Float(Float16(bitPattern: source[i]))
                XCTAssertTrue(exact.isNaN ? portable[i].isNaN : exact.bitPattern == portable[i].bitPattern, "\(source[i])")
            }
        }
    }

    func testFloatToHalfRoundsToNearestEven() {
        // Every f16 value round-trips; values between two f16 neighbours go to the nearer (ties to even).
        let all = (0...UInt16.max).filter { Float16(bitPattern: $0).isFinite }
        let floats = all.map { Float(Float16(bitPattern: $0)) }
        var back = [UInt16](repeating: 0, count: floats.count), backPortable = back
        accm_f32_to_f16(floats, &back, floats.count)
        accm_f32_to_f16_portable(floats, &backPortable, floats.count)
        XCTAssertEqual(back, all)
        XCTAssertEqual(backPortable, all)
        let probes: [Float] = [1 + 1 / 2048, 1 + 3 / 2048, 65504, 65519.9, 65520, 1e-8, 3e-8, -2.9802322e-8, .infinity, .nan,
                               0.1, -0.3, 1e-5, 6.1e-5, 2049, 4097, -70000, 5.9604645e-8, 2.9802322e-8, 8.940697e-8]
        // The dispatching path (8 at a time, then a tail) and the portable one give the same bits but for NaN payloads.
        let many = (0..<37).map { probes[$0 % probes.count] * Float($0 % 5 + 1) }
        var manyFast = [UInt16](repeating: 0, count: many.count), manyPortable = manyFast
        accm_f32_to_f16(many, &manyFast, many.count)
        accm_f32_to_f16_portable(many, &manyPortable, many.count)
        for i in many.indices where !many[i].isNaN { XCTAssertEqual(manyFast[i], manyPortable[i], "f16 of \(many[i])") }
        var half = [UInt16](repeating: 0, count: probes.count), brain = half
        accm_f32_to_f16(probes, &half, probes.count)
        accm_f32_to_bf16(probes, &brain, probes.count)
        for (i, p) in probes.enumerated() {
            let expected = Float16(p)  // Swift's conversion rounds to nearest even
            XCTAssertTrue(p.isNaN ? Float16(bitPattern: half[i]).isNaN : half[i] == expected.bitPattern, "f16 of \(p)")
            // bf16: the top 16 bits after round-to-nearest-even on the low 16.
            let bits = p.bitPattern
            let rounded = p.isNaN ? (bits >> 16) | 0x40 : (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16
            XCTAssertEqual(brain[i], UInt16(rounded), "bf16 of \(p)")
        }
    }

    func testHalfMatrixVectorPathsAgreeWithFloat() {
        // Rows under 2048 wide run one at a time, longer ones four (bf16) or two (f16) at a time, with tails.
        for (rows, cols, ldw) in [(7, 45, 45), (16, 256, 260), (3, 8, 8), (33, 1000, 1000), (9, 4100, 4100), (6, 2048, 2056)] {
            for bf16 in [true, false] {
                let floats = generator.floats(rows * ldw)
                var w = [UInt16](repeating: 0, count: floats.count)
                if bf16 { accm_f32_to_bf16(floats, &w, w.count) } else { accm_f32_to_f16(floats, &w, w.count) }
                var exactWeights = [Float](repeating: 0, count: w.count)
                accm_bf16_to_f32_portable(w, &exactWeights, w.count)
                if !bf16 { accm_f16_to_f32_portable(w, &exactWeights, w.count) }
                let x = generator.floats(cols)
                var fast = generator.floats(rows), portable = fast
                let start = fast
                if bf16 {
                    accm_gemv_bf16(w, ldw, rows, cols, x, &fast, 1)
                    accm_gemv_bf16_portable(w, ldw, rows, cols, x, &portable, 1)
                } else {
                    accm_gemv_f16(w, ldw, rows, cols, x, &fast, 1)
                    accm_gemv_f16_portable(w, ldw, rows, cols, x, &portable, 1)
                }
                let expected = (0..<rows).map { r in
                    Double(start[r]) + (0..<cols).reduce(0.0) { $0 + Double(exactWeights[r * ldw + $1]) * Double(x[$1]) }
                }
                let what = "\(bf16 ? "bf16" : "f16") \(rows)×\(cols)"
                assertClose(fast, expected, tolerance: 2e-5 * Double(cols).squareRoot(), "\(what) dispatch")
                assertClose(portable, expected, tolerance: 2e-5 * Double(cols).squareRoot(), "\(what) portable")
            }
        }
    }

    /// A batch of 1–6 inputs (4 at a time, then the rest; a turn of one runs the one-input kernel) gives each input
    /// what the one-input product gives it, up to fp32 summation order, in every weight type, on both paths.
    func testBatchMatrixVectorProductIsTheProductOfEachInput() {
        typealias Batch = (UnsafeRawPointer, Int, Int, Int, UnsafePointer<Float>, Int, Int, UnsafeMutablePointer<Float>, Int, Int32) -> Void
        typealias Single = (UnsafeRawPointer, Int, Int, Int, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int32) -> Void
        for (rows, cols, ldw) in [(7, 45, 48), (17, 4096, 4100), (33, 768, 768)] {
            let floats = generator.floats(rows * ldw)
            var bf16 = [UInt16](repeating: 0, count: floats.count), f16 = bf16
            accm_f32_to_bf16(floats, &bf16, bf16.count)
            accm_f32_to_f16(floats, &f16, f16.count)
            // Each weight type's bytes copied into memory the test owns, so that the kernels can take them as pointers.
            func owned<T>(_ values: [T]) -> UnsafeRawPointer {
                let p = UnsafeMutableRawPointer.allocate(byteCount: values.count * MemoryLayout<T>.stride, alignment: 64)
                values.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
                return UnsafeRawPointer(p)
            }
            let kinds: [(String, UnsafeRawPointer, Batch, Batch, Single)] = [
                ("f32", owned(floats),
                 { accm_gemv_f32_batch($0.assumingMemoryBound(to: Float.self), $1, $2, $3, $4, $5, $6, $7, $8, $9) },
                 { accm_gemv_f32_batch_portable($0.assumingMemoryBound(to: Float.self), $1, $2, $3, $4, $5, $6, $7, $8, $9) },
                 { accm_gemv_f32_portable($0.assumingMemoryBound(to: Float.self), $1, $2, $3, $4, $5, $6) }),
                ("bf16", owned(bf16),
                 { accm_gemv_bf16_batch($0.assumingMemoryBound(to: UInt16.self), $1, $2, $3, $4, $5, $6, $7, $8, $9) },
                 { accm_gemv_bf16_batch_portable($0.assumingMemoryBound(to: UInt16.self), $1, $2, $3, $4, $5, $6, $7, $8, $9) },
                 { accm_gemv_bf16_portable($0.assumingMemoryBound(to: UInt16.self), $1, $2, $3, $4, $5, $6) }),
                ("f16", owned(f16),
                 { accm_gemv_f16_batch($0.assumingMemoryBound(to: UInt16.self), $1, $2, $3, $4, $5, $6, $7, $8, $9) },
                 { accm_gemv_f16_batch_portable($0.assumingMemoryBound(to: UInt16.self), $1, $2, $3, $4, $5, $6, $7, $8, $9) },
                 { accm_gemv_f16_portable($0.assumingMemoryBound(to: UInt16.self), $1, $2, $3, $4, $5, $6) }),
            ]
            defer { for kind in kinds { kind.1.deallocate() } }
            for batch in 1...6 {
                let ldx = cols + 3, ldy = rows + 2
                let x = generator.floats(batch * ldx), start = generator.floats(batch * ldy)
                for (name, w, fast, portable, single) in kinds {
                    for accumulate: Int32 in [0, 1] {
                        var fromBatch = start, fromPortable = start, oneByOne = start
                        fast(w, ldw, rows, cols, x, ldx, batch, &fromBatch, ldy, accumulate)
                        portable(w, ldw, rows, cols, x, ldx, batch, &fromPortable, ldy, accumulate)
                        x.withUnsafeBufferPointer { x in
                            oneByOne.withUnsafeMutableBufferPointer { y in
                                for m in 0..<batch { single(w, ldw, rows, cols, x.baseAddress! + m * ldx, y.baseAddress! + m * ldy, accumulate) }
                            }
                        }
                        let what = "\(name) \(rows)×\(cols), batch \(batch), accumulate \(accumulate)"
                        XCTAssertEqual(fromPortable, oneByOne, "\(what): the portable batch is the product of each input")
                        assertClose(fromBatch, oneByOne.map(Double.init), tolerance: 1e-5 * Double(cols).squareRoot(), relative: 1e-5, what)
                        for m in 0..<batch {  // the columns past `rows` are left alone
                            XCTAssertEqual(Array(fromBatch[(m * ldy + rows)..<((m + 1) * ldy)]), Array(start[(m * ldy + rows)..<((m + 1) * ldy)]), what)
                        }
                    }
                }
            }
        }
    }

    func testFloatMatrixVectorPathsAgreeWithDoubleArithmetic() {
        // Rows under 2048 wide run one at a time, longer ones four at a time; row counts and widths with tails.
        for (rows, cols, ldw) in [(7, 45, 45), (16, 256, 260), (3, 8, 8), (33, 1000, 1000), (9, 4100, 4100), (6, 2048, 2056)] {
            let w = generator.floats(rows * ldw), x = generator.floats(cols)
            for accumulate in [false, true] {
                let start = generator.floats(rows)
                var fast = start, portable = start
                accm_gemv_f32(w, ldw, rows, cols, x, &fast, accumulate ? 1 : 0)
                accm_gemv_f32_portable(w, ldw, rows, cols, x, &portable, accumulate ? 1 : 0)
                let expected = (0..<rows).map { r in
                    (accumulate ? Double(start[r]) : 0) + (0..<cols).reduce(0.0) { $0 + Double(w[r * ldw + $1]) * Double(x[$1]) }
                }
                let what = "f32 \(rows)×\(cols), accumulate \(accumulate)"
                assertClose(fast, expected, tolerance: 2e-5 * Double(cols).squareRoot(), "\(what) dispatch")
                assertClose(portable, expected, tolerance: 2e-5 * Double(cols).squareRoot(), "\(what) portable")
            }
        }
    }

    func testWeightedSumOfHalfRowsAgreesWithFloat() {
        // out[c] = Σ_r p[r]·V[r, c] over f16 rows with a stride: column counts around the 32- and 8-wide steps.
        for (count, cols, ldv) in [(1, 128, 4096), (640, 128, 256), (7, 45, 50), (3, 8, 8), (12, 33, 40), (5, 3, 3)] {
            let floats = generator.floats(count * ldv, in: -2...2)
            var v = [UInt16](repeating: 0, count: floats.count)
            accm_f32_to_f16_portable(floats, &v, v.count)
            var exact = [Float](repeating: 0, count: v.count)
            accm_f16_to_f32_portable(v, &exact, v.count)
            let p = generator.floats(count, in: 0...1)
            var fast = generator.floats(cols), portable = generator.floats(cols)  // overwritten, not added to
            accm_weighted_rows_f16(v, ldv, count, cols, p, &fast)
            accm_weighted_rows_f16_portable(v, ldv, count, cols, p, &portable)
            let expected = (0..<cols).map { c in (0..<count).reduce(0.0) { $0 + Double(p[$1]) * Double(exact[$1 * ldv + c]) } }
            assertClose(fast, expected, tolerance: 1e-5 * Double(count).squareRoot(), "weighted rows \(count)×\(cols) dispatch")
            assertClose(portable, expected, tolerance: 1e-5 * Double(count).squareRoot(), "weighted rows \(count)×\(cols) portable")
        }
    }

    func testActivationQuantizationIsTheSameOnBothPaths() {
        let n = 32 * 37
        var x = generator.floats(n, in: -3...3)
        for j in 0..<32 { x[32 + j] = 0 }            // an all-zero block
        x[70] = 1e-30                                // a tiny block maximum elsewhere is fine too
        var q1 = [Int8](repeating: 0, count: n), q2 = q1
        var s1 = [Float](repeating: 0, count: n / 32), s2 = s1
        accm_quantize_activation(x, n, &q1, &s1)
        accm_quantize_activation_portable(x, n, &q2, &s2)
        XCTAssertEqual(q1, q2)
        XCTAssertEqual(s1, s2)
        XCTAssertEqual(s1[1], 0)
        for i in 0..<n where s1[i / 32] > 0 {
            XCTAssertLessThanOrEqual(abs(Float(q1[i]) * s1[i / 32] - x[i]), s1[i / 32] / 2 * 1.0001, "element \(i)")
        }
    }

    func testBlockQuantizationOfWeightsBoundsTheErrorPerBlock() {
        let n = 32 * 64
        let x = generator.floats(n, in: -2...2)
        var q8 = [Int8](repeating: 0, count: n), q4 = [UInt8](repeating: 0, count: n / 2)
        var s8 = [UInt16](repeating: 0, count: n / 32), s4 = s8
        accm_quantize_q8_0(x, n, &q8, &s8)
        accm_quantize_q4_0(x, n, &q4, &s4)
        var d8 = [Float](repeating: 0, count: n), d8p = d8, d4 = d8, d4p = d8
        accm_dequantize_q8_0(q8, s8, n, &d8)
        accm_dequantize_q8_0_portable(q8, s8, n, &d8p)
        accm_dequantize_q4_0(q4, s4, n, &d4)
        accm_dequantize_q4_0_portable(q4, s4, n, &d4p)
        XCTAssertEqual(d8, d8p)
        XCTAssertEqual(d4, d4p)
        for b in 0..<(n / 32) {
            let block = x[(b * 32)..<(b * 32 + 32)]
            let amax = block.map(abs).max()!
            for i in (b * 32)..<(b * 32 + 32) {
                // Q8_0: half a step, plus the fp16 rounding of the scale. Q4_0's grid is -8...7 steps with the
                // block's extreme at -8, so values near the opposite extreme are clamped at 7: one step at most.
                XCTAssertLessThanOrEqual(abs(d8[i] - x[i]), amax / 127 * 0.5 + amax * 1e-3, "q8 element \(i)")
                XCTAssertLessThanOrEqual(abs(d4[i] - x[i]), amax / 8 + amax * 2e-3, "q4 element \(i)")
            }
        }
        // The extreme of a Q4_0 block is represented (as -8 · d), as in llama.cpp.
        let extreme = x[0..<32].max { abs($0) < abs($1) }!
        XCTAssertEqual(d4[x[0..<32].firstIndex(of: extreme)!], extreme, accuracy: abs(extreme) * 1e-3)
    }

    func testQuantizedMatrixVectorPathsAgreeWithIntegerArithmetic() {
        atEveryKernelLevel { level in
            // Block counts below 8 (the tail path alone), whole groups of 8 (the paired-block AVX2 loop), and groups
            // with a tail of 1 and of 2 blocks.
            for (rows, cols) in [(5, 32), (17, 96), (64, 4096), (7, 320), (4, 800), (3, 11008)] {
                let w = generator.floats(rows * cols), x = generator.floats(cols, in: -4...4)
                var q8 = [Int8](repeating: 0, count: rows * cols), q4 = [UInt8](repeating: 0, count: rows * cols / 2)
                var s8 = [UInt16](repeating: 0, count: rows * cols / 32), s4 = s8
                accm_quantize_q8_0(w, rows * cols, &q8, &s8)
                accm_quantize_q4_0(w, rows * cols, &q4, &s4)
                var xq = [Int8](repeating: 0, count: cols), xs = [Float](repeating: 0, count: cols / 32)
                accm_quantize_activation_portable(x, cols, &xq, &xs)
                var d8 = [Float](repeating: 0, count: rows * cols), d4 = d8
                accm_dequantize_q8_0_portable(q8, s8, rows * cols, &d8)
                accm_dequantize_q4_0_portable(q4, s4, rows * cols, &d4)
                for int8 in [true, false] {
                    var fast = [Float](repeating: 0, count: rows), portable = fast
                    if int8 {
                        accm_gemv_q8_0(q8, s8, rows, cols, xq, xs, &fast, 0)
                        accm_gemv_q8_0_portable(q8, s8, rows, cols, xq, xs, &portable, 0)
                    } else {
                        let (w, ws) = interleaved(q4, s4, rows: rows, cols: cols)
                        accm_gemv_q4_0x8(w, ws, cols, 0, rows, xq, xs, &fast, 0)
                        accm_gemv_q4_0x8_portable(w, ws, cols, 0, rows, xq, xs, &portable, 0)
                    }
                    // Exactly the dequantized weights times the dequantized activation (in Double), up to fp32 sums.
                    let weights = int8 ? d8 : d4
                    let product = (0..<rows).map { r in
                        (0..<cols).reduce(0.0) { $0 + Double(weights[r * cols + $1]) * Double(Float(xq[$1]) * xs[$1 / 32]) }
                    }
                    let what = "\(int8 ? "q8_0" : "q4_0") \(rows)×\(cols)"
                    assertClose(fast, product, tolerance: 1e-4, relative: 1e-5, "\(what) \(level)")
                    assertClose(portable, product, tolerance: 1e-4, relative: 1e-5, "\(what) portable")
                    // Against the fp32 product of the original weights: within the bound the two roundings set,
                    // Σ|w − ŵ|·|x| + Σ|ŵ|·|x − x̂| per row (plus fp32 summation).
                    for r in 0..<rows {
                        var reference = 0.0, bound = 1e-4
                        for c in 0..<cols {
                            let (wc, wq, xc) = (Double(w[r * cols + c]), Double(weights[r * cols + c]), Double(x[c]))
                            reference += wc * xc
                            bound += abs(wc - wq) * abs(xc) + abs(wq) * abs(xc - Double(Float(xq[c]) * xs[c / 32]))
                        }
                        XCTAssertLessThanOrEqual(abs(Double(fast[r]) - reference), bound, "\(what) row \(r) against fp32")
                    }
                }
            }
        }
    }

    /// The int8 and int4 prefill kernels give, for each activation row, what the matrix-vector kernel gives (the
    /// same integer block sums): weight rows in groups of 8 with a remainder, activation rows in tiles of 4 with a
    /// remainder, into a wider output (ldy) with and without accumulation.
    func testQuantizedMatrixMatrixProductIsTheMatrixVectorProductOfEachRow() {
        atEveryKernelLevel { level in
            typealias Product = (UnsafeRawPointer, UnsafePointer<UInt16>, Int, Int, UnsafePointer<Int8>, UnsafePointer<Float>,
                                 Int, UnsafeMutablePointer<Float>, Int, Int32) -> Void
            typealias RowProduct = (UnsafeRawPointer, UnsafePointer<UInt16>, Int, Int, UnsafePointer<Int8>, UnsafePointer<Float>,
                                    UnsafeMutablePointer<Float>, Int32) -> Void
            struct Format {
                let name: String
                let bytesPerRow: (Int) -> Int
                let quantize: (UnsafePointer<Float>, Int, UnsafeMutableRawPointer, UnsafeMutablePointer<UInt16>) -> Void
                let gemm: Product, gemmPortable: Product, gemvPortable: RowProduct
            }
            let formats = [
                Format(name: "int8", bytesPerRow: { $0 },
                       quantize: { accm_quantize_q8_0($0, $1, $2.assumingMemoryBound(to: Int8.self), $3) },
                       gemm: { accm_gemm_q8_0($0.assumingMemoryBound(to: Int8.self), $1, $2, $3, $4, $5, $6, $7, $8, $9) },
                       gemmPortable: { accm_gemm_q8_0_portable($0.assumingMemoryBound(to: Int8.self), $1, $2, $3, $4, $5, $6, $7, $8, $9) },
                       gemvPortable: { accm_gemv_q8_0_portable($0.assumingMemoryBound(to: Int8.self), $1, $2, $3, $4, $5, $6, $7) }),
                // int4's kernels read the interleaved layout: each call packs the row-major bytes first.
                Format(name: "int4", bytesPerRow: { $0 / 2 },
                       quantize: { accm_quantize_q4_0($0, $1, $2.assumingMemoryBound(to: UInt8.self), $3) },
                       gemm: { q, s, rows, cols, xq, xs, count, y, ldy, add in
                           let (w, ws) = self.interleaved(q, s, rows: rows, cols: cols)
                           accm_gemm_q4_0x8(w, ws, cols, 0, rows, xq, xs, count, y, ldy, add)
                       },
                       gemmPortable: { q, s, rows, cols, xq, xs, count, y, ldy, add in
                           let (w, ws) = self.interleaved(q, s, rows: rows, cols: cols)
                           accm_gemm_q4_0x8_portable(w, ws, cols, 0, rows, xq, xs, count, y, ldy, add)
                       },
                       gemvPortable: { q, s, rows, cols, xq, xs, y, add in
                           let (w, ws) = self.interleaved(q, s, rows: rows, cols: cols)
                           accm_gemv_q4_0x8_portable(w, ws, cols, 0, rows, xq, xs, y, add)
                       }),
            ]
            for format in formats {
                for (rows, cols, count) in [(8, 32, 4), (13, 96, 7), (3, 320, 1), (21, 4096, 9), (40, 11008, 5)] {
                    let w = generator.floats(rows * cols)
                    var q = [UInt8](repeating: 0, count: rows * format.bytesPerRow(cols)), s = [UInt16](repeating: 0, count: rows * cols / 32)
                    q.withUnsafeMutableBytes { format.quantize(w, rows * cols, $0.baseAddress!, &s) }
                    let blocks = cols / 32
                    var xq = [Int8](repeating: 0, count: count * cols), xs = [Float](repeating: 0, count: count * blocks)
                    for m in 0..<count {
                        let x = generator.floats(cols, in: -4...4)
                        xq.withUnsafeMutableBufferPointer { xq in
                            xs.withUnsafeMutableBufferPointer { xs in
                                accm_quantize_activation(x, cols, xq.baseAddress! + m * cols, xs.baseAddress! + m * blocks)
                            }
                        }
                    }
                    let ldy = rows + 3
                    for accumulate in [false, true] {
                        let start = generator.floats(count * ldy), add: Int32 = accumulate ? 1 : 0
                        var fast = start, portable = start, rowByRow = start
                        q.withUnsafeBytes { q in
                            format.gemm(q.baseAddress!, s, rows, cols, xq, xs, count, &fast, ldy, add)
                            format.gemmPortable(q.baseAddress!, s, rows, cols, xq, xs, count, &portable, ldy, add)
                            rowByRow.withUnsafeMutableBufferPointer { y in
                                xq.withUnsafeBufferPointer { xq in
                                    xs.withUnsafeBufferPointer { xs in
                                        for m in 0..<count {
                                            format.gemvPortable(q.baseAddress!, s, rows, cols, xq.baseAddress! + m * cols,
                                                                xs.baseAddress! + m * blocks, y.baseAddress! + m * ldy, add)
                                        }
                                    }
                                }
                            }
                        }
                        let what = "\(format.name) \(count)×\(cols) · \(rows)×\(cols)ᵀ, accumulate \(accumulate)"
                        XCTAssertEqual(portable, rowByRow, "\(what): the portable path is the row-by-row product")
                        assertClose(fast, rowByRow.map(Double.init), tolerance: 1e-4, relative: 1e-5, "\(what) \(level)")
                        for m in 0..<count {  // the columns past `rows` are left alone
                            XCTAssertEqual(Array(fast[(m * ldy + rows)..<((m + 1) * ldy)]), Array(start[(m * ldy + rows)..<((m + 1) * ldy)]), what)
                        }
                    }
                }
            }
        }
    }

    /// `rows` activation rows of `cols` floats quantized to 8-bit blocks (the integer kernels' other operand).
    private func quantizedActivations(_ x: [Float], rows: Int, cols: Int) -> ([Int8], [Float]) {
        var xq = [Int8](repeating: 0, count: rows * cols), xs = [Float](repeating: 0, count: rows * cols / 32)
        x.withUnsafeBufferPointer { x in
            xq.withUnsafeMutableBufferPointer { xq in
                xs.withUnsafeMutableBufferPointer { xs in
                    for m in 0..<rows {
                        accm_quantize_activation(x.baseAddress! + m * cols, cols, xq.baseAddress! + m * cols, xs.baseAddress! + m * cols / 32)
                    }
                }
            }
        }
        return (xq, xs)
    }

    /// Row-major Q4_0 rows (`rows` × `cols / 2` bytes) in the interleaved layout the int4 kernels read.
    private func interleaved(_ q: UnsafeRawPointer, _ s: UnsafePointer<UInt16>, rows: Int, cols: Int) -> ([UInt8], [UInt16]) {
        let groups = accm_q4_0x8_groups(rows)
        var w = [UInt8](repeating: 0, count: groups * 8 * cols / 2), ws = [UInt16](repeating: 0, count: groups * 8 * cols / 32)
        accm_q4_0x8_pack(q.assumingMemoryBound(to: UInt8.self), s, rows, cols, 0, &w, &ws)
        accm_q4_0x8_pad(&w, &ws, rows, cols)
        return (w, ws)
    }

    /// The interleaved int4 layout: packing rows in any pieces and unpacking them gives back the row-major bytes;
    /// each weight is where the layout says (chunk k of a block holds bytes 4k ..< 4k + 4 of each of the 8 rows);
    /// padding rows are weight 0 with scale 0.
    func testInterleavedInt4LayoutHoldsEachRowWhereItSays() {
        for (rows, cols) in [(1, 32), (8, 64), (13, 96), (21, 320)] {
            let w = generator.floats(rows * cols)
            var q = [UInt8](repeating: 0, count: rows * cols / 2), s = [UInt16](repeating: 0, count: rows * cols / 32)
            accm_quantize_q4_0(w, rows * cols, &q, &s)
            var dequantized = [Float](repeating: 0, count: rows * cols)
            accm_dequantize_q4_0_portable(q, s, rows * cols, &dequantized)
            let groups = accm_q4_0x8_groups(rows), blocks = cols / 32
            XCTAssertEqual(groups, (rows + 7) / 8)
            var packed = [UInt8](repeating: 0xAB, count: groups * 8 * cols / 2), scales = [UInt16](repeating: 0xFFFF, count: groups * 8 * blocks)
            let cut = rows / 3  // two pieces, the second starting inside a group
            accm_q4_0x8_pack(q, s, cut, cols, 0, &packed, &scales)
            q.withUnsafeBufferPointer { q in
                s.withUnsafeBufferPointer { s in
                    accm_q4_0x8_pack(q.baseAddress! + cut * cols / 2, s.baseAddress! + cut * blocks, rows - cut, cols, cut, &packed, &scales)
                }
            }
            accm_q4_0x8_pad(&packed, &scales, rows, cols)
            var back = [UInt8](repeating: 0, count: rows * cols / 2), backScales = [UInt16](repeating: 0, count: rows * blocks)
            accm_q4_0x8_unpack(packed, scales, cols, 0, rows, &back, &backScales)
            XCTAssertEqual(back, q, "\(rows)×\(cols) bytes")
            XCTAssertEqual(backScales, s, "\(rows)×\(cols) scales")
            var fromLayout = [Float](repeating: .nan, count: rows * cols)
            accm_q4_0x8_dequantize(packed, scales, cols, 0, rows, &fromLayout)
            XCTAssertEqual(fromLayout, dequantized, "\(rows)×\(cols) dequantized from the layout")
            for r in 0..<(groups * 8) {
                for c in stride(from: 0, to: cols, by: 5) {
                    var scale: Float = 0
                    let weight = accm_q4_0x8_weight(packed, scales, cols, r, c, &scale)
                    if r < rows {
                        XCTAssertEqual(scale * Float(weight), dequantized[r * cols + c], "\(rows)×\(cols) (\(r), \(c))")
                    } else {
                        XCTAssertEqual(weight, 0, "padding row \(r)")
                        XCTAssertEqual(scale, 0, "padding row \(r)")
                    }
                }
            }
            let (block, lane) = (cols / 32 - 1, (rows - 1) % 8)  // the last row's last block, byte by byte
            for k in 0..<4 {
                for j in 0..<4 {
                    XCTAssertEqual(packed[(((rows - 1) / 8) * blocks + block) * 128 + k * 32 + lane * 4 + j],
                                   q[(rows - 1) * cols / 2 + block * 16 + 4 * k + j])
                }
            }
        }
    }

    /// The int4 matrix-vector product over any range of rows (starting or ending inside a group of 8) writes
    /// exactly those rows, what the product over all rows gives for them, on both paths.
    func testInt4MatrixVectorProductOverPartOfTheRows() {
        atEveryKernelLevel { level in
            let (rows, cols) = (29, 128)
            let w = generator.floats(rows * cols), x = generator.floats(cols, in: -4...4)
            var q = [UInt8](repeating: 0, count: rows * cols / 2), s = [UInt16](repeating: 0, count: rows * cols / 32)
            accm_quantize_q4_0(w, rows * cols, &q, &s)
            let (packed, scales) = interleaved(q, s, rows: rows, cols: cols)
            var xq = [Int8](repeating: 0, count: cols), xs = [Float](repeating: 0, count: cols / 32)
            accm_quantize_activation(x, cols, &xq, &xs)
            var whole = [Float](repeating: 0, count: rows)
            accm_gemv_q4_0x8_portable(packed, scales, cols, 0, rows, xq, xs, &whole, 0)
            for (first, count) in [(0, 29), (3, 5), (5, 14), (8, 8), (16, 13), (28, 1), (7, 0)] {
                for portable in [false, true] {
                    let start = generator.floats(count + 2)
                    var y = start
                    y.withUnsafeMutableBufferPointer { y in
                        if portable {
                            accm_gemv_q4_0x8_portable(packed, scales, cols, first, count, xq, xs, y.baseAddress! + 1, 1)
                        } else {
                            accm_gemv_q4_0x8(packed, scales, cols, first, count, xq, xs, y.baseAddress! + 1, 1)
                        }
                    }
                    let what = "rows \(first)..<\(first + count), portable \(portable) \(level)"
                    XCTAssertEqual(y.first, start.first, "\(what): nothing written before")
                    XCTAssertEqual(y.last, start.last, "\(what): nothing written after")
                    for i in 0..<count {
                        XCTAssertEqual(y[1 + i], start[1 + i] + whole[first + i], accuracy: 1e-4 * max(1, abs(whole[first + i])), what)
                    }
                }
            }
        }
    }

    /// The int8 product of a batch through `accm_gemm_q8_0` (one product an input up to 4 inputs, the repacking
    /// GEMM from 5) gives each input what the one-input kernel gives.
    func testInt8BatchMatrixVectorProductIsTheProductOfEachInput() {
        atEveryKernelLevel { level in
            let (rows, cols) = (19, 4096)
            let w = generator.floats(rows * cols)
            var q = [Int8](repeating: 0, count: rows * cols), s = [UInt16](repeating: 0, count: rows * cols / 32)
            accm_quantize_q8_0(w, rows * cols, &q, &s)
            for batch in 1...6 {
                let x = generator.floats(batch * cols, in: -4...4)
                let (xq, xs) = quantizedActivations(x, rows: batch, cols: cols)
                let start = generator.floats(batch * rows)
                var together = start, portable = start, alone = start
                accm_gemm_q8_0(q, s, rows, cols, xq, xs, batch, &together, rows, 1)
                accm_gemm_q8_0_portable(q, s, rows, cols, xq, xs, batch, &portable, rows, 1)
                alone.withUnsafeMutableBufferPointer { y in
                    xq.withUnsafeBufferPointer { xq in
                        xs.withUnsafeBufferPointer { xs in
                            for m in 0..<batch {
                                accm_gemv_q8_0_portable(q, s, rows, cols, xq.baseAddress! + m * cols, xs.baseAddress! + m * cols / 32,
                                                        y.baseAddress! + m * rows, 1)
                            }
                        }
                    }
                }
                XCTAssertEqual(portable, alone, "batch \(batch): the portable batch is the product of each input")
                assertClose(together, alone.map(Double.init), tolerance: 1e-4, relative: 1e-5, "batch \(batch) \(level)")
            }
        }
    }

    /// A batch's decode step (2–4 activation rows in one pass over int4 weights) gives each row exactly what the
    /// one-row product gives it, so a request's tokens do not depend on what it is batched with.
    func testInt4ProductOfAFewRowsIsBitwiseTheOneRowProduct() {
        atEveryKernelLevel { level in
            let (rows, cols) = (27, 256)
            let w = generator.floats(rows * cols)
            var q = [UInt8](repeating: 0, count: rows * cols / 2), s = [UInt16](repeating: 0, count: rows * cols / 32)
            accm_quantize_q4_0(w, rows * cols, &q, &s)
            let (packed, scales) = interleaved(q, s, rows: rows, cols: cols)
            for count in 1...4 {
                let x = generator.floats(count * cols, in: -4...4)
                let (xq, xs) = quantizedActivations(x, rows: count, cols: cols)
                for (first, outputs) in [(0, 27), (5, 17)] {
                    var together = [Float](repeating: 0, count: count * outputs), alone = together
                    accm_gemm_q4_0x8(packed, scales, cols, first, outputs, xq, xs, count, &together, outputs, 0)
                    alone.withUnsafeMutableBufferPointer { y in
                        xq.withUnsafeBufferPointer { xq in
                            xs.withUnsafeBufferPointer { xs in
                                for m in 0..<count {
                                    accm_gemv_q4_0x8(packed, scales, cols, first, outputs, xq.baseAddress! + m * cols,
                                                     xs.baseAddress! + m * cols / 32, y.baseAddress! + m * outputs, 0)
                                }
                            }
                        }
                    }
                    XCTAssertEqual(together, alone, "\(count) rows, outputs \(first)..<\(first + outputs) \(level)")
                }
            }
        }
    }

    /// Runs `body` at each SIMD level this CPU has (AVX2, AVX-512 VNNI; the portable level alone on a CPU with
    /// neither), with the level's name, then restores the level in force.
    private func atEveryKernelLevel(_ body: (String) throws -> Void) rethrows {
        let saved = accm_kernels_simd_level()
        defer { accm_kernels_set_level(saved) }
        let best = accm_kernels_cpu_level()
        for level in best == 0 ? [0] : Array(1...best) {
            XCTAssertEqual(accm_kernels_set_level(level), level)
            try body(String(cString: accm_kernels_level_name(level)))
        }
    }

    func testTheDispatchReportsItsPath() {
        let level = accm_kernels_simd_level()
        XCTAssertLessThanOrEqual(level, accm_kernels_cpu_level())
        let names = ["portable", "avx2+fma+f16c", "avx512-vnni"]
        XCTAssertEqual(String(cString: accm_kernels_path_name()), names[Int(level)])
        let saved = level
        defer { accm_kernels_set_level(saved) }
        XCTAssertEqual(accm_kernels_set_level(0), 0, "the portable level is always there")
        XCTAssertEqual(String(cString: accm_kernels_path_name()), "portable")
        XCTAssertEqual(accm_kernels_set_level(99), accm_kernels_cpu_level(), "a level the CPU lacks is capped")
    }

    /// The AVX-512 VNNI integer products give bit for bit what the AVX2 ones give (the same exact block sums, the
    /// fp32 work in the same order): int8 and int4, one activation row (decode), up to 4 (a batch) and more
    /// (prefill's tiles of 8, with a remainder), over whole and partial groups of 8 weight rows. The one exception
    /// is int8 at 3 or 4 rows, which VNNI runs through the repacking product and AVX2 a row at a time: there the
    /// two agree up to fp32 summation order.
    /// The opt-in bf16 dot products (not yet called by the engine): every tile shape and a masked k tail give the
    /// portable path's sums of exact bf16 products, up to fp32 summation order; rounding the input matches
    /// `accm_f32_to_bf16` on normal values.
    func testBF16DotProductsAreThePortableSums() throws {
        guard accm_kernels_cpu_has_bf16_dot() != 0 else { throw XCTSkip("this CPU has no AVX-512 BF16") }
        for (n, k, rows) in [(4, 32, 1), (7, 40, 3), (13, 100, 6), (21, 4096, 4), (9, 512, 13), (33, 1024, 8)] {
            let w = generator.floats(n * k), x = generator.floats(rows * k, in: -4...4)
            var wb = [UInt16](repeating: 0, count: n * k), xb = [UInt16](repeating: 0, count: rows * k), xr = xb
            accm_f32_to_bf16(w, &wb, n * k)
            accm_f32_to_bf16(x, &xr, rows * k)
            accm_round_to_bf16(x, &xb, rows * k)
            XCTAssertEqual(xb, xr, "rounding \(rows)×\(k)")
            var fast = [Float](repeating: 0.5, count: rows * n), portable = fast
            accm_gemm_bf16_dot(wb, k, n, k, xb, k, rows, &fast, n, 1)
            accm_gemm_bf16_dot_portable(wb, k, n, k, xb, k, rows, &portable, n, 1)
            assertClose(fast, portable.map(Double.init), tolerance: 1e-4, relative: 1e-5, "\(rows) × \(n)×\(k)")
        }
    }

    func testVNNIIntegerProductsAreBitwiseTheAVX2Ones() throws {
        guard accm_kernels_cpu_level() >= Int32(ACCM_KERNELS_AVX512_VNNI) else {
            throw XCTSkip("this CPU has no AVX-512 VNNI (\(String(cString: accm_kernels_level_name(accm_kernels_cpu_level()))))")
        }
        let saved = accm_kernels_simd_level()
        defer { accm_kernels_set_level(saved) }
        for (rows, cols, count) in [(8, 32, 1), (13, 96, 3), (21, 4096, 4), (40, 11008, 17), (27, 256, 8), (19, 4096, 100),
                                    (16, 128, 2)] {
            let w = generator.floats(rows * cols), x = generator.floats(count * cols, in: -4...4)
            var q8 = [Int8](repeating: 0, count: rows * cols), q4 = [UInt8](repeating: 0, count: rows * cols / 2)
            var s8 = [UInt16](repeating: 0, count: rows * cols / 32), s4 = s8
            accm_quantize_q8_0(w, rows * cols, &q8, &s8)
            accm_quantize_q4_0(w, rows * cols, &q4, &s4)
            let (p4, ps4) = interleaved(q4, s4, rows: rows, cols: cols)
            let (xq, xs) = quantizedActivations(x, rows: count, cols: cols)
            var results: [[Float]] = [], int8Products: [[Float]] = []
            for level in [Int32(ACCM_KERNELS_AVX2), Int32(ACCM_KERNELS_AVX512_VNNI)] {
                accm_kernels_set_level(level)
                var y8 = [Float](repeating: 1, count: count * rows), y4 = y8, one8 = [Float](repeating: 0, count: rows)
                var part4 = [Float](repeating: 0, count: rows - 5)
                accm_gemm_q8_0(q8, s8, rows, cols, xq, xs, count, &y8, rows, 1)
                accm_gemm_q4_0x8(p4, ps4, cols, 0, rows, xq, xs, count, &y4, rows, 1)
                accm_gemv_q8_0(q8, s8, rows, cols, xq, xs, &one8, 0)
                accm_gemv_q4_0x8(p4, ps4, cols, 3, rows - 5, xq, xs, &part4, 0)
                let int8SumsInTheSameOrder = !(3...4).contains(count)
                results.append((int8SumsInTheSameOrder ? y8 : []) + y4 + one8 + part4)
                int8Products.append(y8)
            }
            XCTAssertEqual(results[0].map(\.bitPattern), results[1].map(\.bitPattern), "\(count) × \(rows)×\(cols)")
            assertClose(int8Products[1], int8Products[0].map(Double.init), tolerance: 1e-4, relative: 1e-5,
                        "int8 \(count) × \(rows)×\(cols)")
        }
    }
}
