// Which model a worker serves, as a short fingerprint of the model directory's files: workers of different
// models (or of one model at different versions) are refused by the coordinator.

import Foundation

extension ModelDirectory {
    /// A 64-bit FNV-1a fingerprint (16 hex digits) of every file under the directory: its relative path, its
    /// size, and its content (for files over 16 MiB: the first and last 4 MiB, so that a 7B checkpoint is
    /// fingerprinted in well under a second). Not a security measure: it tells models apart.
    public func identity() throws -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix<Bytes: Sequence>(_ bytes: Bytes) where Bytes.Element == UInt8 {
            for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        }
        let fm = FileManager.default
        let root = URL(fileURLWithPath: path).resolvingSymlinksInPath()
        guard let walker = fm.enumerator(atPath: root.path) else {
            throw CocoaError(.fileReadNoSuchFile, userInfo: [NSFilePathErrorKey: path])
        }
        var files: [String] = []
        while let relative = walker.nextObject() as? String {
            var isDirectory: ObjCBool = false
            let full = root.appendingPathComponent(relative).resolvingSymlinksInPath().path
            if fm.fileExists(atPath: full, isDirectory: &isDirectory), !isDirectory.boolValue { files.append(relative) }
        }
        for relative in files.sorted() {
            let url = root.appendingPathComponent(relative).resolvingSymlinksInPath()
            let handle = try FileHandle(forReadingFrom: url)
            defer { try? handle.close() }
            let size = try handle.seekToEnd()
            mix(relative.utf8)
            mix(withUnsafeBytes(of: size.littleEndian) { Array($0) })
            let window: UInt64 = 4 << 20
            if size <= 4 * window {
                try handle.seek(toOffset: 0)
                mix(try handle.readToEnd() ?? Data())
            } else {
                try handle.seek(toOffset: 0)
                mix(try handle.read(upToCount: Int(window)) ?? Data())
                try handle.seek(toOffset: size - window)
                mix(try handle.read(upToCount: Int(window)) ?? Data())
            }
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}
