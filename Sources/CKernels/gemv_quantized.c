// Matrix-vector products of Q8_0/Q4_0 weights with an 8-bit quantized activation: per block an exact
// integer dot product, scaled by both blocks' scales (AVX2: vpmaddubsw + vpmaddwd, as llama.cpp's Q8_0/Q4_0).

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

void accm_gemv_q4_0_portable(const uint8_t *w, const uint16_t *scales, size_t rows, size_t cols,
                             const int8_t *xq, const float *xs, float *y, int accumulate) {
    size_t blocks = cols / ACCM_QUANT_BLOCK;
    const int half = ACCM_QUANT_BLOCK / 2;
    for (size_t r = 0; r < rows; r++) {
        const uint8_t *row = w + r * cols / 2;
        const uint16_t *rs = scales + r * blocks;
        float sum = 0;
        for (size_t b = 0; b < blocks; b++) {
            int32_t dot = 0;
            const int8_t *x = xq + b * ACCM_QUANT_BLOCK;
            for (int j = 0; j < half; j++) {
                uint8_t byte = row[b * half + j];
                dot += ((int32_t)(byte & 0x0F) - 8) * (int32_t)x[j] + ((int32_t)(byte >> 4) - 8) * (int32_t)x[j + half];
            }
            sum += accm_f16_value(accm_load_u16(rs + b)) * xs[b] * (float)dot;
        }
        y[r] = accumulate ? y[r] + sum : sum;
    }
}

#if ACCM_X86
/// Eight int32 partial sums of the signed bytes `w` · `x` (32 each): |w| · sign(x, w) through vpmaddubsw.
ACCM_AVX2 static inline __m256 block_dot(__m256i w, __m256i x) {
    __m256i products = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(products, _mm256_set1_epi16(1)));
}

/// The 32 weights of a Q4_0 block as signed bytes (q - 8), in order.
ACCM_AVX2 static inline __m256i unpack_q4(const uint8_t *p) {
    __m128i packed = _mm_loadu_si128((const __m128i *)p);
    __m256i nibbles = _mm256_set_m128i(_mm_srli_epi16(packed, 4), packed);
    return _mm256_sub_epi8(_mm256_and_si256(nibbles, _mm256_set1_epi8(0x0F)), _mm256_set1_epi8(8));
}

/// Per block b: dw·dx scales for 8 blocks at a time (one vcvtph2ps for 8 fp16 scales).
ACCM_AVX2 static inline __m256 block_scales(const uint16_t *rs, const float *xs) {
    return _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)rs)), _mm256_loadu_ps(xs));
}

ACCM_AVX2 static void gemv_q8_0_avx2(const int8_t *w, const uint16_t *scales, size_t rows, size_t cols,
                                     const int8_t *xq, const float *xs, float *y, int accumulate) {
    size_t blocks = cols / ACCM_QUANT_BLOCK;
    float d[8] __attribute__((aligned(32)));
    for (size_t r = 0; r < rows; r++) {
        const int8_t *row = w + r * cols;
        const uint16_t *rs = scales + r * blocks;
        __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
        size_t b = 0;
        for (; b + 8 <= blocks; b += 8) {
            _mm256_store_ps(d, block_scales(rs + b, xs + b));
            for (int line = 0; line < 4; line++)
                _mm_prefetch((const char *)(row + b * 32 + PREFETCH_BYTES + 64 * line), _MM_HINT_T0);
            for (int k = 0; k < 8; k += 2) {
                const int8_t *p = row + (b + k) * 32, *q = xq + (b + k) * 32;
                __m256 p0 = block_dot(_mm256_loadu_si256((const __m256i *)p), _mm256_loadu_si256((const __m256i *)q));
                __m256 p1 = block_dot(_mm256_loadu_si256((const __m256i *)(p + 32)), _mm256_loadu_si256((const __m256i *)(q + 32)));
                acc0 = _mm256_fmadd_ps(_mm256_broadcast_ss(d + k), p0, acc0);
                acc1 = _mm256_fmadd_ps(_mm256_broadcast_ss(d + k + 1), p1, acc1);
            }
        }
        for (; b < blocks; b++) {
            __m256 d0 = _mm256_set1_ps(_cvtsh_ss(accm_load_u16(rs + b)) * xs[b]);
            __m256i w0 = _mm256_loadu_si256((const __m256i *)(row + b * 32));
            __m256i x0 = _mm256_loadu_si256((const __m256i *)(xq + b * 32));
            acc0 = _mm256_fmadd_ps(d0, block_dot(w0, x0), acc0);
        }
        float sum = accm_horizontal_sum(_mm256_add_ps(acc0, acc1));
        y[r] = accumulate ? y[r] + sum : sum;
    }
}

/// Q4_0 as unsigned nibbles q, which vpmaddubsw takes directly, and Σ (q − 8)·x = Σ q·x − Σ 8·x subtracted in
/// integers, lane by lane, so each block's sum is exact (subtracting in fp32 after the fact cancels two large
/// sums). Two blocks at a time: their 32 packed bytes give the low nibbles of both (weights 0–15 of each, one per
/// 128-bit lane) with one AND and the high nibbles (weights 16–31) with a shift and an AND, against a copy of
/// the activation whose blocks are regrouped the same way (made once per call, with the 8·x sums per lane); one
/// vpmaddwd then sums both blocks' products, 4 lanes each, scaled by [d₀ d₀ d₀ d₀ d₁ d₁ d₁ d₁].
ACCM_AVX2 static void gemv_q4_0_avx2(const uint8_t *w, const uint16_t *scales, size_t rows, size_t cols,
                                     const int8_t *xq, const float *xs, float *y, int accumulate) {
    size_t blocks = cols / ACCM_QUANT_BLOCK, whole = blocks / 8 * 8;
    // Per pair of blocks: x₀[0..15] x₁[0..15], x₀[16..31] x₁[16..31] (64 bytes), then the 8 int32 lanes of Σ 8·x
    // that match the product lanes (32 bytes).
    uint8_t *scratch = aligned_alloc(32, (whole / 2) * 96 + 32);
    if (!scratch) { accm_gemv_q4_0_portable(w, scales, rows, cols, xq, xs, y, accumulate); return; }
    const __m256i low_nibbles = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1), eights = _mm256_set1_epi8(8);
    for (size_t b = 0; b < whole; b += 2) {
        __m256i x0 = _mm256_loadu_si256((const __m256i *)(xq + b * 32)), x1 = _mm256_loadu_si256((const __m256i *)(xq + b * 32 + 32));
        __m256i low = _mm256_permute2x128_si256(x0, x1, 0x20), high = _mm256_permute2x128_si256(x0, x1, 0x31);
        __m256i *pair = (__m256i *)(scratch + b / 2 * 96);
        _mm256_store_si256(pair, low);
        _mm256_store_si256(pair + 1, high);
        _mm256_store_si256(pair + 2, _mm256_madd_epi16(
            _mm256_add_epi16(_mm256_maddubs_epi16(eights, low), _mm256_maddubs_epi16(eights, high)), ones));
    }
    const __m256i pair_index[4] = {
        _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1), _mm256_setr_epi32(2, 2, 2, 2, 3, 3, 3, 3),
        _mm256_setr_epi32(4, 4, 4, 4, 5, 5, 5, 5), _mm256_setr_epi32(6, 6, 6, 6, 7, 7, 7, 7),
    };
    for (size_t r = 0; r < rows; r++) {
        const uint8_t *row = w + r * cols / 2;
        const uint16_t *rs = scales + r * blocks;
        __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
        size_t b = 0;
        for (; b < whole; b += 8) {
            __m256 d = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(rs + b))), _mm256_loadu_ps(xs + b));
            _mm_prefetch((const char *)(row + b * 16 + PREFETCH_BYTES), _MM_HINT_T0);
            _mm_prefetch((const char *)(row + b * 16 + PREFETCH_BYTES + 64), _MM_HINT_T0);
            for (int k = 0; k < 4; k++) {
                __m256i packed = _mm256_loadu_si256((const __m256i *)(row + (b + 2 * k) * 16));
                const __m256i *pair = (const __m256i *)(scratch + (b / 2 + k) * 96);
                __m256i low = _mm256_and_si256(packed, low_nibbles);
                __m256i high = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low_nibbles);
                __m256i sums = _mm256_add_epi16(_mm256_maddubs_epi16(low, _mm256_load_si256(pair)),
                                                _mm256_maddubs_epi16(high, _mm256_load_si256(pair + 1)));
                __m256i dots = _mm256_sub_epi32(_mm256_madd_epi16(sums, ones), _mm256_load_si256(pair + 2));
                __m256 scale = _mm256_permutevar8x32_ps(d, pair_index[k]);
                if (k % 2 == 0) acc0 = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(dots), acc0);
                else acc1 = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(dots), acc1);
            }
        }
        for (; b < blocks; b++) {
            __m256 d0 = _mm256_set1_ps(_cvtsh_ss(accm_load_u16(rs + b)) * xs[b]);
            __m256i x0 = _mm256_loadu_si256((const __m256i *)(xq + b * 32));
            acc0 = _mm256_fmadd_ps(d0, block_dot(unpack_q4(row + b * 16), x0), acc0);
        }
        float sum = accm_horizontal_sum(_mm256_add_ps(acc0, acc1));
        y[r] = accumulate ? y[r] + sum : sum;
    }
    free(scratch);
}
#endif

void accm_gemv_q8_0(const int8_t *w, const uint16_t *scales, size_t rows, size_t cols,
                    const int8_t *xq, const float *xs, float *y, int accumulate) {
#if ACCM_X86
    if (accm_kernels_simd_level()) { gemv_q8_0_avx2(w, scales, rows, cols, xq, xs, y, accumulate); return; }
#endif
    accm_gemv_q8_0_portable(w, scales, rows, cols, xq, xs, y, accumulate);
}

void accm_gemv_q4_0(const uint8_t *w, const uint16_t *scales, size_t rows, size_t cols,
                    const int8_t *xq, const float *xs, float *y, int accumulate) {
#if ACCM_X86
    if (accm_kernels_simd_level()) { gemv_q4_0_avx2(w, scales, rows, cols, xq, xs, y, accumulate); return; }
#endif
    accm_gemv_q4_0_portable(w, scales, rows, cols, xq, xs, y, accumulate);
}
