// The value side of attention over an f16 KV cache: a probability-weighted sum of cached rows, read
// directly in their stored type (a decode step reads each cached value once).

#include "accm_kernels.h"
#include "internal.h"

void accm_weighted_rows_f16_portable(const uint16_t *v, size_t ldv, size_t count, size_t cols, const float *p,
                                     float *out) {
    for (size_t c = 0; c < cols; c++) out[c] = 0;
    for (size_t r = 0; r < count; r++) {
        const uint16_t *row = v + r * ldv;
        for (size_t c = 0; c < cols; c++) out[c] += p[r] * accm_f16_value(accm_load_u16(row + c));
    }
}

#if ACCM_X86
/// 32 columns at a time in four accumulators, every row in order (the portable path's order, with FMA).
ACCM_AVX2 static void weighted_rows_f16_avx2(const uint16_t *v, size_t ldv, size_t count, size_t cols,
                                             const float *p, float *out) {
    size_t c = 0;
    for (; c + 32 <= cols; c += 32) {
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (size_t r = 0; r < count; r++) {
            const uint16_t *row = v + r * ldv + c;
            __m256 weight = _mm256_broadcast_ss(p + r);
            a0 = _mm256_fmadd_ps(weight, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)row)), a0);
            a1 = _mm256_fmadd_ps(weight, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + 8))), a1);
            a2 = _mm256_fmadd_ps(weight, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + 16))), a2);
            a3 = _mm256_fmadd_ps(weight, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + 24))), a3);
        }
        _mm256_storeu_ps(out + c, a0);
        _mm256_storeu_ps(out + c + 8, a1);
        _mm256_storeu_ps(out + c + 16, a2);
        _mm256_storeu_ps(out + c + 24, a3);
    }
    for (; c + 8 <= cols; c += 8) {
        __m256 a0 = _mm256_setzero_ps();
        for (size_t r = 0; r < count; r++)
            a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(p + r),
                                 _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(v + r * ldv + c))), a0);
        _mm256_storeu_ps(out + c, a0);
    }
    if (c < cols) {
        for (size_t j = c; j < cols; j++) out[j] = 0;
        for (size_t r = 0; r < count; r++)
            for (size_t j = c; j < cols; j++) out[j] += p[r] * accm_f16_value(accm_load_u16(v + r * ldv + j));
    }
}
#endif

void accm_weighted_rows_f16(const uint16_t *v, size_t ldv, size_t count, size_t cols, const float *p, float *out) {
#if ACCM_X86
    if (accm_kernels_simd_level()) { weighted_rows_f16_avx2(v, ldv, count, cols, p, out); return; }
#endif
    accm_weighted_rows_f16_portable(v, ldv, count, cols, p, out);
}
