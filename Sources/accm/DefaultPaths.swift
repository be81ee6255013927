// Where `accm ask` and `accm eval` look when no --model / --data is given: the family this repository ships
// (Models/accm-world, trained by Training/) and its committed test split (Training/test).

import Foundation

enum DefaultPaths {
    /// $ACCM_MODEL, else Models/accm-world under the current directory, else under the checkout this binary
    /// was built from.
    static var model: String {
        if let path = ProcessInfo.processInfo.environment["ACCM_MODEL"], !path.isEmpty { return path }
        return inRepository("Models/accm-world")
    }

    /// Training/test under the current directory, else under the checkout this binary was built from.
    static var testSplit: String { inRepository("Training/test") }

    private static func inRepository(_ relative: String) -> String {
        if FileManager.default.fileExists(atPath: relative) { return relative }
        // #filePath is Sources/accm/DefaultPaths.swift in the checkout that was built.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let candidate = root.appendingPathComponent(relative).path
        return FileManager.default.fileExists(atPath: candidate) ? candidate : relative
    }
}
