// How `accm ask` shows an answer: readable text, or one JSON object.

import ACCM
import Foundation

struct AnswerReport: Encodable {
    struct Candidate: Encodable {
        var text: String
        var beamScore: Float
        var selectorScore: Float
        var chosen: Bool
    }
    struct StageFigures: Encodable {
        var stage: String
        var seconds: Double?
        var gflop: Double
    }

    var answer: String
    var finishReason: String
    var caption: String?
    var candidates: [Candidate]
    var keptTokens: Int
    var patches: Int
    var keptIndices: [Int]
    var promptTokens: Int
    var stages: [StageFigures]
    var totalGFLOP: Double
    var unprunedGFLOP: Double

    init(_ a: ACCMAnswer, unpruned: Double) {
        answer = a.text
        finishReason = a.finishReason.rawValue
        caption = a.caption
        candidates = a.candidates.enumerated().map { i, c in
            Candidate(text: c.text, beamScore: c.beamScore, selectorScore: c.selectorScore, chosen: i == a.chosenCandidate)
        }
        keptTokens = a.keptIndices.count
        patches = a.patchCount
        keptIndices = a.keptIndices
        promptTokens = a.promptTokens
        stages = Stage.allCases.compactMap { s in
            a.flops[s].map { StageFigures(stage: s.rawValue, seconds: a.seconds[s], gflop: $0 / 1e9) }
        }
        totalGFLOP = a.totalFLOPs / 1e9
        unprunedGFLOP = unpruned / 1e9
    }

    func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }

    var text: String {
        var lines: [String] = []
        if let caption { lines.append("caption: \(caption)") }
        for (i, c) in candidates.enumerated() {
            let scores = String(format: "beam %.3f, selector %.3f", c.beamScore, c.selectorScore)
            lines.append("  \(c.chosen ? "*" : " ") candidate \(i + 1): \(c.text) (\(scores))")
        }
        lines.append("kept \(keptTokens) of \(patches) visual tokens; prompt \(promptTokens) tokens; finish: \(finishReason)")
        for s in stages {
            let time = s.seconds.map { String(format: "%8.1f ms", $0 * 1000) } ?? "        -"
            let name = s.stage.padding(toLength: 9, withPad: " ", startingAt: 0)
            lines.append("  \(name) \(time)  " + String(format: "%10.4f GFLOP", s.gflop))
        }
        lines.append(String(format: "total %.4f GFLOP (%.0f%% of the same answer unpruned: %.4f GFLOP)",
                            totalGFLOP, unprunedGFLOP > 0 ? 100 * totalGFLOP / unprunedGFLOP : 0, unprunedGFLOP))
        return lines.joined(separator: "\n")
    }
}
