// Matrix-vector products that read bf16/f16 weights directly (a decode step streams each weight once).

#include "accm_kernels.h"
#include "internal.h"

#include <stdlib.h>

/// Eight running sums, then one total: the portable path's summation order.
#define PORTABLE_GEMV(name, value)                                                                         \
    void name(const uint16_t *w, size_t ldw, size_t rows, size_t cols, const float *x, float *y,            \
              int accumulate) {                                                                             \
        for (size_t r = 0; r < rows; r++) {                                                                 \
            const uint16_t *row = w + r * ldw;                                                              \
            float partial[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                                    \
            size_t c = 0;                                                                                   \
            for (; c + 8 <= cols; c += 8)                                                                   \
                for (int j = 0; j < 8; j++) partial[j] += value(accm_load_u16(row + c + j)) * x[c + j];     \
            float sum = ((partial[0] + partial[1]) + (partial[2] + partial[3])) +                           \
                        ((partial[4] + partial[5]) + (partial[6] + partial[7]));                            \
            for (; c < cols; c++) sum += value(accm_load_u16(row + c)) * x[c];                              \
            y[r] = accumulate ? y[r] + sum : sum;                                                           \
        }                                                                                                   \
    }

PORTABLE_GEMV(accm_gemv_bf16_portable, accm_bf16_value)
PORTABLE_GEMV(accm_gemv_f16_portable, accm_f16_value)

#if ACCM_X86
ACCM_AVX2 static inline __m256 load_f16x8(const uint16_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

/// f16: two rows at a time for long rows (each x load feeds two FMAs), four accumulators per row, 32 weights a step.
#define AVX2_GEMV(name, load, value)                                                                        \
    ACCM_AVX2 static void name(const uint16_t *w, size_t ldw, size_t rows, size_t cols, const float *x,     \
                               float *y, int accumulate) {                                                  \
        size_t r = 0, paired = cols >= 2048 ? rows / 2 * 2 : 0; /* short rows: one at a time (see bf16) */  \
        for (; r < paired; r += 2) {                                                                        \
            const uint16_t *a = w + r * ldw, *b = a + ldw;                                                  \
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0; \
            size_t c = 0;                                                                                   \
            for (; c + 32 <= cols; c += 32) {                                                               \
                __m256 x0 = _mm256_loadu_ps(x + c), x1 = _mm256_loadu_ps(x + c + 8);                        \
                __m256 x2 = _mm256_loadu_ps(x + c + 16), x3 = _mm256_loadu_ps(x + c + 24);                  \
                a0 = _mm256_fmadd_ps(load(a + c), x0, a0);                                                  \
                a1 = _mm256_fmadd_ps(load(a + c + 8), x1, a1);                                              \
                a2 = _mm256_fmadd_ps(load(a + c + 16), x2, a2);                                             \
                a3 = _mm256_fmadd_ps(load(a + c + 24), x3, a3);                                             \
                b0 = _mm256_fmadd_ps(load(b + c), x0, b0);                                                  \
                b1 = _mm256_fmadd_ps(load(b + c + 8), x1, b1);                                              \
                b2 = _mm256_fmadd_ps(load(b + c + 16), x2, b2);                                             \
                b3 = _mm256_fmadd_ps(load(b + c + 24), x3, b3);                                             \
            }                                                                                               \
            for (; c + 8 <= cols; c += 8) {                                                                 \
                __m256 x0 = _mm256_loadu_ps(x + c);                                                         \
                a0 = _mm256_fmadd_ps(load(a + c), x0, a0);                                                  \
                b0 = _mm256_fmadd_ps(load(b + c), x0, b0);                                                  \
            }                                                                                               \
            float sa = accm_horizontal_sum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));        \
            float sb = accm_horizontal_sum(_mm256_add_ps(_mm256_add_ps(b0, b1), _mm256_add_ps(b2, b3)));        \
            for (; c < cols; c++) {                                                                         \
                sa += value(accm_load_u16(a + c)) * x[c];                                                   \
                sb += value(accm_load_u16(b + c)) * x[c];                                                   \
            }                                                                                               \
            y[r] = accumulate ? y[r] + sa : sa;                                                             \
            y[r + 1] = accumulate ? y[r + 1] + sb : sb;                                                     \
        }                                                                                                   \
        for (; r < rows; r++) {                                                                             \
            const uint16_t *a = w + r * ldw;                                                                \
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                                     \
            size_t c = 0;                                                                                   \
            for (; c + 32 <= cols; c += 32) {                                                               \
                a0 = _mm256_fmadd_ps(load(a + c), _mm256_loadu_ps(x + c), a0);                              \
                a1 = _mm256_fmadd_ps(load(a + c + 8), _mm256_loadu_ps(x + c + 8), a1);                      \
                a2 = _mm256_fmadd_ps(load(a + c + 16), _mm256_loadu_ps(x + c + 16), a2);                    \
                a3 = _mm256_fmadd_ps(load(a + c + 24), _mm256_loadu_ps(x + c + 24), a3);                    \
            }                                                                                               \
            for (; c + 8 <= cols; c += 8) a0 = _mm256_fmadd_ps(load(a + c), _mm256_loadu_ps(x + c), a0);   \
            float sa = accm_horizontal_sum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));        \
            for (; c < cols; c++) sa += value(accm_load_u16(a + c)) * x[c];                                 \
            y[r] = accumulate ? y[r] + sa : sa;                                                             \
        }                                                                                                   \
    }

AVX2_GEMV(gemv_f16_avx2, load_f16x8, accm_f16_value)

/// bf16: four rows at a time, 16 weights a step per row, widened by interleaving zeros below each value
/// (vpunpck{l,h}wd gives weights 0-3 and 8-11, then 4-7 and 12-15, of each 16), against a copy of x
/// permuted once into that order.
ACCM_AVX2 static void gemv_bf16_avx2(const uint16_t *w, size_t ldw, size_t rows, size_t cols, const float *x,
                                     float *y, int accumulate) {
    size_t whole = cols / 16 * 16;
    float *permuted = aligned_alloc(64, (whole + 16) * sizeof(float));
    if (!permuted) { accm_gemv_bf16_portable(w, ldw, rows, cols, x, y, accumulate); return; }
    for (size_t c = 0; c < whole; c += 16) {
        for (int j = 0; j < 4; j++) {
            permuted[c + j] = x[c + j];
            permuted[c + 4 + j] = x[c + 8 + j];
            permuted[c + 8 + j] = x[c + 4 + j];
            permuted[c + 12 + j] = x[c + 12 + j];
        }
    }
    const __m256i zero = _mm256_setzero_si256();
    size_t r = 0;
    // Four rows at a time only when each row is long: four interleaved short rows (GPT-2's 768) confuse the
    // hardware prefetcher, which then streams at about half the rate of one row after another.
    size_t grouped = cols >= 2048 ? rows / 4 * 4 : 0;
    for (; r < grouped; r += 4) {
        __m256 low[4], high[4];
        for (int i = 0; i < 4; i++) low[i] = high[i] = _mm256_setzero_ps();
        for (size_t c = 0; c < whole; c += 16) {
            __m256 x0 = _mm256_load_ps(permuted + c), x1 = _mm256_load_ps(permuted + c + 8);
            for (int i = 0; i < 4; i++) {
                __m256i v = _mm256_loadu_si256((const __m256i *)(w + (r + i) * ldw + c));
                low[i] = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, v)), x0, low[i]);
                high[i] = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, v)), x1, high[i]);
            }
        }
        for (int i = 0; i < 4; i++) {
            const uint16_t *row = w + (r + i) * ldw;
            float sum = accm_horizontal_sum(_mm256_add_ps(low[i], high[i]));
            for (size_t c = whole; c < cols; c++) sum += accm_bf16_value(accm_load_u16(row + c)) * x[c];
            y[r + i] = accumulate ? y[r + i] + sum : sum;
        }
    }
    for (; r < rows; r++) {
        const uint16_t *row = w + r * ldw;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        size_t c = 0;
        for (; c + 32 <= whole; c += 32) {
            __m256i v0 = _mm256_loadu_si256((const __m256i *)(row + c));
            __m256i v1 = _mm256_loadu_si256((const __m256i *)(row + c + 16));
            a0 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, v0)), _mm256_load_ps(permuted + c), a0);
            a1 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, v0)), _mm256_load_ps(permuted + c + 8), a1);
            a2 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, v1)), _mm256_load_ps(permuted + c + 16), a2);
            a3 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, v1)), _mm256_load_ps(permuted + c + 24), a3);
        }
        for (; c < whole; c += 16) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(row + c));
            a0 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, v)), _mm256_load_ps(permuted + c), a0);
            a1 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, v)), _mm256_load_ps(permuted + c + 8), a1);
        }
        float sum = accm_horizontal_sum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
        for (size_t c = whole; c < cols; c++) sum += accm_bf16_value(accm_load_u16(row + c)) * x[c];
        y[r] = accumulate ? y[r] + sum : sum;
    }
    free(permuted);
}
#endif

void accm_gemv_bf16(const uint16_t *w, size_t ldw, size_t rows, size_t cols, const float *x, float *y, int accumulate) {
#if ACCM_X86
    if (accm_kernels_simd_level()) { gemv_bf16_avx2(w, ldw, rows, cols, x, y, accumulate); return; }
#endif
    accm_gemv_bf16_portable(w, ldw, rows, cols, x, y, accumulate);
}

void accm_gemv_f16(const uint16_t *w, size_t ldw, size_t rows, size_t cols, const float *x, float *y, int accumulate) {
#if ACCM_X86
    if (accm_kernels_simd_level()) { gemv_f16_avx2(w, ldw, rows, cols, x, y, accumulate); return; }
#endif
    accm_gemv_f16_portable(w, ldw, rows, cols, x, y, accumulate);
}
