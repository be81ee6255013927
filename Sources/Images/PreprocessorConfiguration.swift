// A Hugging Face `preprocessor_config.json` for CLIPImageProcessor, with transformers' defaults for
// every key that is absent. Both spellings in the wild are read: the old integer `size` / `crop_size`
// (openai/clip-vit-large-patch14-336) and the dictionaries transformers writes today.

import Foundation

/// What CLIPImageProcessor does to an image, as read from `preprocessor_config.json`.
public struct PreprocessorConfiguration: Sendable, Equatable, Decodable {
    /// How `size` sets the resized dimensions.
    public enum Size: Sendable, Equatable {
        /// The shorter side becomes this many pixels, the longer one keeps the aspect ratio (truncated).
        case shortestEdge(Int)
        /// Both sides are set, ignoring the aspect ratio.
        case exact(height: Int, width: Int)
    }

    /// OpenAI CLIP's per-channel mean (transformers' `OPENAI_CLIP_MEAN`).
    public static let openAIMean = [0.48145466, 0.4578275, 0.40821073]
    /// OpenAI CLIP's per-channel standard deviation (transformers' `OPENAI_CLIP_STD`).
    public static let openAIStd = [0.26862954, 0.26130258, 0.27577711]

    public var doResize = true
    public var size = Size.shortestEdge(224)
    /// PIL resampling filter; only 3 (bicubic) is implemented.
    public var resample = 3
    public var doCenterCrop = true
    public var cropHeight = 224
    public var cropWidth = 224
    public var doRescale = true
    public var rescaleFactor = 1.0 / 255.0
    public var doNormalize = true
    public var imageMean = PreprocessorConfiguration.openAIMean
    public var imageStd = PreprocessorConfiguration.openAIStd
    public var doConvertRGB = true

    /// CLIPImageProcessor's defaults (224 shortest edge, 224 crop, OpenAI mean and std).
    public init() {}

    /// A configuration with explicit sizes and transformers' defaults for the rest.
    public init(size: Size, cropHeight: Int, cropWidth: Int, imageMean: [Double] = openAIMean,
                imageStd: [Double] = openAIStd) {
        self.size = size
        self.cropHeight = cropHeight
        self.cropWidth = cropWidth
        self.imageMean = imageMean
        self.imageStd = imageStd
    }

    /// Reads and validates a `preprocessor_config.json` file.
    public init(contentsOf path: String) throws {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw PreprocessingError.unreadableConfiguration(path: path, reason: error.localizedDescription)
        }
        do {
            self = try JSONDecoder().decode(PreprocessorConfiguration.self, from: data)
        } catch let error as PreprocessingError {
            throw error
        } catch {
            throw PreprocessingError.unreadableConfiguration(path: path, reason: "\(error)")
        }
    }

    private enum CodingKeys: String, CodingKey {
        case doResize = "do_resize", size, resample, doCenterCrop = "do_center_crop", cropSize = "crop_size"
        case doRescale = "do_rescale", rescaleFactor = "rescale_factor", doNormalize = "do_normalize"
        case imageMean = "image_mean", imageStd = "image_std", doConvertRGB = "do_convert_rgb"
    }

    private struct SizeDictionary: Decodable {
        var shortestEdge: Int?, longestEdge: Int?, height: Int?, width: Int?
        enum CodingKeys: String, CodingKey {
            case shortestEdge = "shortest_edge", longestEdge = "longest_edge", height, width
        }
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        doResize = try c.decodeIfPresent(Bool.self, forKey: .doResize) ?? doResize
        if let value = try c.decodeIfPresent(Double.self, forKey: .resample) {
            guard value == value.rounded(), abs(value) < 1e9 else {
                throw PreprocessingError.invalidConfiguration("resample must be a whole number, got \(value)")
            }
            resample = Int(value)
        }
        doCenterCrop = try c.decodeIfPresent(Bool.self, forKey: .doCenterCrop) ?? doCenterCrop
        doRescale = try c.decodeIfPresent(Bool.self, forKey: .doRescale) ?? doRescale
        rescaleFactor = try c.decodeIfPresent(Double.self, forKey: .rescaleFactor) ?? rescaleFactor
        doNormalize = try c.decodeIfPresent(Bool.self, forKey: .doNormalize) ?? doNormalize
        doConvertRGB = try c.decodeIfPresent(Bool.self, forKey: .doConvertRGB) ?? doConvertRGB
        imageMean = try Self.channels(c, .imageMean) ?? imageMean
        imageStd = try Self.channels(c, .imageStd) ?? imageStd

        if let edge = try? c.decodeIfPresent(Int.self, forKey: .size) {
            size = .shortestEdge(edge)  // CLIP reads a bare integer as the shortest edge
        } else if let d = try c.decodeIfPresent(SizeDictionary.self, forKey: .size) {
            if let edge = d.shortestEdge, d.longestEdge == nil {
                size = .shortestEdge(edge)
            } else if let height = d.height, let width = d.width {
                size = .exact(height: height, width: width)
            } else {
                throw PreprocessingError.invalidConfiguration(
                    "size must be an integer, {\"shortest_edge\": N} or {\"height\": H, \"width\": W}; "
                        + "longest_edge and max_height/max_width are not supported")
            }
        }
        if let side = try? c.decodeIfPresent(Int.self, forKey: .cropSize) {
            (cropHeight, cropWidth) = (side, side)
        } else if let d = try c.decodeIfPresent(SizeDictionary.self, forKey: .cropSize) {
            guard let height = d.height, let width = d.width else {
                throw PreprocessingError.invalidConfiguration(
                    "crop_size must be an integer or {\"height\": H, \"width\": W}")
            }
            (cropHeight, cropWidth) = (height, width)
        }
        try validate()
    }

    /// A mean/std entry: three numbers, or one number for every channel.
    private static func channels(_ c: KeyedDecodingContainer<CodingKeys>, _ key: CodingKeys) throws -> [Double]? {
        if let one = try? c.decodeIfPresent(Double.self, forKey: key) { return [one, one, one] }
        return try c.decodeIfPresent([Double].self, forKey: key)
    }

    /// The largest output side a configuration may ask for (real processors use 224–1024).
    public static let largestSide = 8192

    /// Throws `PreprocessingError` unless the configuration can be applied.
    public func validate() throws {
        guard resample == 3 else {
            let names = [0: "nearest", 1: "lanczos", 2: "bilinear", 4: "box", 5: "hamming"]
            throw PreprocessingError.unsupportedResample(resample, name: names[resample] ?? "unknown")
        }
        let sides = 1...Self.largestSide
        switch size {
        case .shortestEdge(let edge) where !sides.contains(edge):
            throw PreprocessingError.invalidConfiguration("size.shortest_edge must be in 1...\(Self.largestSide), got \(edge)")
        case .exact(let h, let w) where !sides.contains(h) || !sides.contains(w):
            throw PreprocessingError.invalidConfiguration("size must be between 1x1 and \(Self.largestSide)x\(Self.largestSide), got \(w)x\(h)")
        default:
            break
        }
        if doCenterCrop && (!sides.contains(cropHeight) || !sides.contains(cropWidth)) {
            throw PreprocessingError.invalidConfiguration(
                "crop_size must be between 1x1 and \(Self.largestSide)x\(Self.largestSide), got \(cropWidth)x\(cropHeight)")
        }
        guard imageMean.count == 3, imageStd.count == 3 else {
            throw PreprocessingError.invalidConfiguration(
                "image_mean and image_std need 3 values (RGB), got \(imageMean.count) and \(imageStd.count)")
        }
        guard imageStd.allSatisfy({ $0 != 0 && $0.isFinite }), imageMean.allSatisfy(\.isFinite), rescaleFactor.isFinite
        else {
            throw PreprocessingError.invalidConfiguration("image_std must be non-zero and all values finite")
        }
    }
}
