// `accm bench …`: speed and memory figures, measured (never asserted in unit tests).

import ArgumentParser

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure the engine's speed at real model shapes, image input and the tokenizers' throughput.",
        subcommands: [BenchEngine.self, BenchRequest.self, BenchImage.self, BenchTokenizer.self, BenchCluster.self, BenchServe.self]
    )
}
