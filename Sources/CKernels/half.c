// bf16/f16 ↔ fp32 conversion of whole runs of values.

#include "accm_kernels.h"
#include "internal.h"

void accm_bf16_to_f32_portable(const uint16_t *src, float *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = accm_bf16_value(accm_load_u16(src + i));
}

void accm_f16_to_f32_portable(const uint16_t *src, float *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = accm_f16_value(accm_load_u16(src + i));
}

#if ACCM_X86
ACCM_AVX2 static void bf16_to_f32_avx2(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(src + i)));
        _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16)));
    }
    accm_bf16_to_f32_portable(src + i, dst + i, n - i);
}

ACCM_AVX2 static void f16_to_f32_avx2(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    accm_f16_to_f32_portable(src + i, dst + i, n - i);
}
#endif

void accm_bf16_to_f32(const uint16_t *src, float *dst, size_t n) {
#if ACCM_X86
    if (accm_kernels_simd_level()) { bf16_to_f32_avx2(src, dst, n); return; }
#endif
    accm_bf16_to_f32_portable(src, dst, n);
}

void accm_f16_to_f32(const uint16_t *src, float *dst, size_t n) {
#if ACCM_X86
    if (accm_kernels_simd_level()) { f16_to_f32_avx2(src, dst, n); return; }
#endif
    accm_f16_to_f32_portable(src, dst, n);
}

void accm_f32_to_bf16(const float *src, uint16_t *dst, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint16_t h = accm_bf16_bits(src[i]);
        memcpy(dst + i, &h, 2);
    }
}

void accm_f32_to_f16_portable(const float *src, uint16_t *dst, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint16_t h = accm_f16_bits(src[i]);
        memcpy(dst + i, &h, 2);
    }
}

#if ACCM_X86
/// vcvtps2ph with round-to-nearest-even: the portable rounding for every value but NaN payloads.
ACCM_AVX2 static void f32_to_f16_avx2(const float *src, uint16_t *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    accm_f32_to_f16_portable(src + i, dst + i, n - i);
}
#endif

void accm_f32_to_f16(const float *src, uint16_t *dst, size_t n) {
#if ACCM_X86
    if (accm_kernels_simd_level()) { f32_to_f16_avx2(src, dst, n); return; }
#endif
    accm_f32_to_f16_portable(src, dst, n);
}
