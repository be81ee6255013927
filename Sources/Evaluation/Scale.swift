// Axis domains and ticks: linear (1, 2, 5 × 10^k steps) and log10 (decades, with 2 and 5 when few).

import Foundation

public struct AxisScale: Sendable, Equatable {
    public var lower: Double
    public var upper: Double
    public var logarithmic: Bool
    public var ticks: [Double]

    /// A log10 axis over whole decades covering `minimum...maximum` (both > 0); ticks at each decade,
    /// plus 2× and 5× when the axis spans at most two decades.
    public static func log(covering minimum: Double, _ maximum: Double) -> AxisScale {
        precondition(minimum > 0 && maximum >= minimum, "a log axis needs positive values")
        let lowExp = Foundation.floor(log10(minimum) + 1e-9), highExp = max(Foundation.ceil(log10(maximum) - 1e-9), lowExp + 1)
        var ticks: [Double] = []
        let multiples: [Double] = highExp - lowExp <= 2 ? [1, 2, 5] : [1]
        for e in stride(from: lowExp, through: highExp, by: 1) {
            for m in multiples {
                let t = m * pow(10, e)
                if t <= pow(10, highExp) * (1 + 1e-9) { ticks.append(t) }
            }
        }
        return AxisScale(lower: pow(10, lowExp), upper: pow(10, highExp), logarithmic: true, ticks: ticks)
    }

    /// A linear axis from `minimum` to `maximum` with about `count` round steps.
    public static func linear(_ minimum: Double, _ maximum: Double, about count: Int = 5) -> AxisScale {
        let span = max(maximum - minimum, 1e-12)
        let raw = span / Double(max(count, 1))
        let magnitude = pow(10, Foundation.floor(log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw * (1 - 1e-9) }!
        let lower = Foundation.floor(minimum / step + 1e-9) * step, upper = Foundation.ceil(maximum / step - 1e-9) * step
        let ticks = stride(from: 0, through: Int(((upper - lower) / step).rounded()), by: 1).map { lower + Double($0) * step }
        return AxisScale(lower: lower, upper: upper, logarithmic: false, ticks: ticks)
    }

    /// Where `value` lies on the axis, 0 at `lower`, 1 at `upper`.
    public func fraction(_ value: Double) -> Double {
        logarithmic ? (log10(value) - log10(lower)) / (log10(upper) - log10(lower)) : (value - lower) / (upper - lower)
    }

    /// A short tick label ("0.02", "5", "100", "2E-05").
    public static func label(_ value: Double) -> String {
        if value == 0 { return "0" }
        if abs(value) >= 1e-3 && abs(value) < 1e6 {
            var s = String(format: "%.3f", value)
            while s.hasSuffix("0") { s.removeLast() }
            if s.hasSuffix(".") { s.removeLast() }
            return s
        }
        return String(format: "%.0E", value).replacingOccurrences(of: "E-0", with: "E-").replacingOccurrences(of: "E+0", with: "E")
            .replacingOccurrences(of: "E+", with: "E")
    }
}
