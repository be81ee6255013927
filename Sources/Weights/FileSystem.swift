// The few file-system calls the loaders need, on POSIX directly.

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Minimal POSIX file access for checkpoint directories.
public enum FileSystem {
    /// Whether a file or directory exists at `path`.
    public static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    /// Whether `path` is a directory.
    public static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    /// The whole file at `path`.
    public static func read(_ path: String) throws -> Data {
        let file = try MappedFile(path: path)
        return file.bytes.isEmpty ? Data() : Data(file.bytes)
    }

    /// Names of the entries of a directory (without `.` and `..`).
    public static func list(_ directory: String) throws -> [String] {
        guard let dir = opendir(directory) else {
            throw WeightsError.cannotOpen(path: directory, reason: String(cString: strerror(errno)))
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}
