// OpenBLAS picks its kernels once, when the library loads, from the CPU model number. On CPUs newer
// than the library (OpenBLAS 0.3.21 on Sapphire Rapids, say) it falls back to a generic SSE3 kernel
// ("Prescott") that runs sgemm about 8× slower, although the CPU has AVX-512. The remedy is the
// OPENBLAS_CORETYPE environment variable, which must be set before the library loads.

#if canImport(Glibc)
import Glibc
#endif

extension BLAS {
    /// OpenBLAS kernel names that mean the library did not recognise this CPU.
    static let genericCores: Set<String> = ["prescott", "core2", "penryn", "dunnington", "nehalem", "atom", "katmai",
                                            "coppermine", "northwood", "banias", "unknown"]

    /// The best OpenBLAS 0.3.x kernel family for this CPU's instruction set, from `/proc/cpuinfo` flags.
    public static var bestCoreTypeForThisCPU: String? {
        guard let flags = cpuFlags() else { return nil }
        if flags.contains("avx512_bf16") && flags.contains("avx512f") { return "Cooperlake" }
        if flags.contains("avx512f") && flags.contains("avx512bw") && flags.contains("avx512vl") { return "SkylakeX" }
        if flags.contains("avx2") && flags.contains("fma") { return "Haswell" }
        return nil
    }

    /// The kernel family to ask for through OPENBLAS_CORETYPE, when OpenBLAS fell back to a generic one
    /// and none was asked for; nil when nothing needs to change.
    public static var coreTypeOverride: String? {
        guard getenv("OPENBLAS_CORETYPE") == nil, genericCores.contains(coreName.lowercased()) else { return nil }
        return bestCoreTypeForThisCPU
    }

    private static func cpuFlags() -> Set<Substring>? {
        guard let file = fopen("/proc/cpuinfo", "r") else { return nil }
        defer { fclose(file) }
        var line: UnsafeMutablePointer<CChar>? = nil
        var capacity = 0
        defer { free(line) }
        while getline(&line, &capacity, file) > 0 {
            let text = String(cString: line!)
            if text.hasPrefix("flags") {
                return Set(text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == ":" }))
            }
        }
        return nil
    }
}
