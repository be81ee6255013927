// Axis domains and ticks: linear (1, 2, 5 × 10^k steps) and log10 (decades, with 2 and 5 when few).

import Foundation

public struct AxisScale: Sendable, Equatable {
    public var lower: Double
    public var upper: Double
    public var logarithmic: Bool
    public var ticks: [Double]

    /// A log10 axis covering `minimum...maximum` (both > 0). Spanning more than two decades it runs over
    /// whole decades with a tick at each; otherwise it runs between the nearest 1-2-5 values
    /// (1, 2, 5 × 10^k) outside the data, with a tick at each 1-2-5 value.
    public static func log(covering minimum: Double, _ maximum: Double) -> AxisScale {
        precondition(minimum > 0 && maximum >= minimum, "a log axis needs positive values")
        let lowExp = Foundation.floor(log10(minimum) + 1e-9), highExp = max(Foundation.ceil(log10(maximum) - 1e-9), lowExp + 1)
        if log10(maximum / minimum) > 2 {
            let ticks = stride(from: lowExp, through: highExp, by: 1).map { pow(10, $0) }
            return AxisScale(lower: ticks.first!, upper: ticks.last!, logarithmic: true, ticks: ticks)
        }
        let steps = stride(from: lowExp, through: highExp, by: 1).flatMap { e in [1.0, 2, 5].map { $0 * pow(10, e) } }
        let lower = steps.last { $0 <= minimum * (1 + 1e-9) }!
        let upper = steps.first { $0 >= maximum * (1 - 1e-9) && $0 > lower * (1 + 1e-9) }!
        let ticks = steps.filter { $0 >= lower && $0 <= upper }
        return AxisScale(lower: lower, upper: upper, logarithmic: true, ticks: ticks)
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
