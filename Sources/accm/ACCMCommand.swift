// The `accm` command: one binary whose subcommands grow with the system.

import ArgumentParser
import Foundation
import Tensor

@main
struct ACCMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "accm",
        abstract: "Serve vision-language models that prune visual tokens and compensate with a question-guided caption.",
        subcommands: [Ask.self, Eval.self, Serve.self, GatewayCommand.self, CoordinatorCommand.self, WorkerCommand.self, ClusterCommand.self, Keygen.self, Quantize.self, Info.self, Bench.self]
    )

    static func main() {
        restartWithBestBLASKernelsIfNeeded()
        keepFreedTensorMemoryInTheProcess()
        reportPeakMemoryAtExitIfAsked()
        main(nil)
    }

    /// With ACCM_PEAK_MEMORY_FILE set, the process's peak resident memory (VmHWM, bytes) is written to that
    /// file when it exits: what the memory bounds in the README are measured with. (A parent's getrusage
    /// cannot tell: a vfork-spawned child inherits the parent's high-water mark at exec.)
    private static func reportPeakMemoryAtExitIfAsked() {
        guard ProcessInfo.processInfo.environment["ACCM_PEAK_MEMORY_FILE"] != nil else { return }
        atexit {
            guard let path = ProcessInfo.processInfo.environment["ACCM_PEAK_MEMORY_FILE"],
                  let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
                  let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
                  let kilobytes = Int(line.split(separator: " ").dropFirst().first ?? "")
            else { return }
            try? "\(kilobytes * 1024)\n".write(toFile: path, atomically: false, encoding: .utf8)
        }
    }

    /// Every forward allocates and frees tensors of the same few sizes. By default glibc serves blocks over
    /// 128 KiB with fresh mmaps and unmaps them on free, so each use page-faults its memory in again;
    /// raising the thresholds lets freed blocks be reused (ViT-L forward, three alternating runs each:
    /// 1.90 s mean against 1.96 s, a small gain within this machine's run-to-run noise).
    private static func keepFreedTensorMemoryInTheProcess() {
        let trimThreshold: Int32 = -1, mmapThreshold: Int32 = -3  // M_TRIM_THRESHOLD, M_MMAP_THRESHOLD (malloc.h)
        _ = glibcMallopt(mmapThreshold, 1 << 30)
        _ = glibcMallopt(trimThreshold, 1 << 30)
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

/// glibc's `mallopt(3)` (malloc.h is not part of the Glibc module).
@_silgen_name("mallopt")
private func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
