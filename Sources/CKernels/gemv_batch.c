// Matrix-vector products of a batch of input vectors (a decode step of several sequences at once): each
// weight is loaded once and multiplied with up to ACCM_BATCH_ROWS inputs, so a batch of 4 reads the weights
// once, where one product per input read them 4 times (on a LLaMA-7B layer in bf16, 3.3× one input's time).
// A batch of one runs the one-input kernel; per input the sums are those of the one-input portable path up
// to fp32 summation order. Q8_0 has no such kernel: one that loaded each block once for 4 inputs (tried, then
// removed) still paid each input's sign, vpmaddubsw, vpmaddwd, convert and FMA, and was no faster than one
// product per input: one thread over 16384×4096, 4 inputs 11.0–12.6 ms against 11.6–15.0 (2 inputs slower);
// `accm bench engine --dtype int8 --kv-cache f16 --cases llama-decode-4`, three alternating rounds,
// 22.8 / 24.9 / 25.1 ms against 25.7 / 26.5 / 22.7.

#include "accm_kernels.h"
#include "internal.h"


#define PORTABLE_BATCH(name, single, type)                                                                   \
    void name(const type *w, size_t ldw, size_t rows, size_t cols, const float *x, size_t ldx, size_t batch,  \
              float *y, size_t ldy, int accumulate) {                                                         \
        for (size_t m = 0; m < batch; m++) single(w, ldw, rows, cols, x + m * ldx, y + m * ldy, accumulate); \
    }

PORTABLE_BATCH(accm_gemv_f32_batch_portable, accm_gemv_f32_portable, float)
PORTABLE_BATCH(accm_gemv_bf16_batch_portable, accm_gemv_bf16_portable, uint16_t)
PORTABLE_BATCH(accm_gemv_f16_batch_portable, accm_gemv_f16_portable, uint16_t)

#if ACCM_X86
ACCM_AVX2 static inline __m256 load_f32x8(const float *p) { return _mm256_loadu_ps(p); }
ACCM_AVX2 static inline __m256 load_f16x8(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
ACCM_AVX2 static inline __m256 load_bf16x8(const uint16_t *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}
static inline float value_f32(const float *p) { return *p; }
static inline float value_f16(const uint16_t *p) { return accm_f16_value(accm_load_u16(p)); }
static inline float value_bf16(const uint16_t *p) { return accm_bf16_value(accm_load_u16(p)); }

/// Weight rows r ..< r + RR (RR ≤ 2: two read streams) against inputs 0 ..< RB, 8 columns a step.
#define AVX2_BATCH_TILE(tile, type, load, value)                                                               \
    ACCM_AVX2 static inline __attribute__((always_inline)) void                                                \
    tile(const type *w, size_t ldw, size_t r, int RR, size_t cols, const float *x, size_t ldx, int RB,         \
         float *y, size_t ldy, int accumulate) {                                                                \
        __m256 acc[2][ACCM_BATCH_ROWS];                                                                         \
        for (int i = 0; i < RR; i++)                                                                            \
            for (int m = 0; m < RB; m++) acc[i][m] = _mm256_setzero_ps();                                       \
        size_t c = 0;                                                                                           \
        for (; c + 8 <= cols; c += 8) {                                                                         \
            __m256 v[2];                                                                                        \
            for (int i = 0; i < RR; i++) v[i] = load(w + (r + i) * ldw + c);                                    \
            for (int m = 0; m < RB; m++) {                                                                      \
                __m256 xm = _mm256_loadu_ps(x + m * ldx + c);                                                   \
                for (int i = 0; i < RR; i++) acc[i][m] = _mm256_fmadd_ps(v[i], xm, acc[i][m]);                  \
            }                                                                                                   \
        }                                                                                                       \
        for (int i = 0; i < RR; i++)                                                                            \
            for (int m = 0; m < RB; m++) {                                                                      \
                float sum = accm_horizontal_sum(acc[i][m]);                                                     \
                for (size_t t = c; t < cols; t++) sum += value(w + (r + i) * ldw + t) * x[m * ldx + t];         \
                float *out = y + m * ldy + r + i;                                                               \
                *out = accumulate ? *out + sum : sum;                                                           \
            }                                                                                                   \
    }

/// Every weight row (two at a time, then the odd one) against RB inputs; `name` picks RB once as a constant.
#define AVX2_BATCH(name, tile, type)                                                                           \
    ACCM_AVX2 static inline __attribute__((always_inline)) void                                                \
    name##_rows(const type *w, size_t ldw, size_t rows, size_t cols, const float *x, size_t ldx, int RB,       \
                float *y, size_t ldy, int accumulate) {                                                         \
        size_t r = 0;                                                                                           \
        for (; r + 2 <= rows; r += 2) tile(w, ldw, r, 2, cols, x, ldx, RB, y, ldy, accumulate);                 \
        if (r < rows) tile(w, ldw, r, 1, cols, x, ldx, RB, y, ldy, accumulate);                                 \
    }                                                                                                           \
    ACCM_AVX2 static void name(const type *w, size_t ldw, size_t rows, size_t cols, const float *x, size_t ldx, \
                               int RB, float *y, size_t ldy, int accumulate) {                                  \
        switch (RB) {                                                                                           \
        case 4: name##_rows(w, ldw, rows, cols, x, ldx, 4, y, ldy, accumulate); break;                          \
        case 3: name##_rows(w, ldw, rows, cols, x, ldx, 3, y, ldy, accumulate); break;                          \
        default: name##_rows(w, ldw, rows, cols, x, ldx, 2, y, ldy, accumulate); break;                         \
        }                                                                                                       \
    }

AVX2_BATCH_TILE(tile_f32, float, load_f32x8, value_f32)
AVX2_BATCH_TILE(tile_f16, uint16_t, load_f16x8, value_f16)
AVX2_BATCH_TILE(tile_bf16, uint16_t, load_bf16x8, value_bf16)
AVX2_BATCH(batch_f32_avx2, tile_f32, float)
AVX2_BATCH(batch_f16_avx2, tile_f16, uint16_t)
AVX2_BATCH(batch_bf16_avx2, tile_bf16, uint16_t)

#endif

/// Runs `batch` inputs in turns of up to ACCM_BATCH_ROWS: a turn of one input goes to the one-input kernel.
#define DISPATCH_BATCH(name, type, single, avx2, portable)                                                       \
    void name(const type *w, size_t ldw, size_t rows, size_t cols, const float *x, size_t ldx, size_t batch,     \
              float *y, size_t ldy, int accumulate) {                                                             \
        if (!ACCM_X86 || !accm_kernels_simd_level()) {                                                            \
            portable(w, ldw, rows, cols, x, ldx, batch, y, ldy, accumulate);                                      \
            return;                                                                                               \
        }                                                                                                         \
        for (size_t m0 = 0; m0 < batch; m0 += ACCM_BATCH_ROWS) {                                                  \
            size_t rb = batch - m0 < ACCM_BATCH_ROWS ? batch - m0 : ACCM_BATCH_ROWS;                              \
            if (rb == 1) single(w, ldw, rows, cols, x + m0 * ldx, y + m0 * ldy, accumulate);                      \
            else avx2(w, ldw, rows, cols, x + m0 * ldx, ldx, (int)rb, y + m0 * ldy, ldy, accumulate);             \
        }                                                                                                         \
    }

#if ACCM_X86
DISPATCH_BATCH(accm_gemv_f32_batch, float, accm_gemv_f32, batch_f32_avx2, accm_gemv_f32_batch_portable)
DISPATCH_BATCH(accm_gemv_bf16_batch, uint16_t, accm_gemv_bf16, batch_bf16_avx2, accm_gemv_bf16_batch_portable)
DISPATCH_BATCH(accm_gemv_f16_batch, uint16_t, accm_gemv_f16, batch_f16_avx2, accm_gemv_f16_batch_portable)
#else
PORTABLE_BATCH(accm_gemv_f32_batch, accm_gemv_f32, float)
PORTABLE_BATCH(accm_gemv_bf16_batch, accm_gemv_bf16, uint16_t)
PORTABLE_BATCH(accm_gemv_f16_batch, accm_gemv_f16, uint16_t)
#endif
