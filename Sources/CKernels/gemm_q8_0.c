// Prefill over Q8_0 weights with integer dot products: y[m, r] = Σ_b dw[r, b] · dx[m, b] · Σ_j q[r, b, j] ·
// xq[m, b, j], for several activation rows at once (the quantized activation rows of a prompt).
//
// AVX2 path. Q8_0's products do not fit vpmaddubsw (one operand must be unsigned, and two signed 8-bit products
// can overflow its int16 sums), so the bytes are widened to int16 and multiplied with vpmaddwd: one instruction,
// 16 multiply-adds into 8 int32 lanes, against fp32 FMA's 8. Weight rows are taken 8 at a time and repacked
// (once per call and group of 8, into L2-sized scratch) so that one vector holds 2 consecutive weights of each of
// the 8 rows as int16; vpmaddwd of it with 2 activations broadcast to every lane gives, in each lane, one weight
// row's products. A block's 16 such vectors summed in int32 are its 8 exact dot products, one per lane, so the
// per-block fp32 work (convert, scale, add) is shared by 8 outputs, and each weight vector loaded serves 4
// activation rows. Up to 4 activation rows (a batch's decode step) skip the repack: one accm_gemv_q8_0 each.

#include "accm_kernels.h"
#include "internal.h"

#include <stdlib.h>
#include <string.h>

void accm_gemm_q8_0_portable(const int8_t *w, const uint16_t *scales, size_t rows, size_t cols,
                             const int8_t *xq, const float *xs, size_t count, float *y, size_t ldy, int accumulate) {
    size_t blocks = cols / ACCM_QUANT_BLOCK;
    for (size_t m = 0; m < count; m++)
        accm_gemv_q8_0_portable(w, scales, rows, cols, xq + m * cols, xs + m * blocks, y + m * ldy, accumulate);
}

#if ACCM_X86

enum { GROUP = 8, TILE_ROWS = 4, PAIRS = ACCM_QUANT_BLOCK / 2 };

/// 8 weight rows of every block, repacked: per block, 16 vectors of 8 × 2 int16 (weights 2j, 2j + 1 of each row),
/// then the 8 rows' scales as fp32.
typedef struct {
    int16_t *pairs;   // blocks × 16 × 16
    float *scales;    // blocks × 8
} Group;

/// Repacks weight rows r0 ..< r0 + count (count ≤ 8; missing rows are zero) into `g`.
ACCM_AVX2 static void repack(Group *g, const int8_t *w, const uint16_t *scales, size_t cols, size_t r0, size_t count) {
    size_t blocks = cols / ACCM_QUANT_BLOCK;
    if (count == GROUP) {
        // Each row's block widened to int16 is 16 int32 lanes of 2 weights, in two vectors; transposed, vector j
        // holds lane j (weights 2j, 2j + 1) of every row.
        for (size_t b = 0; b < blocks; b++) {
            __m256i first[GROUP], second[GROUP];
            for (size_t r = 0; r < GROUP; r++) {
                __m256i p = _mm256_loadu_si256((const __m256i *)(w + (r0 + r) * cols + b * ACCM_QUANT_BLOCK));
                first[r] = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(p));
                second[r] = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(p, 1));
                g->scales[b * GROUP + r] = _cvtsh_ss(accm_load_u16(scales + (r0 + r) * blocks + b));
            }
            accm_transpose_8x8_epi32(first);
            accm_transpose_8x8_epi32(second);
            __m256i *out = (__m256i *)(g->pairs + b * PAIRS * 16);
            for (int j = 0; j < 8; j++) {
                _mm256_store_si256(out + j, first[j]);
                _mm256_store_si256(out + 8 + j, second[j]);
            }
        }
        return;
    }
    for (size_t b = 0; b < blocks; b++) {
        int16_t *out = g->pairs + b * PAIRS * 16;
        for (size_t r = 0; r < GROUP; r++) {
            const int8_t *p = w + (r0 + r) * cols + b * ACCM_QUANT_BLOCK;
            for (int j = 0; j < PAIRS; j++) {
                out[j * 16 + r * 2] = r < count ? p[2 * j] : 0;
                out[j * 16 + r * 2 + 1] = r < count ? p[2 * j + 1] : 0;
            }
            g->scales[b * GROUP + r] = r < count ? _cvtsh_ss(accm_load_u16(scales + (r0 + r) * blocks + b)) : 0;
        }
    }
}

/// Activation rows m0 ..< m0 + RM (as int16, `x16`) against one repacked group: 8 outputs per row.
ACCM_AVX2 static inline __attribute__((always_inline)) void
group_tile(const Group *g, size_t blocks, size_t cols, const int16_t *x16, const float *xs, size_t m0, int RM,
           float *out, size_t ldy, int accumulate, size_t outputs) {
    __m256 acc[TILE_ROWS];
    for (int m = 0; m < RM; m++) acc[m] = _mm256_setzero_ps();
    for (size_t b = 0; b < blocks; b++) {
        const __m256i *wv = (const __m256i *)(g->pairs + b * PAIRS * 16);
        const int32_t *x[TILE_ROWS];
        __m256i dot[TILE_ROWS];
        ACCM_UNROLL
        for (int m = 0; m < RM; m++) {
            x[m] = (const int32_t *)(x16 + (m0 + m) * cols + b * ACCM_QUANT_BLOCK);
            dot[m] = _mm256_setzero_si256();
        }
        ACCM_UNROLL
        for (int j = 0; j < PAIRS; j += 2) {
            __m256i w0 = _mm256_load_si256(wv + j), w1 = _mm256_load_si256(wv + j + 1);
            ACCM_UNROLL
            for (int m = 0; m < RM; m++) {
                __m256i p0 = _mm256_madd_epi16(w0, _mm256_set1_epi32(x[m][j]));
                __m256i p1 = _mm256_madd_epi16(w1, _mm256_set1_epi32(x[m][j + 1]));
                dot[m] = _mm256_add_epi32(dot[m], _mm256_add_epi32(p0, p1));
            }
        }
        __m256 dw = _mm256_load_ps(g->scales + b * GROUP);
        ACCM_UNROLL
        for (int m = 0; m < RM; m++) {
            __m256 scale = _mm256_mul_ps(dw, _mm256_set1_ps(xs[(m0 + m) * blocks + b]));
            acc[m] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot[m]), scale, acc[m]);
        }
    }
    for (int m = 0; m < RM; m++) {
        float *o = out + (m0 + m) * ldy;
        float lanes[GROUP];
        _mm256_storeu_ps(lanes, acc[m]);
        for (size_t r = 0; r < outputs; r++) o[r] = accumulate ? o[r] + lanes[r] : lanes[r];
    }
}

ACCM_AVX2 static void any_group_tile(const Group *g, size_t blocks, size_t cols, const int16_t *x16, const float *xs,
                                     size_t m0, int rm, float *out, size_t ldy, int accumulate, size_t outputs) {
    switch (rm) {
    case 4: group_tile(g, blocks, cols, x16, xs, m0, 4, out, ldy, accumulate, outputs); break;
    case 3: group_tile(g, blocks, cols, x16, xs, m0, 3, out, ldy, accumulate, outputs); break;
    case 2: group_tile(g, blocks, cols, x16, xs, m0, 2, out, ldy, accumulate, outputs); break;
    default: group_tile(g, blocks, cols, x16, xs, m0, 1, out, ldy, accumulate, outputs); break;
    }
}

ACCM_AVX2 static int gemm_q8_0_avx2(const int8_t *w, const uint16_t *scales, size_t rows, size_t cols, const int8_t *xq,
                                    const float *xs, size_t count, float *y, size_t ldy, int accumulate) {
    if (count <= ACCM_BATCH_ROWS) {  // a batch's decode step: the repack costs more than it saves
        for (size_t m = 0; m < count; m++)
            accm_gemv_q8_0(w, scales, rows, cols, xq + m * cols, xs + m * (cols / ACCM_QUANT_BLOCK), y + m * ldy, accumulate);
        return 1;
    }
    size_t blocks = cols / ACCM_QUANT_BLOCK;
    Group g = { aligned_alloc(32, blocks * PAIRS * 32), aligned_alloc(32, blocks * GROUP * sizeof(float)) };
    int16_t *x16 = aligned_alloc(32, (count * cols * sizeof(int16_t) + 31) / 32 * 32);
    if (!g.pairs || !g.scales || !x16) {
        free(g.pairs); free(g.scales); free(x16);
        return 0;
    }
    for (size_t i = 0; i < count * cols; i += 16)  // cols is a whole number of blocks
        _mm256_store_si256((__m256i *)(x16 + i), _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(xq + i))));
    for (size_t r0 = 0; r0 < rows; r0 += GROUP) {
        size_t n = rows - r0 < GROUP ? rows - r0 : GROUP;
        repack(&g, w, scales, cols, r0, n);
        for (size_t m0 = 0; m0 < count; m0 += TILE_ROWS) {
            int rm = count - m0 < TILE_ROWS ? (int)(count - m0) : TILE_ROWS;
            any_group_tile(&g, blocks, cols, x16, xs, m0, rm, y + r0, ldy, accumulate, n);
        }
    }
    free(g.pairs); free(g.scales); free(x16);
    return 1;
}
#endif

void accm_gemm_q8_0(const int8_t *w, const uint16_t *scales, size_t rows, size_t cols,
                    const int8_t *xq, const float *xs, size_t count, float *y, size_t ldy, int accumulate) {
#if ACCM_X86
    int level = accm_kernels_simd_level();
    if (level >= ACCM_KERNELS_AVX512_VNNI && accm_gemm_q8_0_vnni(w, scales, rows, cols, xq, xs, count, y, ldy, accumulate)) return;
    if (level && gemm_q8_0_avx2(w, scales, rows, cols, xq, xs, count, y, ldy, accumulate)) return;
#endif
    accm_gemm_q8_0_portable(w, scales, rows, cols, xq, xs, count, y, ldy, accumulate);
}
