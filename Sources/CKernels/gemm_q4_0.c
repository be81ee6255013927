// Prefill over Q4_0 weights with integer dot products: y[m, r] = Σ_b dw[r, b] · dx[m, b] · Σ_j (q[r, b, j] − 8) ·
// xq[m, b, j], for several activation rows at once (the quantized activation rows of a prompt).
//
// The weights are held interleaved 8 rows at a time (accm_q4_0x8): one 32-byte vector holds 4 consecutive
// weights of each of the 8 rows. AVX2 path: each group of 8 rows is unpacked once per call into L1-sized
// scratch (nibbles to bytes 0...15: one AND, or a shift and an AND, per vector; scales to fp32). vpmaddubsw of
// such a vector with 4 activation bytes broadcast to every lane gives, in each lane, products of one weight
// row: the 8 vectors of a block summed in int16 (at most 8 · 2 · 15 · 127 = 30480) and one vpmaddwd give the
// block's 8 dot products, one per lane, so the per-block fp32 work (convert, scale, add) is shared by 8 outputs.
// That is 256 multiply-adds in about 20 vector instructions, where fp32 FMA needs 32. Up to 4 activation rows
// skip the scratch: accm_gemv_q4_0x8_rows_avx2 keeps each block unpacked in registers for all of them.

#include "accm_kernels.h"
#include "internal.h"

#include <stdlib.h>

void accm_gemm_q4_0x8_portable(const uint8_t *w, const uint16_t *ws, size_t cols, size_t first_row, size_t count,
                               const int8_t *xq, const float *xs, size_t rows, float *y, size_t ldy, int accumulate) {
    size_t blocks = cols / ACCM_QUANT_BLOCK;
    for (size_t m = 0; m < rows; m++)
        accm_gemv_q4_0x8_portable(w, ws, cols, first_row, count, xq + m * cols, xs + m * blocks, y + m * ldy, accumulate);
}

#if ACCM_X86

enum { GROUP = 8, TILE_ROWS = 4 };

/// One group of 8 weight rows, unpacked: per block, 8 vectors of 32 bytes (vector k: weights 4k ..< 4k + 4 of
/// every row, as bytes 0...15), then the 8 rows' scales as fp32.
typedef struct {
    uint8_t *bytes;   // blocks × 256
    float *scales;    // blocks × 8
} Group;

/// Activation rows m0 ..< m0 + RM against one unpacked group: lanes `lower ..< upper` of the 8 outputs per row,
/// written from `out[0]` of each output row.
ACCM_AVX2 static inline __attribute__((always_inline)) void
group_tile(const Group *g, size_t blocks, size_t cols, const int8_t *xq, const float *xs, const int32_t *offsets,
           size_t m0, int RM, float *out, size_t ldy, int accumulate, size_t lower, size_t upper) {
    __m256 acc[TILE_ROWS];
    for (int m = 0; m < RM; m++) acc[m] = _mm256_setzero_ps();
    for (size_t b = 0; b < blocks; b++) {
        const __m256i *wv = (const __m256i *)(g->bytes + b * 256);
        const __m256i unpacked[8] = {
            _mm256_load_si256(wv), _mm256_load_si256(wv + 1), _mm256_load_si256(wv + 2), _mm256_load_si256(wv + 3),
            _mm256_load_si256(wv + 4), _mm256_load_si256(wv + 5), _mm256_load_si256(wv + 6), _mm256_load_si256(wv + 7),
        };
        __m256 dw = _mm256_load_ps(g->scales + b * GROUP);
        for (int m = 0; m < RM; m++) {
            __m256i sums = accm_q4x8_block_sums(unpacked, xq + (m0 + m) * cols + b * 32);
            __m256i dot = _mm256_sub_epi32(sums, _mm256_set1_epi32(offsets[(m0 + m) * blocks + b]));
            __m256 scale = _mm256_mul_ps(dw, _mm256_set1_ps(xs[(m0 + m) * blocks + b]));
            acc[m] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), scale, acc[m]);
        }
    }
    for (int m = 0; m < RM; m++) {
        float *o = out + (m0 + m) * ldy;
        float lanes[GROUP];
        _mm256_storeu_ps(lanes, acc[m]);
        for (size_t r = lower; r < upper; r++) o[r - lower] = accumulate ? o[r - lower] + lanes[r] : lanes[r];
    }
}

ACCM_AVX2 static void any_group_tile(const Group *g, size_t blocks, size_t cols, const int8_t *xq, const float *xs,
                                     const int32_t *offsets, size_t m0, int rm, float *out, size_t ldy, int accumulate,
                                     size_t lower, size_t upper) {
    switch (rm) {
    case 4: group_tile(g, blocks, cols, xq, xs, offsets, m0, 4, out, ldy, accumulate, lower, upper); break;
    case 3: group_tile(g, blocks, cols, xq, xs, offsets, m0, 3, out, ldy, accumulate, lower, upper); break;
    case 2: group_tile(g, blocks, cols, xq, xs, offsets, m0, 2, out, ldy, accumulate, lower, upper); break;
    default: group_tile(g, blocks, cols, xq, xs, offsets, m0, 1, out, ldy, accumulate, lower, upper); break;
    }
}

ACCM_AVX2 static int gemm_q4_0x8_avx2(const uint8_t *w, const uint16_t *ws, size_t cols, size_t first_row, size_t count,
                                      const int8_t *xq, const float *xs, size_t rows, float *y, size_t ldy, int accumulate) {
    if (rows <= ACCM_BATCH_ROWS) {  // few rows: unpacking into scratch costs more than it saves
        accm_gemv_q4_0x8_rows_avx2(w, ws, cols, first_row, count, xq, xs, rows, y, ldy, accumulate);
        return 1;
    }
    size_t blocks = cols / ACCM_QUANT_BLOCK;
    Group g = { aligned_alloc(32, blocks * 256), aligned_alloc(32, blocks * GROUP * sizeof(float)) };
    int32_t *offsets = malloc(rows * blocks * sizeof(int32_t));
    if (!g.bytes || !g.scales || !offsets) {
        free(g.bytes); free(g.scales); free(offsets);
        return 0;
    }
    accm_q4_block_offsets(xq, rows * blocks, offsets);
    size_t end = first_row + count;
    for (size_t group = first_row / GROUP; group * GROUP < end; group++) {
        size_t lower = group * GROUP > first_row ? 0 : first_row - group * GROUP;
        size_t upper = group * GROUP + GROUP <= end ? GROUP : end - group * GROUP;
        accm_q4x8_unpack_group(g.bytes, g.scales, w, ws, blocks, group);
        float *out = y + (group * GROUP + lower - first_row);
        for (size_t m0 = 0; m0 < rows; m0 += TILE_ROWS) {
            int rm = rows - m0 < TILE_ROWS ? (int)(rows - m0) : TILE_ROWS;
            any_group_tile(&g, blocks, cols, xq, xs, offsets, m0, rm, out, ldy, accumulate, lower, upper);
        }
    }
    free(g.bytes); free(g.scales); free(offsets);
    return 1;
}
#endif

void accm_gemm_q4_0x8(const uint8_t *w, const uint16_t *ws, size_t cols, size_t first_row, size_t count,
                      const int8_t *xq, const float *xs, size_t rows, float *y, size_t ldy, int accumulate) {
#if ACCM_X86
    int level = accm_kernels_simd_level();
    if (level >= ACCM_KERNELS_AVX512_VNNI && accm_gemm_q4_0x8_vnni(w, ws, cols, first_row, count, xq, xs, rows, y, ldy, accumulate)) return;
    if (level && gemm_q4_0x8_avx2(w, ws, cols, first_row, count, xq, xs, rows, y, ldy, accumulate)) return;
#endif
    accm_gemm_q4_0x8_portable(w, ws, cols, first_row, count, xq, xs, rows, y, ldy, accumulate);
}
