// An RGB8 raster with the few drawing operations the plot needs.

public struct RGB: Sendable, Equatable {
    public var r, g, b: UInt8
    public init(_ r: UInt8, _ g: UInt8, _ b: UInt8) {
        self.r = r
        self.g = g
        self.b = b
    }
    public static let white = RGB(255, 255, 255), black = RGB(0, 0, 0), grey = RGB(200, 200, 200)
}

public struct Canvas: Sendable {
    public let width: Int, height: Int
    public private(set) var pixels: [UInt8]

    public init(width: Int, height: Int, background: RGB = .white) {
        self.width = width
        self.height = height
        pixels = [UInt8](repeating: 0, count: width * height * 3)
        fill(x: 0, y: 0, width: width, height: height, background)
    }

    public func pixel(x: Int, y: Int) -> RGB {
        let i = (y * width + x) * 3
        return RGB(pixels[i], pixels[i + 1], pixels[i + 2])
    }

    public mutating func set(x: Int, y: Int, _ color: RGB) {
        guard x >= 0, y >= 0, x < width, y < height else { return }
        let i = (y * width + x) * 3
        pixels[i] = color.r
        pixels[i + 1] = color.g
        pixels[i + 2] = color.b
    }

    public mutating func fill(x: Int, y: Int, width w: Int, height h: Int, _ color: RGB) {
        for yy in y..<(y + h) { for xx in x..<(x + w) { set(x: xx, y: yy, color) } }
    }

    /// A line `thickness` pixels wide (Bresenham, each point stamped as a square).
    public mutating func line(_ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int, _ color: RGB, thickness: Int = 1) {
        var x = x0, y = y0
        let dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1
        var error = dx + dy
        while true {
            fill(x: x - (thickness - 1) / 2, y: y - (thickness - 1) / 2, width: thickness, height: thickness, color)
            if x == x1 && y == y1 { break }
            let e2 = 2 * error
            if e2 >= dy { error += dy; x += sx }
            if e2 <= dx { error += dx; y += sy }
        }
    }

    /// A filled disc of `radius` around (cx, cy).
    public mutating func disc(_ cx: Int, _ cy: Int, radius: Int, _ color: RGB) {
        for dy in -radius...radius { for dx in -radius...radius where dx * dx + dy * dy <= radius * radius {
            set(x: cx + dx, y: cy + dy, color)
        } }
    }

    /// Width in pixels of `text` drawn at `scale`.
    public static func textWidth(_ text: String, scale: Int = 2) -> Int {
        text.isEmpty ? 0 : (text.count * (BitmapFont.width + 1) - 1) * scale
    }

    public static func textHeight(scale: Int = 2) -> Int { BitmapFont.height * scale }

    /// Draws `text` with its top-left corner at (x, y); `vertical` runs it bottom to top.
    public mutating func text(_ text: String, x: Int, y: Int, _ color: RGB = .black, scale: Int = 2, vertical: Bool = false) {
        for (n, c) in text.enumerated() {
            let rows = BitmapFont.glyph(c)
            for (row, bits) in rows.enumerated() {
                for col in 0..<BitmapFont.width where bits & (0x10 >> UInt8(col)) != 0 {
                    let along = n * (BitmapFont.width + 1) + col, across = row
                    if vertical {
                        fill(x: x + across * scale, y: y - (along + 1) * scale, width: scale, height: scale, color)
                    } else {
                        fill(x: x + along * scale, y: y + across * scale, width: scale, height: scale, color)
                    }
                }
            }
        }
    }

    public func png() throws -> [UInt8] { try PNGEncoder.encode(width: width, height: height, rgb: pixels) }
}
