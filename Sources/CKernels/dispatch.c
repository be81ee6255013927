// The run-time choice of the kernels' code path: AVX-512 VNNI, AVX2/FMA/F16C or portable.

#include "accm_kernels.h"
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>

static int cpu_level(void) {
#if ACCM_X86
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")))
        return ACCM_KERNELS_PORTABLE;
    // compiler-rt reports AVX-512 features only where the OS saves the 512-bit state (XCR0).
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")
        && __builtin_cpu_supports("avx512vnni"))
        return ACCM_KERNELS_AVX512_VNNI;
    return ACCM_KERNELS_AVX2;
#else
    return ACCM_KERNELS_PORTABLE;
#endif
}

/// ACCM_KERNELS=portable|avx2|avx512-vnni caps the level (a level the CPU lacks is never taken); any other value
/// is named on stderr and caps nothing.
static int detect(void) {
    int level = accm_kernels_cpu_level();
    const char *forced = getenv("ACCM_KERNELS");
    if (!forced) return level;
    static const char *const caps[] = {"portable", "avx2", "avx512-vnni"};  // indexed by level
    int cap = -1;
    for (int l = ACCM_KERNELS_PORTABLE; l <= ACCM_KERNELS_AVX512_VNNI; l++)
        if (strcmp(forced, caps[l]) == 0) cap = l;
    if (cap < 0) {
        fprintf(stderr, "accm: ACCM_KERNELS=%s is not one of portable, avx2, avx512-vnni; it is ignored\n", forced);
        return level;
    }
    return level < cap ? level : cap;
}

// Every thread computes the same value, so an unsynchronised first write is harmless.
static volatile int current_level = -1;

int accm_kernels_simd_level(void) {
    if (current_level < 0) current_level = detect();
    return current_level;
}

int accm_kernels_cpu_level(void) {
    static volatile int level = -1;
    if (level < 0) level = cpu_level();
    return level;
}

int accm_kernels_set_level(int level) {
    int best = accm_kernels_cpu_level();
    current_level = level < ACCM_KERNELS_PORTABLE ? ACCM_KERNELS_PORTABLE : level > best ? best : level;
    return current_level;
}

const char *accm_kernels_level_name(int level) {
    switch (level) {
    case ACCM_KERNELS_AVX512_VNNI: return "avx512-vnni";
    case ACCM_KERNELS_AVX2: return "avx2+fma+f16c";
    default: return "portable";
    }
}

const char *accm_kernels_path_name(void) { return accm_kernels_level_name(accm_kernels_simd_level()); }
