// `accm info`: what the engine runs on.

import ArgumentParser
import CZeroMQ
import Foundation
import Tensor

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the machine, BLAS and ZeroMQ the engine runs with.")

    @OptionGroup var engine: EngineOptions

    func run() throws {
        engine.apply()
        print(MachineDescription.current.lines.joined(separator: "\n"))
    }
}

/// The environment a figure was measured in, printed with every benchmark.
struct MachineDescription {
    var cpu: String
    var onlineCores: Int
    var engineThreads: Int
    var blasThreads: Int
    var blasCore: String
    var blasConfiguration: String
    var zeroMQVersion: String

    static var current: MachineDescription {
        var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
        zmq_version(&major, &minor, &patch)
        return MachineDescription(
            cpu: cpuModel(), onlineCores: ProcessInfo.processInfo.activeProcessorCount,
            engineThreads: Parallelism.threadCount, blasThreads: BLAS.threadCount,
            blasCore: BLAS.coreName, blasConfiguration: BLAS.configuration,
            zeroMQVersion: "\(major).\(minor).\(patch)")
    }

    var lines: [String] {
        [
            "cpu: \(cpu) (\(onlineCores) online cores)",
            "threads: engine \(engineThreads), OpenBLAS \(blasThreads)",
            "OpenBLAS: \(blasConfiguration) (kernels for \(blasCore)"
                + (getenv("OPENBLAS_CORETYPE").map { ", OPENBLAS_CORETYPE=\(String(cString: $0))" } ?? "") + ")",
            "libzmq: \(zeroMQVersion)",
        ]
    }

    private static func cpuModel() -> String {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "unknown" }
        for line in text.split(separator: "\n") where line.hasPrefix("model name") {
            return line.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown"
        }
        return "unknown"
    }
}
