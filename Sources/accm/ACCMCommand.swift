// The `accm` command: one binary whose subcommands grow with the system.

import ArgumentParser
import Foundation
import Tensor

@main
struct ACCMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "accm",
        abstract: "Serve vision-language models that prune visual tokens and compensate with a question-guided caption.",
        subcommands: [Info.self, Bench.self]
    )

    static func main() {
        restartWithBestBLASKernelsIfNeeded()
        main(nil)
    }

    /// OpenBLAS chooses kernels when it loads; if it fell back to a generic one on a CPU it does not know,
    /// start this process again with OPENBLAS_CORETYPE naming the right family (see BLASKernelSelection.swift).
    private static func restartWithBestBLASKernelsIfNeeded() {
        guard let core = BLAS.coreTypeOverride else { return }
        setenv("OPENBLAS_CORETYPE", core, 1)
        let arguments = CommandLine.arguments
        var argv = arguments.map { strdup($0) } + [nil]
        execv("/proc/self/exe", &argv)
        // execv returns only on failure: carry on with the generic kernels.
        FileHandle.standardError.write(
            Data("accm: could not restart with OPENBLAS_CORETYPE=\(core); BLAS runs on generic kernels\n".utf8))
    }
}
