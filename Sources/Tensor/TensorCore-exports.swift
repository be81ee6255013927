// The tensor value type lives in TensorCore (no BLAS), so that the message types and the cluster's
// processes that hold no weights can use it; everything that imports Tensor sees it as before.

@_exported import TensorCore
