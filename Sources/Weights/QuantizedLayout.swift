// How a pre-quantized safetensors file (what `accm quantize` writes) holds a block-quantized weight matrix,
// so that it loads without an fp32 copy and without quantizing again.
//
// A matrix `NAME` of `rows` outputs × `columns` inputs, always output-major (even where the checkpoint it
// came from held it input-major, as GPT-2's Conv1D):
//   NAME          I8 [rows, columns]      int8: Q8_0-like, one signed byte a weight
//                 U8 [rows, columns / 2]  int4: Q4_0-like, two weights a byte (byte j of a block: weight j in
//                                         the low nibble, j + 16 in the high one), row after row; the engine
//                                         moves them into its interleaved layout at load
//   NAME.scales   F16 [rows, columns / 32]  one scale per block of 32 weights along the input dimension
// The file's `__metadata__` names the layout (`metadataKey` = `version`); an I8 or U8 tensor in any other
// file is not read as weights.

import Tensor

/// The pre-quantized matrix layout of a safetensors file.
public enum QuantizedLayout {
    /// The `__metadata__` key that marks a file as holding matrices in this layout.
    public static let metadataKey = "accm.quantization"
    /// Its value: the layout's version (a reader refuses none it does not know; it only reads this one).
    public static let version = "q8_0/q4_0 blocks of 32 with f16 scales, v1"

    /// The name of the scales of the quantized matrix `name`.
    public static func scalesName(of name: String) -> String { name + ".scales" }

    /// The safetensors dtype the values of a matrix in `format` are written as.
    public static func valueDType(_ format: WeightFormat) -> DType? {
        switch format {
        case .int8: .i8
        case .int4: .u8
        default: nil
        }
    }

    /// The block-quantized format values of `dtype` hold (nil: not a quantized value type).
    static func format(ofValues dtype: DType) -> WeightFormat? {
        switch dtype {
        case .i8: .int8
        case .u8: .int4
        default: nil
        }
    }
}
