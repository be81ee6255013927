// transformers' `convert_to_rgb` for images with transparency: `Image.alpha_composite` of the RGBA
// image over an opaque white one, in Pillow's fixed-point arithmetic (AlphaComposite.c, 7 fraction
// bits), then `convert("RGB")`.

extension RGBImage {
    /// The image composited over opaque white as transformers' `convert_to_rgb` does (unchanged when opaque).
    public func compositedOntoWhite() -> RGBImage {
        guard let alpha else { return self }
        var out = pixels
        out.withUnsafeMutableBufferPointer { rgb in
            alpha.withUnsafeBufferPointer { a in
                for p in 0..<a.count {
                    let srcA = UInt32(a[p])
                    if srcA == 0 {
                        rgb[3 * p] = 255
                        rgb[3 * p + 1] = 255
                        rgb[3 * p + 2] = 255
                        continue
                    }
                    // Over an opaque destination the output alpha is 255·255, so coef1 = a·128 exactly.
                    let coef1 = srcA * 255 * 255 * 128 / (srcA * 255 + 255 * (255 - srcA))
                    let coef2 = 255 * 128 - coef1
                    for c in 0..<3 {
                        let t = UInt32(rgb[3 * p + c]) * coef1 + 255 * coef2 + (0x80 << 7)
                        rgb[3 * p + c] = UInt8(truncatingIfNeeded: (((t >> 8) + t) >> 8) >> 7)
                    }
                }
            }
        }
        return RGBImage(unchecked: width, height: height, pixels: out, alpha: nil)
    }
}
