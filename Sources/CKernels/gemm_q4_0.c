// Prefill over Q4_0 weights with integer dot products: y[m, r] = Σ_b dw[r, b] · dx[m, b] · Σ_j (q[r, b, j] − 8) ·
// xq[m, b, j], for several activation rows at once (the quantized activation rows of a prompt).
//
// AVX2 path: weight rows are taken 8 at a time and repacked (once per call and group of 8, into L1-sized
// scratch) so that one 32-byte vector holds 4 consecutive nibbles of each of the 8 rows, as bytes. vpmaddubsw
// of such a vector with 4 activation bytes broadcast to every lane gives, in each lane, products of one weight
// row: the 8 vectors of a block summed in int16 (at most 8 · 2 · 15 · 127 = 30480) and one vpmaddwd give the
// block's 8 dot products, one per lane, so the per-block fp32 work (convert, scale, add) is shared by 8 outputs.
// That is 256 multiply-adds in about 20 vector instructions, where fp32 FMA needs 32.

#include "accm_kernels.h"
#include "internal.h"

#include <stdlib.h>

void accm_gemm_q4_0_portable(const uint8_t *w, const uint16_t *scales, size_t rows, size_t cols,
                             const int8_t *xq, const float *xs, size_t count, float *y, size_t ldy, int accumulate) {
    size_t blocks = cols / ACCM_QUANT_BLOCK;
    for (size_t m = 0; m < count; m++)
        accm_gemv_q4_0_portable(w, scales, rows, cols, xq + m * cols, xs + m * blocks, y + m * ldy, accumulate);
}

#if ACCM_X86

enum { GROUP = 8, TILE_ROWS = 4 };

/// 8 weight rows of every block, repacked: per block, 8 vectors of 32 bytes (4 nibbles of each row, as bytes
/// 0...15), then the 8 rows' scales as fp32.
typedef struct {
    uint8_t *bytes;   // blocks × 256
    float *scales;    // blocks × 8
} Group;

/// Repacks weight rows r0 ..< r0 + count (count ≤ 8; missing rows are zero) into `g`.
ACCM_AVX2 static void repack(Group *g, const uint8_t *w, const uint16_t *scales, size_t cols, size_t r0, size_t count) {
    size_t blocks = cols / ACCM_QUANT_BLOCK;
    if (count == GROUP) {
        // Each row's block as 32 bytes (16 low nibbles, then 16 high ones), i.e. 8 int32 lanes of 4 weights;
        // transposed, vector k holds lane k (weights 4k ..< 4k + 4) of every row.
        const __m128i low_nibbles = _mm_set1_epi8(0x0F);
        for (size_t b = 0; b < blocks; b++) {
            __m256i v[GROUP];
            for (size_t r = 0; r < GROUP; r++) {
                __m128i p = _mm_loadu_si128((const __m128i *)(w + (r0 + r) * cols / 2 + b * 16));
                v[r] = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(p, 4), low_nibbles), _mm_and_si128(p, low_nibbles));
                g->scales[b * GROUP + r] = _cvtsh_ss(accm_load_u16(scales + (r0 + r) * blocks + b));
            }
            accm_transpose_8x8_epi32(v);
            __m256i *out = (__m256i *)(g->bytes + b * 256);
            for (int k = 0; k < 8; k++) _mm256_store_si256(out + k, v[k]);
        }
        return;
    }
    for (size_t b = 0; b < blocks; b++) {
        uint8_t row_bytes[GROUP][32];
        for (size_t r = 0; r < GROUP; r++) {
            if (r < count) {
                const uint8_t *p = w + (r0 + r) * cols / 2 + b * 16;
                for (int j = 0; j < 16; j++) {
                    row_bytes[r][j] = p[j] & 0x0F;
                    row_bytes[r][j + 16] = p[j] >> 4;
                }
                g->scales[b * GROUP + r] = _cvtsh_ss(accm_load_u16(scales + (r0 + r) * blocks + b));
            } else {
                memset(row_bytes[r], 8, 32);  // q = 8 is weight 0
                g->scales[b * GROUP + r] = 0;
            }
        }
        uint8_t *out = g->bytes + b * 256;
        for (int k = 0; k < 8; k++)          // 4 consecutive weights k*4 ..< k*4 + 4
            for (size_t r = 0; r < GROUP; r++)
                memcpy(out + k * 32 + r * 4, row_bytes[r] + k * 4, 4);
    }
}

/// Activation rows m0 ..< m0 + RM against one repacked group: 8 outputs per row.
ACCM_AVX2 static inline __attribute__((always_inline)) void
group_tile(const Group *g, size_t blocks, size_t cols, const int8_t *xq, const float *xs, const int32_t *offsets,
           size_t m0, int RM, float *out, size_t ldy, int accumulate, size_t outputs) {
    __m256 acc[TILE_ROWS];
    for (int m = 0; m < RM; m++) acc[m] = _mm256_setzero_ps();
    const __m256i ones = _mm256_set1_epi16(1);
    for (size_t b = 0; b < blocks; b++) {
        const __m256i *wv = (const __m256i *)(g->bytes + b * 256);
        __m256i w0 = _mm256_load_si256(wv), w1 = _mm256_load_si256(wv + 1), w2 = _mm256_load_si256(wv + 2),
                w3 = _mm256_load_si256(wv + 3), w4 = _mm256_load_si256(wv + 4), w5 = _mm256_load_si256(wv + 5),
                w6 = _mm256_load_si256(wv + 6), w7 = _mm256_load_si256(wv + 7);
        __m256 dw = _mm256_load_ps(g->scales + b * GROUP);
        for (int m = 0; m < RM; m++) {
            const int32_t *x = (const int32_t *)(xq + (m0 + m) * cols + b * 32);
            __m256i s = _mm256_maddubs_epi16(w0, _mm256_set1_epi32(x[0]));
            s = _mm256_add_epi16(s, _mm256_maddubs_epi16(w1, _mm256_set1_epi32(x[1])));
            s = _mm256_add_epi16(s, _mm256_maddubs_epi16(w2, _mm256_set1_epi32(x[2])));
            s = _mm256_add_epi16(s, _mm256_maddubs_epi16(w3, _mm256_set1_epi32(x[3])));
            s = _mm256_add_epi16(s, _mm256_maddubs_epi16(w4, _mm256_set1_epi32(x[4])));
            s = _mm256_add_epi16(s, _mm256_maddubs_epi16(w5, _mm256_set1_epi32(x[5])));
            s = _mm256_add_epi16(s, _mm256_maddubs_epi16(w6, _mm256_set1_epi32(x[6])));
            s = _mm256_add_epi16(s, _mm256_maddubs_epi16(w7, _mm256_set1_epi32(x[7])));
            __m256i dot = _mm256_sub_epi32(_mm256_madd_epi16(s, ones), _mm256_set1_epi32(offsets[(m0 + m) * blocks + b]));
            __m256 scale = _mm256_mul_ps(dw, _mm256_set1_ps(xs[(m0 + m) * blocks + b]));
            acc[m] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), scale, acc[m]);
        }
    }
    for (int m = 0; m < RM; m++) {
        float *o = out + (m0 + m) * ldy;
        float lanes[GROUP];
        _mm256_storeu_ps(lanes, acc[m]);
        for (size_t r = 0; r < outputs; r++) o[r] = accumulate ? o[r] + lanes[r] : lanes[r];
    }
}

ACCM_AVX2 static void any_group_tile(const Group *g, size_t blocks, size_t cols, const int8_t *xq, const float *xs,
                                     const int32_t *offsets, size_t m0, int rm, float *out, size_t ldy, int accumulate,
                                     size_t outputs) {
    switch (rm) {
    case 4: group_tile(g, blocks, cols, xq, xs, offsets, m0, 4, out, ldy, accumulate, outputs); break;
    case 3: group_tile(g, blocks, cols, xq, xs, offsets, m0, 3, out, ldy, accumulate, outputs); break;
    case 2: group_tile(g, blocks, cols, xq, xs, offsets, m0, 2, out, ldy, accumulate, outputs); break;
    default: group_tile(g, blocks, cols, xq, xs, offsets, m0, 1, out, ldy, accumulate, outputs); break;
    }
}

ACCM_AVX2 static int gemm_q4_0_avx2(const uint8_t *w, const uint16_t *scales, size_t rows, size_t cols, const int8_t *xq,
                          const float *xs, size_t count, float *y, size_t ldy, int accumulate) {
    size_t blocks = cols / ACCM_QUANT_BLOCK;
    Group g = { aligned_alloc(32, blocks * 256), aligned_alloc(32, blocks * GROUP * sizeof(float)) };
    int32_t *offsets = malloc(count * blocks * sizeof(int32_t));
    if (!g.bytes || !g.scales || !offsets) {
        free(g.bytes); free(g.scales); free(offsets);
        return 0;
    }
    for (size_t i = 0; i < count * blocks; i++) {
        int32_t total = 0;
        for (int j = 0; j < ACCM_QUANT_BLOCK; j++) total += xq[i * 32 + j];
        offsets[i] = 8 * total;
    }
    for (size_t r0 = 0; r0 < rows; r0 += GROUP) {
        size_t n = rows - r0 < GROUP ? rows - r0 : GROUP;
        repack(&g, w, scales, cols, r0, n);
        for (size_t m0 = 0; m0 < count; m0 += TILE_ROWS) {
            int rm = count - m0 < TILE_ROWS ? (int)(count - m0) : TILE_ROWS;
            any_group_tile(&g, blocks, cols, xq, xs, offsets, m0, rm, y + r0, ldy, accumulate, n);
        }
    }
    free(g.bytes); free(g.scales); free(offsets);
    return 1;
}
#endif

void accm_gemm_q4_0(const uint8_t *w, const uint16_t *scales, size_t rows, size_t cols,
                    const int8_t *xq, const float *xs, size_t count, float *y, size_t ldy, int accumulate) {
#if ACCM_X86
    if (accm_kernels_simd_level() && gemm_q4_0_avx2(w, scales, rows, cols, xq, xs, count, y, ldy, accumulate)) return;
#endif
    accm_gemm_q4_0_portable(w, scales, rows, cols, xq, xs, count, y, ldy, accumulate);
}
