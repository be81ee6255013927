// LLaVA-1.5's `image_aspect_ratio: "pad"`: `expand2square` from llava/mm_utils.py.

extension RGBImage {
    /// The image centred on a square of side max(width, height) filled with `fill` (LLaVA's `expand2square`).
    ///
    /// The image goes at ((side − width) / 2, (side − height) / 2), rounded down; a square image is returned
    /// as it is. The result carries no opacity (LLaVA pads the `convert("RGB")` image).
    public func paddedToSquare(fill: (UInt8, UInt8, UInt8)) -> RGBImage {
        guard width != height else { return self }
        let side = max(width, height)
        let left = (side - width) / 2, top = (side - height) / 2
        var out = [UInt8](repeating: 0, count: side * side * 3)
        out.withUnsafeMutableBufferPointer { out in
            for p in 0..<side * side {
                out[3 * p] = fill.0
                out[3 * p + 1] = fill.1
                out[3 * p + 2] = fill.2
            }
            pixels.withUnsafeBufferPointer { src in
                for y in 0..<height {
                    (out.baseAddress! + ((top + y) * side + left) * 3)
                        .update(from: src.baseAddress! + y * width * 3, count: width * 3)
                }
            }
        }
        return RGBImage(unchecked: side, height: side, pixels: out, alpha: nil)
    }

    /// LLaVA's fill colour for a processor mean: `tuple(int(x * 255) for x in image_mean)`.
    public static func squarePaddingFill(mean: [Double]) -> (UInt8, UInt8, UInt8) {
        func byte(_ i: Int) -> UInt8 { UInt8(clamping: Int(i < mean.count ? mean[i] * 255 : 0)) }
        return (byte(0), byte(1), byte(2))
    }
}
