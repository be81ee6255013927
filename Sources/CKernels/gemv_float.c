// Matrix-vector product of fp32 weights, for decode: OpenBLAS's sgemv streams one row at a time at about 27
// GB/s on 2 Zen 3 cores where four rows at once stream at 30–39 GB/s (more read streams in flight).

#include "accm_kernels.h"
#include "internal.h"

/// Eight running sums, then one total (as the half-precision kernels' portable path).
void accm_gemv_f32_portable(const float *w, size_t ldw, size_t rows, size_t cols, const float *x, float *y,
                            int accumulate) {
    for (size_t r = 0; r < rows; r++) {
        const float *row = w + r * ldw;
        float partial[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        size_t c = 0;
        for (; c + 8 <= cols; c += 8)
            for (int j = 0; j < 8; j++) partial[j] += row[c + j] * x[c + j];
        float sum = ((partial[0] + partial[1]) + (partial[2] + partial[3])) +
                    ((partial[4] + partial[5]) + (partial[6] + partial[7]));
        for (; c < cols; c++) sum += row[c] * x[c];
        y[r] = accumulate ? y[r] + sum : sum;
    }
}

#if ACCM_X86
/// Four rows at a time for long rows (two accumulators each, 16 weights a step), one row at a time with four
/// accumulators for short ones (interleaved short rows defeat the hardware prefetcher, as in gemv_half.c).
ACCM_AVX2 static void gemv_f32_avx2(const float *w, size_t ldw, size_t rows, size_t cols, const float *x, float *y,
                                    int accumulate) {
    size_t whole = cols / 16 * 16, r = 0;
    size_t grouped = cols >= 2048 ? rows / 4 * 4 : 0;
    for (; r < grouped; r += 4) {
        __m256 low[4], high[4];
        for (int i = 0; i < 4; i++) low[i] = high[i] = _mm256_setzero_ps();
        for (size_t c = 0; c < whole; c += 16) {
            __m256 x0 = _mm256_loadu_ps(x + c), x1 = _mm256_loadu_ps(x + c + 8);
            for (int i = 0; i < 4; i++) {
                const float *row = w + (r + i) * ldw + c;
                low[i] = _mm256_fmadd_ps(_mm256_loadu_ps(row), x0, low[i]);
                high[i] = _mm256_fmadd_ps(_mm256_loadu_ps(row + 8), x1, high[i]);
            }
        }
        for (int i = 0; i < 4; i++) {
            const float *row = w + (r + i) * ldw;
            float sum = accm_horizontal_sum(_mm256_add_ps(low[i], high[i]));
            for (size_t c = whole; c < cols; c++) sum += row[c] * x[c];
            y[r + i] = accumulate ? y[r + i] + sum : sum;
        }
    }
    for (; r < rows; r++) {
        const float *row = w + r * ldw;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        size_t c = 0;
        for (; c + 32 <= cols; c += 32) {
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(row + c), _mm256_loadu_ps(x + c), a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(row + c + 8), _mm256_loadu_ps(x + c + 8), a1);
            a2 = _mm256_fmadd_ps(_mm256_loadu_ps(row + c + 16), _mm256_loadu_ps(x + c + 16), a2);
            a3 = _mm256_fmadd_ps(_mm256_loadu_ps(row + c + 24), _mm256_loadu_ps(x + c + 24), a3);
        }
        for (; c + 8 <= cols; c += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(row + c), _mm256_loadu_ps(x + c), a0);
        float sum = accm_horizontal_sum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
        for (; c < cols; c++) sum += row[c] * x[c];
        y[r] = accumulate ? y[r] + sum : sum;
    }
}
#endif

void accm_gemv_f32(const float *w, size_t ldw, size_t rows, size_t cols, const float *x, float *y, int accumulate) {
#if ACCM_X86
    if (accm_kernels_simd_level()) { gemv_f32_avx2(w, ldw, rows, cols, x, y, accumulate); return; }
#endif
    accm_gemv_f32_portable(w, ldw, rows, cols, x, y, accumulate);
}
