// Non-overlapping patch embedding: a conv2d whose stride equals its kernel, as im2col + one GEMM.

extension Tensor {
    /// Cuts `[channels, height, width]` pixels into `patch × patch` tiles in raster order and flattens each
    /// as `(channel, row, column)`, the order of a PyTorch conv weight `[out, channels, patch, patch]`.
    /// Like the convolution, a remainder narrower than a patch at the right or bottom edge is dropped.
    /// Returns `[gridHeight · gridWidth, channels · patch · patch]`.
    public func patches(size patch: Int) -> Tensor {
        precondition(rank == 3, "patches need [channels, height, width], got \(shape)")
        let (channels, height, width) = (shape[0], shape[1], shape[2])
        let gridH = height / patch, gridW = width / patch
        let cols = channels * patch * patch
        var out = Tensor(uninitializedShape: [gridH * gridW, cols])
        withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for gy in 0..<gridH {
                    for gx in 0..<gridW {
                        var o = dst.baseAddress! + (gy * gridW + gx) * cols
                        for c in 0..<channels {
                            for y in 0..<patch {
                                let row = src.baseAddress! + (c * height + gy * patch + y) * width + gx * patch
                                o.update(from: row, count: patch)
                                o += patch
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    /// A stride-equals-kernel conv2d: `weight [out, channels, patch, patch]` (optional bias) applied to
    /// `[channels, height, width]` pixels gives `[patches, out]`.
    public func patchEmbedding(weight: Tensor, bias: Tensor? = nil) -> Tensor {
        precondition(weight.rank == 4 && weight.shape[2] == weight.shape[3] && weight.shape[1] == shape[0],
                     "patch embedding weight \(weight.shape) does not fit pixels \(shape)")
        let patch = weight.shape[2]
        let flatWeight = weight.reshaped([weight.shape[0], weight.shape[1] * patch * patch])
        return patches(size: patch).linear(weight: flatWeight, bias: bias)
    }
}
