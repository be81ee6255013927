import CTurboJPEG
import CZlib
import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// How a run of the `accm` binary ended.
struct CommandResult {
    /// The exit status, nil when a signal ended it.
    var status: Int32?
    /// The signal that ended it, nil when it exited.
    var signal: Int32?
    var stdout: String
    var stderr: String
    /// Peak resident memory of the process (its VmHWM, reported through ACCM_PEAK_MEMORY_FILE; 0 if unknown).
    var peakResidentBytes: Int
    var timedOut: Bool
}

enum Accm {
    /// The repository root (this file is Tests/CommandLineTests/CommandRunner.swift).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The `accm` binary built beside this test bundle.
    static var binary: String {
        let bundle = URL(fileURLWithPath: ProcessInfo.processInfo.arguments[0]).resolvingSymlinksInPath()
        var directory = bundle.deletingLastPathComponent()
        while directory.path != "/" {
            let candidate = directory.appendingPathComponent("accm").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            directory = directory.deletingLastPathComponent()
        }
        return root.appendingPathComponent(".build/release/accm").path
    }

    /// Runs `accm arguments…` (or another `executable`), killing it after `timeout` seconds; standard input is
    /// /dev/null.
    static func run(_ arguments: [String], executable: String? = nil, timeout: Double = 120) throws -> CommandResult {
        let binary = executable ?? self.binary
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("accm-run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let outPath = scratch.appendingPathComponent("stdout").path, errPath = scratch.appendingPathComponent("stderr").path
        let peakPath = scratch.appendingPathComponent("peak").path
        let environment = ProcessInfo.processInfo.environment.merging(["ACCM_PEAK_MEMORY_FILE": peakPath]) { $1 }
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { envp.forEach { free($0) } }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let argv = ([binary] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, binary, &actions, nil, argv, envp)
        guard spawned == 0 else { throw NSError(domain: "posix_spawn", code: Int(spawned)) }

        var status: Int32 = 0
        var usage = rusage()
        let deadline = Date().addingTimeInterval(timeout)
        var timedOut = false
        while wait4(pid, &status, WNOHANG, &usage) == 0 {
            if Date() > deadline {
                kill(pid, SIGKILL)
                wait4(pid, &status, 0, &usage)
                timedOut = true
                break
            }
            usleep(5_000)
        }
        let exited = status & 0x7F == 0
        func text(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
        return CommandResult(
            status: exited ? (status >> 8) & 0xFF : nil, signal: exited ? nil : status & 0x7F,
            stdout: text(outPath), stderr: text(errPath),
            peakResidentBytes: Int(text(peakPath).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0,
            timedOut: timedOut)
    }
}

/// PNG files made for a test: zlib-compressed, so that a large image is a small file.
enum PNGFile {
    static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let body = Array(type.utf8) + data
        let crc = body.withUnsafeBufferPointer { UInt32(crc32(0, $0.baseAddress, uInt($0.count))) }
        return be32(UInt32(data.count)) + body + be32(crc)
    }

    static func be32(_ v: UInt32) -> [UInt8] { [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: v >> $0) } }

    static func header(width: Int, height: Int) -> [UInt8] {
        [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
            + chunk("IHDR", be32(UInt32(width)) + be32(UInt32(height)) + [8, 2, 0, 0, 0])
    }

    /// An 8-bit RGB image whose pixel (x, y) is `pixel(x, y)`, compressed (row filter 0).
    static func rgb(width: Int, height: Int, pixel: (Int, Int) -> (UInt8, UInt8, UInt8)) -> [UInt8] {
        var raw = [UInt8](repeating: 0, count: height * (width * 3 + 1))
        for y in 0..<height {
            for x in 0..<width {
                let (r, g, b) = pixel(x, y)
                let o = y * (width * 3 + 1) + 1 + 3 * x
                (raw[o], raw[o + 1], raw[o + 2]) = (r, g, b)
            }
        }
        var size = compressBound(uLong(raw.count))
        var compressed = [UInt8](repeating: 0, count: Int(size))
        _ = compress2(&compressed, &size, raw, uLong(raw.count), 9)
        return header(width: width, height: height) + chunk("IDAT", Array(compressed[..<Int(size)])) + chunk("IEND", [])
    }
}

/// JPEG files made for a test with TurboJPEG.
enum JPEGFile {
    /// A progressive 4:2:0 JPEG of `width × height` pixels of one colour.
    static func progressive(width: Int, height: Int) throws -> [UInt8] {
        let pixels = [UInt8](repeating: 0, count: width * height * 3).enumerated().map { UInt8(truncatingIfNeeded: $0.offset % 3 * 90 + 30) }
        guard let handle = tjInitCompress() else { throw NSError(domain: "tjInitCompress", code: 1) }
        defer { tjDestroy(handle) }
        var buffer: UnsafeMutablePointer<UInt8>?
        var size: UInt = 0
        let status = tjCompress2(handle, pixels, Int32(width), 0, Int32(height), Int32(TJPF_RGB.rawValue), &buffer, &size,
                                 Int32(TJSAMP_420.rawValue), 90, TJFLAG_PROGRESSIVE)
        defer { tjFree(buffer) }
        guard status == 0, let buffer else { throw NSError(domain: "tjCompress2", code: Int(status)) }
        return Array(UnsafeBufferPointer(start: buffer, count: Int(size)))
    }
}

/// A scratch directory removed when the test ends.
final class ScratchDirectory {
    let url: URL
    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("accm-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(at: url) }
    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
    func write(_ bytes: [UInt8], to name: String) throws -> String {
        try Data(bytes).write(to: url.appendingPathComponent(name))
        return path(name)
    }
}
