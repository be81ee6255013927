// The formats a weight matrix can be kept in while the engine computes with it.

/// How a weight matrix is stored in memory; every product still computes in fp32 (int8/int4: integer dot
/// products against an 8-bit quantized activation during decode).
public enum WeightFormat: String, Sendable, CaseIterable, Codable {
    case f32, bf16, f16
    /// Q8_0-like: blocks of 32 weights along the input dimension, one fp16 scale each (8.5 bits a weight).
    case int8
    /// Q4_0-like: blocks of 32 weights along the input dimension, one fp16 scale each (4.5 bits a weight).
    case int4

    /// Bytes a weight takes, scales included.
    public var bytesPerWeight: Double {
        switch self {
        case .f32: 4
        case .bf16, .f16: 2
        case .int8: 34.0 / 32
        case .int4: 18.0 / 32
        }
    }

    /// Whether the format quantizes in blocks (the input dimension must then be a multiple of `quantBlock`).
    public var isBlockQuantized: Bool { self == .int8 || self == .int4 }

    /// Weights per quantization block.
    public static let quantBlock = 32
}
