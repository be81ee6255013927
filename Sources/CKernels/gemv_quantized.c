// Matrix-vector products of Q8_0/Q4_0 weights with an 8-bit quantized activation: per block an exact
// integer dot product, scaled by both blocks' scales (AVX2: vpmaddubsw + vpmaddwd, as llama.cpp's Q8_0/Q4_0;
// AVX-512 VNNI: vpdpbusd, the same integers, so the two levels' kernels are one body each and give the same bits).

#include "accm_kernels.h"
#include "internal.h"

#include <stdlib.h>

/// How far ahead of its reads a matrix-vector kernel asks for weight bytes (software prefetch): one row's
/// stream alone leaves the hardware prefetcher behind, 2 KiB ahead streamed Q4_0/Q8_0 rows 10–15% faster
/// on a Zen 3 VM (the bf16/f16 kernels, which read two rows at once, gained nothing from it).
#define PREFETCH_BYTES 2048

void accm_gemv_q8_0_portable(const int8_t *w, const uint16_t *scales, size_t rows, size_t cols,
                             const int8_t *xq, const float *xs, float *y, int accumulate) {
    size_t blocks = cols / ACCM_QUANT_BLOCK;
    for (size_t r = 0; r < rows; r++) {
        const int8_t *row = w + r * cols;
        const uint16_t *rs = scales + r * blocks;
        float sum = 0;
        for (size_t b = 0; b < blocks; b++) {
            int32_t dot = 0;
            for (int j = 0; j < ACCM_QUANT_BLOCK; j++)
                dot += (int32_t)row[b * ACCM_QUANT_BLOCK + j] * (int32_t)xq[b * ACCM_QUANT_BLOCK + j];
            sum += accm_f16_value(accm_load_u16(rs + b)) * xs[b] * (float)dot;
        }
        y[r] = accumulate ? y[r] + sum : sum;
    }
}

/// Σ over block `b` of rows `group * 8 + lane` (lane < 8) of (q − 8) · x, for the 8 rows of a group at once.
static void group_block_dots(const uint8_t *block, const int8_t *x, int32_t dots[8]) {
    for (int lane = 0; lane < 8; lane++) {
        int32_t dot = 0;
        for (int k = 0; k < 4; k++)
            for (int j = 0; j < 4; j++) {
                uint8_t byte = block[k * 32 + lane * 4 + j];
                dot += ((int32_t)(byte & 0x0F) - 8) * x[4 * k + j] + ((int32_t)(byte >> 4) - 8) * x[16 + 4 * k + j];
            }
        dots[lane] = dot;
    }
}

/// Writes the 8 sums of group `group` to the rows of first_row ..< first_row + count it holds.
static void store_group(const float sums[8], size_t group, size_t first_row, size_t count, float *y, int accumulate) {
    size_t lower = group * 8 > first_row ? group * 8 : first_row;
    size_t upper = group * 8 + 8 < first_row + count ? group * 8 + 8 : first_row + count;
    for (size_t row = lower; row < upper; row++) {
        float v = sums[row - group * 8];
        y[row - first_row] = accumulate ? y[row - first_row] + v : v;
    }
}

void accm_gemv_q4_0x8_portable(const uint8_t *w, const uint16_t *ws, size_t cols, size_t first_row, size_t count,
                               const int8_t *xq, const float *xs, float *y, int accumulate) {
    size_t blocks = cols / ACCM_QUANT_BLOCK;
    if (count == 0) return;
    for (size_t g = first_row / 8; g * 8 < first_row + count; g++) {
        float sums[8] = {0};
        for (size_t b = 0; b < blocks; b++) {
            int32_t dots[8];
            group_block_dots(w + (g * blocks + b) * 128, xq + b * ACCM_QUANT_BLOCK, dots);
            for (int lane = 0; lane < 8; lane++)
                sums[lane] += accm_f16_value(accm_load_u16(ws + (g * blocks + b) * 8 + lane)) * xs[b] * (float)dots[lane];
        }
        store_group(sums, g, first_row, count, y, accumulate);
    }
}

#if ACCM_X86
/// Eight int32 partial sums of the signed bytes `w` · `x` (32 each) as fp32: |w| · sign(x, w) through vpmaddubsw.
ACCM_AVX2 static inline __m256 q8_block_dot_avx2(__m256i w, __m256i x) {
    __m256i products = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(products, _mm256_set1_epi16(1)));
}

/// The same products summed by vpdpbusd (AVX-512 VNNI): the same integers.
ACCM_AVX512_VNNI static inline __m256 q8_block_dot_vnni(__m256i w, __m256i x) {
    return _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_abs_epi8(w), _mm256_sign_epi8(x, w)));
}

/// Defines `name`, the Q8_0 matrix-vector kernel of one level (`ATTRIBUTES`: its target, and `static` or not)
/// over `block_dot`: per row, blocks in pairs into two accumulators, the dw·dx scales of 8 blocks at a time from
/// one vcvtph2ps.
#define GEMV_Q8_0(name, ATTRIBUTES, block_dot)                                                                     \
    ATTRIBUTES void name(const int8_t *w, const uint16_t *scales, size_t rows, size_t cols, const int8_t *xq,      \
                         const float *xs, float *y, int accumulate) {                                               \
        size_t blocks = cols / ACCM_QUANT_BLOCK;                                                                    \
        float d[8] __attribute__((aligned(32)));                                                                    \
        for (size_t r = 0; r < rows; r++) {                                                                         \
            const int8_t *row = w + r * cols;                                                                       \
            const uint16_t *rs = scales + r * blocks;                                                               \
            __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;                                                         \
            size_t b = 0;                                                                                           \
            for (; b + 8 <= blocks; b += 8) {                                                                       \
                _mm256_store_ps(d, _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(rs + b))),       \
                                                 _mm256_loadu_ps(xs + b)));                                         \
                for (int line = 0; line < 4; line++)                                                                \
                    _mm_prefetch((const char *)(row + b * 32 + PREFETCH_BYTES + 64 * line), _MM_HINT_T0);           \
                for (int k = 0; k < 8; k += 2) {                                                                    \
                    const int8_t *p = row + (b + k) * 32, *q = xq + (b + k) * 32;                                   \
                    __m256 p0 = block_dot(_mm256_loadu_si256((const __m256i *)p),                                   \
                                          _mm256_loadu_si256((const __m256i *)q));                                  \
                    __m256 p1 = block_dot(_mm256_loadu_si256((const __m256i *)(p + 32)),                            \
                                          _mm256_loadu_si256((const __m256i *)(q + 32)));                           \
                    acc0 = _mm256_fmadd_ps(_mm256_broadcast_ss(d + k), p0, acc0);                                   \
                    acc1 = _mm256_fmadd_ps(_mm256_broadcast_ss(d + k + 1), p1, acc1);                               \
                }                                                                                                   \
            }                                                                                                       \
            for (; b < blocks; b++) {                                                                               \
                __m256 d0 = _mm256_set1_ps(_cvtsh_ss(accm_load_u16(rs + b)) * xs[b]);                               \
                __m256i w0 = _mm256_loadu_si256((const __m256i *)(row + b * 32));                                   \
                __m256i x0 = _mm256_loadu_si256((const __m256i *)(xq + b * 32));                                    \
                acc0 = _mm256_fmadd_ps(d0, block_dot(w0, x0), acc0);                                                \
            }                                                                                                       \
            float sum = accm_horizontal_sum(_mm256_add_ps(acc0, acc1));                                             \
            y[r] = accumulate ? y[r] + sum : sum;                                                                   \
        }                                                                                                           \
    }

GEMV_Q8_0(gemv_q8_0_avx2, ACCM_AVX2 static, q8_block_dot_avx2)
GEMV_Q8_0(accm_gemv_q8_0_vnni, ACCM_AVX512_VNNI, q8_block_dot_vnni)

/// Defines `name`, the int4 decode kernel of one level (accm_gemv_q4_0x8_rows_avx2 / _vnni) over `dots` (a
/// block-dot function of internal.h), with its helpers `name##_group` and `name##_tile`.
///
/// Q4_0 rows interleaved 8 at a time (accm_q4_0x8): per block, 4 loads of 32 bytes give, with one AND (low
/// nibbles) or a shift and an AND (high nibbles), 4 weights of each of the 8 rows as unsigned bytes q; `dots`
/// multiplies them with the matching 4 activation bytes broadcast to every lane (AVX2: vpmaddubsw, int16 sums and
/// one vpmaddwd; VNNI: vpdpbusd), giving the block's 8 sums Σ q·x, one per row, and Σ (q − 8)·x = Σ q·x − 8·Σ x
/// is subtracted in exact integers. The fp32 work per block (convert, scale, accumulate) is shared by 8 rows: on
/// a Zen 3 core 1.2–1.4× the rate of a one-row-at-a-time kernel over row-major Q4_0 from cache, which made int4
/// decode bound by instructions rather than by memory. Up to ACCM_BATCH_ROWS activation rows (a batch's decode
/// step) share each block's loads and unpacking.
#define Q4X8_ROWS(name, TARGET, dots)                                                                              \
    /* Group g's 8 sums for each of RM activation rows (RM ≤ ACCM_BATCH_ROWS) into `out`. */                       \
    TARGET static inline __attribute__((always_inline)) void                                                        \
    name##_group(const uint8_t *w, const uint16_t *ws, size_t blocks, size_t g, const int8_t *xq, const float *xs,  \
                 const int32_t *offsets, int RM, __m256 out[ACCM_BATCH_ROWS]) {                                     \
        const __m256i low_nibbles = _mm256_set1_epi8(0x0F);                                                         \
        const uint8_t *group = w + g * blocks * 128;                                                                \
        const uint16_t *group_scales = ws + g * blocks * 8;                                                         \
        __m256 acc[ACCM_BATCH_ROWS];                                                                                \
        for (int m = 0; m < RM; m++) acc[m] = _mm256_setzero_ps();                                                  \
        for (size_t b = 0; b < blocks; b++) {                                                                       \
            const __m256i *chunk = (const __m256i *)(group + b * 128);                                              \
            _mm_prefetch((const char *)chunk + PREFETCH_BYTES, _MM_HINT_T0);                                        \
            _mm_prefetch((const char *)chunk + PREFETCH_BYTES + 64, _MM_HINT_T0);                                   \
            __m256i p0 = _mm256_loadu_si256(chunk), p1 = _mm256_loadu_si256(chunk + 1),                             \
                    p2 = _mm256_loadu_si256(chunk + 2), p3 = _mm256_loadu_si256(chunk + 3);                         \
            const __m256i unpacked[8] = {                                                                           \
                _mm256_and_si256(p0, low_nibbles), _mm256_and_si256(p1, low_nibbles),                               \
                _mm256_and_si256(p2, low_nibbles), _mm256_and_si256(p3, low_nibbles),                               \
                _mm256_and_si256(_mm256_srli_epi16(p0, 4), low_nibbles),                                            \
                _mm256_and_si256(_mm256_srli_epi16(p1, 4), low_nibbles),                                            \
                _mm256_and_si256(_mm256_srli_epi16(p2, 4), low_nibbles),                                            \
                _mm256_and_si256(_mm256_srli_epi16(p3, 4), low_nibbles),                                            \
            };                                                                                                      \
            __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(group_scales + b * 8)));                  \
            for (int m = 0; m < RM; m++) {                                                                          \
                __m256i d = dots(unpacked, xq + m * blocks * ACCM_QUANT_BLOCK + b * ACCM_QUANT_BLOCK,               \
                                 offsets[m * blocks + b]);                                                          \
                acc[m] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_mul_ps(dw, _mm256_set1_ps(xs[m * blocks + b])), \
                                         acc[m]);                                                                   \
            }                                                                                                       \
        }                                                                                                           \
        for (int m = 0; m < RM; m++) out[m] = acc[m];                                                               \
    }                                                                                                               \
                                                                                                                    \
    /* RM activation rows against rows first_row ..< first_row + count. */                                          \
    TARGET static void name##_tile(const uint8_t *w, const uint16_t *ws, size_t cols, size_t first_row, size_t count, \
                                   const int8_t *xq, const float *xs, int RM, float *y, size_t ldy, int accumulate) { \
        size_t blocks = cols / ACCM_QUANT_BLOCK;                                                                    \
        int32_t offsets[RM * blocks]; /* 8 · Σ x per block and row */                                               \
        accm_q4_block_offsets(xq, RM * blocks, offsets);                                                            \
        for (size_t g = first_row / 8; g * 8 < first_row + count; g++) {                                           \
            __m256 sums[ACCM_BATCH_ROWS];                                                                           \
            switch (RM) {                                                                                           \
            case 4: name##_group(w, ws, blocks, g, xq, xs, offsets, 4, sums); break;                                \
            case 3: name##_group(w, ws, blocks, g, xq, xs, offsets, 3, sums); break;                                \
            case 2: name##_group(w, ws, blocks, g, xq, xs, offsets, 2, sums); break;                                \
            default: name##_group(w, ws, blocks, g, xq, xs, offsets, 1, sums); break;                               \
            }                                                                                                       \
            for (int m = 0; m < RM; m++) {                                                                          \
                float *row = y + m * ldy;                                                                           \
                if (g * 8 >= first_row && g * 8 + 8 <= first_row + count) {                                         \
                    float *out = row + (g * 8 - first_row);                                                         \
                    _mm256_storeu_ps(out, accumulate ? _mm256_add_ps(_mm256_loadu_ps(out), sums[m]) : sums[m]);     \
                } else {                                                                                            \
                    float lanes[8];                                                                                 \
                    _mm256_storeu_ps(lanes, sums[m]);                                                               \
                    store_group(lanes, g, first_row, count, row, accumulate);                                       \
                }                                                                                                   \
            }                                                                                                       \
        }                                                                                                           \
    }                                                                                                               \
                                                                                                                    \
    TARGET void name(const uint8_t *w, const uint16_t *ws, size_t cols, size_t first_row, size_t count,             \
                     const int8_t *xq, const float *xs, size_t rows, float *y, size_t ldy, int accumulate) {        \
        if (count == 0) return;                                                                                     \
        for (size_t m0 = 0; m0 < rows; m0 += ACCM_BATCH_ROWS) {                                                     \
            int rm = rows - m0 < ACCM_BATCH_ROWS ? (int)(rows - m0) : ACCM_BATCH_ROWS;                              \
            name##_tile(w, ws, cols, first_row, count, xq + m0 * cols, xs + m0 * (cols / ACCM_QUANT_BLOCK), rm,     \
                        y + m0 * ldy, ldy, accumulate);                                                             \
        }                                                                                                           \
    }

Q4X8_ROWS(accm_gemv_q4_0x8_rows_avx2, ACCM_AVX2, accm_q4x8_block_dots)
Q4X8_ROWS(accm_gemv_q4_0x8_rows_vnni, ACCM_AVX512_VNNI, accm_u8x8_block_dots_vnni)
#endif

void accm_gemv_q8_0(const int8_t *w, const uint16_t *scales, size_t rows, size_t cols,
                    const int8_t *xq, const float *xs, float *y, int accumulate) {
#if ACCM_X86
    int level = accm_kernels_simd_level();
    if (level >= ACCM_KERNELS_AVX512_VNNI) { accm_gemv_q8_0_vnni(w, scales, rows, cols, xq, xs, y, accumulate); return; }
    if (level) { gemv_q8_0_avx2(w, scales, rows, cols, xq, xs, y, accumulate); return; }
#endif
    accm_gemv_q8_0_portable(w, scales, rows, cols, xq, xs, y, accumulate);
}

void accm_gemv_q4_0x8(const uint8_t *w, const uint16_t *ws, size_t cols, size_t first_row, size_t count,
                      const int8_t *xq, const float *xs, float *y, int accumulate) {
#if ACCM_X86
    int level = accm_kernels_simd_level();
    if (level >= ACCM_KERNELS_AVX512_VNNI) { accm_gemv_q4_0x8_rows_vnni(w, ws, cols, first_row, count, xq, xs, 1, y, 0, accumulate); return; }
    if (level) { accm_gemv_q4_0x8_rows_avx2(w, ws, cols, first_row, count, xq, xs, 1, y, 0, accumulate); return; }
#endif
    accm_gemv_q4_0x8_portable(w, ws, cols, first_row, count, xq, xs, y, accumulate);
}
