// Which code path the engine's C kernels (CKernels) run on this CPU.

import CKernels

/// The engine's own C kernels.
public enum Kernels {
    /// "avx2+fma+f16c" when the CPU has them (and ACCM_KERNELS=portable is not set), else "portable".
    public static var pathName: String { String(cString: accm_kernels_path_name()) }
}
