// accuracy_vs_flops.png: accuracy (%) against mean total GFLOP per request (log x), one polyline with
// markers per method, tick labels, axis titles and a legend, all drawn with the 5×7 font at 2×.

import Foundation

public enum AccuracyPlot {
    static let palette: [RGB] = [
        RGB(31, 119, 180), RGB(255, 127, 14), RGB(44, 160, 44), RGB(214, 39, 40),
        RGB(148, 103, 189), RGB(140, 86, 75), RGB(227, 119, 194), RGB(23, 190, 207),
    ]

    public static func render(_ results: [CellResult], width: Int = 900, height: Int = 560) -> Canvas {
        var canvas = Canvas(width: width, height: height)
        var methods: [EvalMethod] = []
        for r in results where !methods.contains(r.cell.method) { methods.append(r.cell.method) }
        let gflops = results.map { $0.meanTotalFLOPs / 1e9 }.filter { $0 > 0 }
        let x = AxisScale.log(covering: gflops.min() ?? 0.1, gflops.max() ?? 1)
        let y = AxisScale.linear(0, 100, about: 5)
        let legendWidth = (methods.map { Canvas.textWidth($0.rawValue) }.max() ?? 0) + 50
        let left = 80, top = 50, right = width - legendWidth - 20, bottom = height - 70
        func px(_ v: Double) -> Int { left + Int((x.fraction(v) * Double(right - left)).rounded()) }
        func py(_ v: Double) -> Int { bottom - Int((y.fraction(v) * Double(bottom - top)).rounded()) }

        let title = "ACCURACY VS FLOPS"
        canvas.text(title, x: (left + right - Canvas.textWidth(title)) / 2, y: 16)
        // Grid, ticks and tick labels.
        for t in y.ticks {
            canvas.line(left, py(t), right, py(t), .grey)
            canvas.line(left - 6, py(t), left, py(t), .black)
            let label = AxisScale.label(t)
            canvas.text(label, x: left - 10 - Canvas.textWidth(label), y: py(t) - Canvas.textHeight() / 2)
        }
        for t in x.ticks {
            let major = abs(log10(t) - log10(t).rounded()) < 1e-9
            canvas.line(px(t), top, px(t), bottom, major ? .grey : RGB(230, 230, 230))
            canvas.line(px(t), bottom, px(t), bottom + 6, .black)
            let label = AxisScale.label(t)
            canvas.text(label, x: px(t) - Canvas.textWidth(label) / 2, y: bottom + 10)
        }
        canvas.line(left, top, left, bottom, .black, thickness: 2)
        canvas.line(left, bottom, right, bottom, .black, thickness: 2)
        let xTitle = "MEAN TOTAL GFLOP PER REQUEST (LOG)"
        canvas.text(xTitle, x: (left + right - Canvas.textWidth(xTitle)) / 2, y: bottom + 36)
        let yTitle = "ACCURACY %"
        canvas.text(yTitle, x: 16, y: (top + bottom + Canvas.textWidth(yTitle)) / 2, vertical: true)

        // One polyline per method, points ordered by cost.
        for (m, method) in methods.enumerated() {
            let color = palette[m % palette.count]
            let points = results.filter { $0.cell.method == method && $0.meanTotalFLOPs > 0 }
                .map { (px($0.meanTotalFLOPs / 1e9), py(100 * $0.accuracy)) }.sorted { $0.0 < $1.0 }
            for (a, b) in zip(points, points.dropFirst()) { canvas.line(a.0, a.1, b.0, b.1, color, thickness: 2) }
            for p in points { canvas.disc(p.0, p.1, radius: 5, color) }
            // Legend entry.
            let ly = top + 10 + m * 24
            canvas.line(right + 20, ly + 6, right + 44, ly + 6, color, thickness: 2)
            canvas.disc(right + 32, ly + 6, radius: 4, color)
            canvas.text(method.rawValue, x: right + 52, y: ly)
        }
        return canvas
    }
}
