// transformers' CLIPImageProcessor, PIL path (`CLIPImageProcessorPil` in transformers 5; the
// reference), on a decoded image:
//   convert_to_rgb (transparency composited onto white) → resize (PIL bicubic; shortest edge to S,
//   long side int(S·long/short)) → center crop (top = (h − ch) // 2, zero padding when smaller) →
//   rescale (×factor in float64, then float32) → normalize ((x − mean) / std in float32) → [3, H, W].
// With `padToSquare` (LLaVA-1.5's "pad"), the image is first centred on a square filled with the
// mean colour.
//
// transformers 5's default `CLIPImageProcessor` is the torchvision backend when torchvision is
// installed: it resizes uint8 tensors with torchvision's antialiased bicubic (close to PIL, not
// identical), pads a too-small image by floor((crop − size) / 2) before the top/left instead of
// ceil, and fuses rescale into normalize ((x − 255·mean) / (255·std)), which rounds differently in
// the last bits. This type follows the PIL path.
//
// Rescale and normalize map each byte value of each channel independently, so they are done by a
// 3 × 256 table computed with transformers' exact float operations: the output is bit-identical.

import TensorCore

/// How transparency in a decoded image is turned into RGB before preprocessing.
public enum TransparencyHandling: Sendable, Equatable {
    /// Composite onto white, as transformers' `convert_to_rgb` does with an image that has transparency.
    case compositeOntoWhite
    /// Keep the RGB values and drop the opacity, as Pillow's `convert("RGB")` (and LLaVA's loader) does.
    case discard
}

/// Turns decoded images into CLIP pixel values exactly as transformers' PIL-path CLIPImageProcessor does.
public struct CLIPImagePreprocessor: Sendable {
    /// The processor settings.
    public let configuration: PreprocessorConfiguration
    /// Pad to a square with the mean colour first (LLaVA-1.5 `image_aspect_ratio: "pad"`).
    public let padToSquare: Bool
    /// What happens to transparent pixels.
    public let transparency: TransparencyHandling
    /// Largest output (height × width) accepted; matters only without a centre crop.
    public let maxOutputPixels: Int
    /// rescale + normalize for each channel and byte value: `lut[c * 256 + v]`.
    private let lut: [Float]

    /// A preprocessor; transparency defaults to what the reference pipeline does: LLaVA's loader drops it
    /// before padding, transformers composites it onto white (when `do_convert_rgb` is set).
    public init(
        configuration: PreprocessorConfiguration, padToSquare: Bool = false,
        transparency: TransparencyHandling? = nil, maxOutputPixels: Int = 40_000_000
    ) throws {
        try configuration.validate()
        self.configuration = configuration
        self.padToSquare = padToSquare
        let composites = !padToSquare && configuration.doConvertRGB
        self.transparency = transparency ?? (composites ? .compositeOntoWhite : .discard)
        self.maxOutputPixels = maxOutputPixels
        var lut = [Float](repeating: 0, count: 3 * 256)
        for c in 0..<3 {
            let mean = Float(configuration.imageMean[c]), std = Float(configuration.imageStd[c])
            for v in 0..<256 {
                // transformers: image.astype(float64) * scale, cast to float32; then (x - mean) / std in float32.
                var x = configuration.doRescale ? Float(Double(v) * configuration.rescaleFactor) : Float(v)
                if configuration.doNormalize { x = (x - mean) / std }
                lut[c * 256 + v] = x
            }
        }
        self.lut = lut
    }

    /// A preprocessor configured from a `preprocessor_config.json` file.
    public init(contentsOf path: String, padToSquare: Bool = false, transparency: TransparencyHandling? = nil) throws {
        try self.init(configuration: PreprocessorConfiguration(contentsOf: path), padToSquare: padToSquare,
                      transparency: transparency)
    }

    /// Height and width of the output for a decoded image of the given size.
    public func outputSize(width: Int, height: Int) -> (height: Int, width: Int) {
        if configuration.doCenterCrop { return (configuration.cropHeight, configuration.cropWidth) }
        let side = max(width, height)
        return padToSquare ? resizedSize(width: side, height: side) : resizedSize(width: width, height: height)
    }

    /// The image's pixel values, shape [3, H, W] (fp32, CHW).
    public func callAsFunction(_ image: RGBImage) throws -> Tensor {
        let cropped = try resizedAndCropped(image)
        var out = Tensor(uninitializedShape: [3, cropped.height, cropped.width])
        let plane = cropped.height * cropped.width
        out.withUnsafeMutableBufferPointer { out in
            lut.withUnsafeBufferPointer { lut in
                cropped.pixels.withUnsafeBufferPointer { px in
                    for c in 0..<3 {
                        let table = lut.baseAddress! + c * 256, dst = out.baseAddress! + c * plane
                        for p in 0..<plane { dst[p] = table[Int(px[3 * p + c])] }
                    }
                }
            }
        }
        return out
    }

    /// Pixel values of several images, shape [B, 3, H, W]; they must come out the same size (a centre crop ensures it).
    public func batch(_ images: [RGBImage]) throws -> Tensor {
        guard !images.isEmpty else { throw PreprocessingError.batchShapeMismatch("the batch is empty") }
        let tensors = try images.map { try self($0) }
        let shapes = Set(tensors.map(\.shape))
        guard shapes.count == 1 else {
            throw PreprocessingError.batchShapeMismatch(
                "outputs have shapes \(shapes.sorted { $0.lexicographicallyPrecedes($1) }); enable do_center_crop")
        }
        return Tensor.stack(tensors)
    }

    /// The 8-bit image after transparency handling, padding, resize and centre crop: what rescale and
    /// normalize are applied to (no opacity).
    public func resizedAndCropped(_ image: RGBImage) throws -> RGBImage {
        let image = transparency == .compositeOntoWhite ? image.compositedOntoWhite() : image.discardingAlpha
        // The padded square is resampled without being built (BicubicResampler.resize).
        let side = max(image.width, image.height)
        let (canvasWidth, canvasHeight) = padToSquare ? (side, side) : (image.width, image.height)
        let (outHeight, outWidth) = resizedSize(width: canvasWidth, height: canvasHeight)
        let (cropHeight, cropWidth) = configuration.doCenterCrop
            ? (configuration.cropHeight, configuration.cropWidth) : (outHeight, outWidth)
        let (pixels, overflow) = cropHeight.multipliedReportingOverflow(by: cropWidth)
        guard !overflow, pixels <= maxOutputPixels else {
            throw PreprocessingError.outputTooLarge(width: cropWidth, height: cropHeight, limit: maxOutputPixels)
        }
        // transformers' center_crop: top = (h - ch) // 2 (floor, negative when padding), zeros outside the image.
        let top = floorDivide(outHeight - cropHeight, 2), left = floorDivide(outWidth - cropWidth, 2)
        let rows = max(top, 0)..<min(top + cropHeight, outHeight)
        let columns = max(left, 0)..<min(left + cropWidth, outWidth)
        let fill = RGBImage.squarePaddingFill(mean: configuration.imageMean)
        let region = image.pixels.withUnsafeBufferPointer {
            let source = padToSquare
                ? ResampleSource(paddedToSquare: $0.baseAddress!, width: image.width, height: image.height, fill: fill)
                : ResampleSource($0.baseAddress!, width: image.width, height: image.height)
            return BicubicResampler.resize(source, outWidth: outWidth, outHeight: outHeight, columns: columns, rows: rows)
        }
        if rows.count == cropHeight && columns.count == cropWidth {
            return RGBImage(unchecked: cropWidth, height: cropHeight, pixels: region, alpha: nil)
        }
        var padded = [UInt8](repeating: 0, count: cropHeight * cropWidth * 3)
        let rowBytes = columns.count * 3
        for (i, y) in rows.enumerated() {
            let destination = ((y - top) * cropWidth + (columns.lowerBound - left)) * 3
            padded[destination..<destination + rowBytes] = region[i * rowBytes..<(i + 1) * rowBytes]
        }
        return RGBImage(unchecked: cropWidth, height: cropHeight, pixels: padded, alpha: nil)
    }

    /// transformers' output size for `size` (get_resize_output_image_size with default_to_square=False).
    private func resizedSize(width: Int, height: Int) -> (height: Int, width: Int) {
        guard configuration.doResize else { return (height, width) }
        switch configuration.size {
        case .exact(let h, let w):
            return (h, w)
        case .shortestEdge(let edge):
            let (short, long) = width <= height ? (width, height) : (height, width)
            let newLong = Int(Double(edge * long) / Double(short))  // Python int(size * long / short)
            return width <= height ? (newLong, edge) : (edge, newLong)
        }
    }

    private func floorDivide(_ a: Int, _ b: Int) -> Int {
        a >= 0 ? a / b : -((-a + b - 1) / b)
    }
}
