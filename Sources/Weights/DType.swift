// Element types a safetensors file may hold, and their conversion to fp32.

import CKernels
import Tensor

/// A safetensors element type.
public enum DType: String, Sendable, CaseIterable {
    case f32 = "F32", f16 = "F16", bf16 = "BF16", f64 = "F64"
    case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8", u8 = "U8", bool = "BOOL"
    case u16 = "U16", u32 = "U32", u64 = "U64", f8e4m3 = "F8_E4M3", f8e5m2 = "F8_E5M2"

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .f64, .i64, .u64: 8
        case .f32, .i32, .u32: 4
        case .f16, .bf16, .i16, .u16: 2
        case .i8, .u8, .bool, .f8e4m3, .f8e5m2: 1
        }
    }

    /// Whether the engine converts this type to fp32 weights.
    public var isSupportedFloat: Bool { self == .f32 || self == .f16 || self == .bf16 }
    /// The weight-matrix format that keeps this type as it is (nil: not a float type the engine reads).
    public var matrixFormat: WeightFormat? {
        switch self {
        case .f32: .f32
        case .bf16: .bf16
        case .f16: .f16
        default: nil
        }
    }
    /// Whether the engine reads this type as integers.
    public var isSupportedInteger: Bool { self == .i64 || self == .i32 }
}

enum Conversion {
    /// Converts `count` little-endian elements of `dtype` at `source` (any alignment) to fp32.
    static func toFloat(_ source: UnsafeRawPointer, dtype: DType, count: Int, into out: UnsafeMutablePointer<Float>) {
        switch dtype {
        case .f32:
            UnsafeMutableRawPointer(out).copyMemory(from: source, byteCount: count * 4)
        // The C kernels read any alignment (a safetensors offset may be odd); little-endian hosts only, as the
        // engine is built for.
        case .f16:
            accm_f16_to_f32(source.assumingMemoryBound(to: UInt16.self), out, count)
        case .bf16:
            accm_bf16_to_f32(source.assumingMemoryBound(to: UInt16.self), out, count)
        default:
            preconditionFailure("\(dtype) is not a float type the engine converts")
        }
    }
}
