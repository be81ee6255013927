// Options every command that loads an ACCM model directory shares.

import ACCM
import ArgumentParser

struct ModelOptions: ParsableArguments {
    @Option(help: "ACCM model directory (accm.json + one sub-directory per component; see ModelDirectory.swift). Default: $ACCM_MODEL, else the shipped family, Models/accm-world.")
    var model: String?

    @Flag(help: "Parse special tokens spelled in the question (\"</s>\", \"<image>\") as those tokens, as the authors' code does. Off by default: user text is tokenized as text, so only the prompt template inserts special tokens.")
    var parseSpecial = false

    /// The directory in force.
    var directory: String { model ?? DefaultPaths.model }

    /// Loads the embedded pipeline.
    func load() throws -> ACCMPipeline {
        try ACCMPipeline.load(directory: directory, parseSpecialTokens: parseSpecial)
    }
}
