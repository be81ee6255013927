// The progress line: a bar, counts, elapsed time and the estimated time left.

import Foundation

public enum ProgressText {
    /// "[#####.....]  120/760  15.8%  elapsed 0:12  eta 1:04"
    public static func line(done: Int, total: Int, elapsed: Double, barWidth: Int = 30) -> String {
        let fraction = total > 0 ? Double(done) / Double(total) : 1
        let filled = Int((fraction * Double(barWidth)).rounded(.down))
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: barWidth - filled)
        let eta = done > 0 ? elapsed / Double(done) * Double(total - done) : nil
        return "[\(bar)] \(done)/\(total) " + String(format: "%5.1f%%", 100 * fraction)
            + "  elapsed \(duration(elapsed))  eta \(eta.map(duration) ?? "?")"
    }

    /// "0:07", "12:34", "1:02:03".
    public static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}
