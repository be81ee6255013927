// The run-time choice between the AVX2/FMA/F16C kernels and the portable ones.

#include "accm_kernels.h"
#include "internal.h"

#include <stdlib.h>

static int detect(void) {
    const char *forced = getenv("ACCM_KERNELS");
    if (forced && strcmp(forced, "portable") == 0) return 0;
#if ACCM_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
#else
    return 0;
#endif
}

int accm_kernels_simd_level(void) {
    // Every thread computes the same value, so an unsynchronised first write is harmless.
    static volatile int level = -1;
    if (level < 0) level = detect();
    return level;
}

const char *accm_kernels_path_name(void) { return accm_kernels_simd_level() ? "avx2+fma+f16c" : "portable"; }
