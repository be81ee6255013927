import ACCM
@testable import Evaluation
import Images
import XCTest

final class EvaluationLogicTests: XCTestCase {
    func testAnswerMatchingUsesTheFirstWordLowerCasedWithoutPunctuation() {
        XCTAssertTrue(AnswerMatching.isCorrect(answer: "Yes.", expected: "yes"))
        XCTAssertTrue(AnswerMatching.isCorrect(answer: "  Green, it is green", expected: "green"))
        XCTAssertTrue(AnswerMatching.isCorrect(answer: "\"two\"", expected: "two"))
        XCTAssertTrue(AnswerMatching.isCorrect(answer: "- no", expected: "no"))
        XCTAssertFalse(AnswerMatching.isCorrect(answer: "It is green", expected: "green"))
        XCTAssertFalse(AnswerMatching.isCorrect(answer: "yesno", expected: "yes"))
        XCTAssertFalse(AnswerMatching.isCorrect(answer: "", expected: "yes"))
        XCTAssertFalse(AnswerMatching.isCorrect(answer: "anything", expected: ""))
        XCTAssertEqual(AnswerMatching.firstWord("Circle!\nsquare"), "circle")
    }

    func testDatasetSkipsMalformedLinesNamingThem() {
        let text = """
            {"id":"a","scene":0,"image":"images/0.png","kind":"color","question":"What color?","answer":"red"}

            {"id":"b","image":"images/0.png","kind":"color","question":"What color?"}
            not json
            {"id":"c","image":"images/1.png","kind":"count","question":"How many?","answer":"two","extra":[1]}
            {"id":"d","image":"images/1.png","kind":"count","question":"How many?","answer":"one"}
            """
        let all = EvalDataset.parse(text)
        XCTAssertEqual(all.items.map(\.id), ["a", "c", "d"])
        XCTAssertEqual(all.problems, ["line 3: missing field 'answer'", "line 4: not a JSON object"])
        XCTAssertEqual(EvalDataset.parse(text, limit: 2).items.map(\.id), ["a", "c"])
    }

    func testListsAndCells() throws {
        XCTAssertEqual(try parseBudgets("64, 16,8,16"), [64, 16, 8])
        XCTAssertThrowsError(try parseBudgets("8,x"))
        XCTAssertThrowsError(try parseBudgets("0"))
        XCTAssertEqual(try EvalMethod.parseList("none,accm-no-caption,accm"), [.none, .accmNoCaption, .accm])
        XCTAssertThrowsError(try EvalMethod.parseList("accm,magic")) {
            XCTAssertTrue(String(describing: $0).contains("unknown pruner 'magic'"))
        }
        let plan = EvalPlan(budgets: [4, 16], methods: [.none, .uniform, .accm])
        XCTAssertEqual(try plan.cells(patchCount: 16), [
            EvalCell(budget: 16, method: .none), EvalCell(budget: 16, method: .uniform), EvalCell(budget: 16, method: .accm),
            EvalCell(budget: 4, method: .uniform), EvalCell(budget: 4, method: .accm),
        ])
        XCTAssertThrowsError(try EvalPlan(budgets: [64, 4], methods: [.accm]).cells(patchCount: 36)) {
            XCTAssertEqual(String(describing: $0), "budget 64 exceeds the model's 36 patches")
        }
        let item = EvalItem(id: "x", image: "i.png", kind: "color", question: "Q?", answer: "red")
        let r = plan.request(item, index: 3, image: [1], cell: EvalCell(budget: 4, method: .accmNoCaption))
        XCTAssertFalse(r.compensate)
        XCTAssertEqual(r.pruning, .accm(ranking: .mostSimilar, cap: .byScore, textPicks: nil))
        XCTAssertEqual(plan.request(item, index: 3, image: [1], cell: EvalCell(budget: 4, method: .random)).pruning, .random(seed: 3))
        XCTAssertEqual(r.generation.maxNewTokens, 4)
    }

    private func sampleResults() -> [CellResult] {
        var a = CellResult(cell: EvalCell(budget: 36, method: .none))
        a.add(kind: "color", correct: true, totalFLOPs: 2e9, decoderFLOPs: 1e9, referenceFLOPs: 5e12)
        a.add(kind: "count", correct: false, totalFLOPs: 4e9, decoderFLOPs: 3e9, referenceFLOPs: 7e12)
        var b = CellResult(cell: EvalCell(budget: 4, method: .accm))
        b.add(kind: "color", correct: true, totalFLOPs: 1e9, decoderFLOPs: 0.5e9)
        return [a, b]
    }

    func testMarkdownTableAndCSV() {
        let results = sampleResults()
        XCTAssertEqual(ResultsFormat.markdown(results), """
            | keep | none | accm |
            | ---: | ---: | ---: |
            | 36 | 50.0% / 3.00 | – |
            | 4 | – | 100.0% / 1.00 |

            """)
        XCTAssertEqual(ResultsFormat.csv(results), """
            budget,method,n,accuracy,mean_total_flops,mean_decoder_flops,mean_reference_flops,skipped,acc_color,acc_count
            36,none,2,0.500000,3.000000e+09,2.000000e+09,6.000000e+12,0,1.000000,0.000000
            4,accm,1,1.000000,1.000000e+09,5.000000e+08,0.000000e+00,0,1.000000,

            """)
        XCTAssertTrue(ResultsFormat.report(results, title: "t").contains("| 36 | none | 2 | 50.0% | 3.00 | 2.00 | 6000 | 100.0% | 0.0% |"))
    }

    func testLogAndLinearScales() {
        let log = AxisScale.log(covering: 0.03, 0.4)
        XCTAssertEqual(log.lower, 0.02, accuracy: 1e-12)
        XCTAssertEqual(log.upper, 0.5, accuracy: 1e-12)
        XCTAssertEqual(log.ticks.map(AxisScale.label), ["0.02", "0.05", "0.1", "0.2", "0.5"])
        XCTAssertEqual(log.fraction(0.1), 0.5, accuracy: 1e-12)
        XCTAssertEqual(AxisScale.log(covering: 0.0085, 0.028).ticks.map(AxisScale.label), ["0.005", "0.01", "0.02", "0.05"])
        let wide = AxisScale.log(covering: 2, 3e4)
        XCTAssertEqual(wide.ticks.map(AxisScale.label), ["1", "10", "100", "1000", "10000", "100000"])
        let exact = AxisScale.log(covering: 10, 10)
        XCTAssertEqual([exact.lower, exact.upper], [10, 20])
        let linear = AxisScale.linear(0, 100, about: 5)
        XCTAssertEqual(linear.ticks, [0, 20, 40, 60, 80, 100])
        XCTAssertEqual(AxisScale.linear(0.3, 7.9, about: 4).ticks, [0, 2, 4, 6, 8])
        XCTAssertEqual(AxisScale.label(2e-5), "2E-5")
        XCTAssertEqual(ProgressText.duration(3723), "1:02:03")
        XCTAssertEqual(ProgressText.line(done: 5, total: 10, elapsed: 10, barWidth: 4), "[##..] 5/10  50.0%  elapsed 0:10  eta 0:10")
    }

    func testPNGRoundTripsThroughTheProjectDecoder() throws {
        var canvas = Canvas(width: 37, height: 11, background: RGB(10, 20, 30))
        canvas.line(0, 0, 36, 10, RGB(255, 0, 0))
        canvas.text("A1%", x: 2, y: 2, RGB(0, 200, 0), scale: 1)
        canvas.disc(30, 3, radius: 2, RGB(0, 0, 255))
        let decoded = try ImageDecoder.decode(try canvas.png())
        XCTAssertEqual(decoded.width, 37)
        XCTAssertEqual(decoded.height, 11)
        XCTAssertEqual(decoded.pixels, canvas.pixels)
        XCTAssertNil(decoded.alpha)
        // A noisy image that compresses badly still round-trips.
        var state: UInt32 = 1
        let noise = (0..<(64 * 48 * 3)).map { _ -> UInt8 in state = state &* 1664525 &+ 1013904223; return UInt8(state >> 24) }
        XCTAssertEqual(try ImageDecoder.decode(PNGEncoder.encode(width: 64, height: 48, rgb: noise)).pixels, noise)
    }

    func testFontDrawsTextAtTwiceItsSize() {
        var canvas = Canvas(width: 40, height: 20)
        canvas.text("-", x: 0, y: 0)
        // "-" is row 3 fully set: pixels (0...9, 6...7) at 2×.
        XCTAssertEqual(canvas.pixel(x: 0, y: 6), .black)
        XCTAssertEqual(canvas.pixel(x: 9, y: 7), .black)
        XCTAssertEqual(canvas.pixel(x: 0, y: 5), .white)
        XCTAssertEqual(canvas.pixel(x: 10, y: 6), .white)
        XCTAssertEqual(Canvas.textWidth("ab"), 22)
        XCTAssertEqual(BitmapFont.glyph("a"), BitmapFont.glyph("A"))
    }
}
