// What can go wrong configuring or running the CLIP preprocessing.

/// Why an image could not be preprocessed.
public enum PreprocessingError: Error, Equatable, Sendable, CustomStringConvertible {
    /// `preprocessor_config.json` could not be read or parsed.
    case unreadableConfiguration(path: String, reason: String)
    /// A configuration value is out of range or of an unsupported form.
    case invalidConfiguration(String)
    /// A resampling filter other than bicubic was requested.
    case unsupportedResample(Int, name: String)
    /// The output would exceed the preprocessor's pixel limit (no crop and a huge resize).
    case outputTooLarge(width: Int, height: Int, limit: Int)
    /// A batch was empty, or its images came out with different shapes.
    case batchShapeMismatch(String)

    public var description: String {
        switch self {
        case .unreadableConfiguration(let path, let reason):
            return "cannot read the preprocessor configuration \(path): \(reason)"
        case .invalidConfiguration(let message):
            return "invalid preprocessor configuration: \(message)"
        case .unsupportedResample(let value, let name):
            return "resample \(value) (\(name)) is not supported; only 3 (bicubic, what CLIP uses) is implemented"
        case .outputTooLarge(let width, let height, let limit):
            return "preprocessing would produce a \(width)x\(height) image, over the limit of \(limit) pixels; "
                + "enable do_center_crop or use a smaller size"
        case .batchShapeMismatch(let message):
            return "cannot batch these images: \(message)"
        }
    }
}
