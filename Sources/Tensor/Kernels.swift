// Which code path the engine's C kernels (CKernels) run on this CPU.

import CKernels

/// The engine's own C kernels.
public enum Kernels {
    /// "avx512-vnni", "avx2+fma+f16c" or "portable": the best the CPU has, capped by ACCM_KERNELS.
    public static var pathName: String { String(cString: accm_kernels_path_name()) }
}
