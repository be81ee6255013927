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

ACCM_UNSIGNED_GROUP_TILE(group_tile, ACCM_AVX2, accm_q4x8_block_dots, TILE_ROWS)

/// One tile of `rm` (1...4) activation rows.
ACCM_AVX2 static void any_group_tile(const accm_unsigned_group *g, size_t blocks, size_t cols, const int8_t *xq,
                                     const float *xs, const int32_t *offsets, size_t m0, int rm, float *out, size_t ldy,
                                     int accumulate, size_t lower, size_t upper) {
    switch (rm) {
    case 4: group_tile(g, blocks, cols, xq, xs, offsets, m0, 4, out, ldy, accumulate, lower, upper); break;
    case 3: group_tile(g, blocks, cols, xq, xs, offsets, m0, 3, out, ldy, accumulate, lower, upper); break;
    case 2: group_tile(g, blocks, cols, xq, xs, offsets, m0, 2, out, ldy, accumulate, lower, upper); break;
    default: group_tile(g, blocks, cols, xq, xs, offsets, m0, 1, out, ldy, accumulate, lower, upper); break;
    }
}

/// Every activation row against one unpacked group, whose outputs lower ..< upper go to `out`.
ACCM_AVX2 static void group_rows(const accm_unsigned_group *g, size_t blocks, size_t cols, const int8_t *xq,
                                 const float *xs, const int32_t *offsets, size_t rows, float *out, size_t ldy,
                                 int accumulate, size_t lower, size_t upper) {
    for (size_t m0 = 0; m0 < rows; m0 += TILE_ROWS) {
        int rm = rows - m0 < TILE_ROWS ? (int)(rows - m0) : TILE_ROWS;
        any_group_tile(g, blocks, cols, xq, xs, offsets, m0, rm, out, ldy, accumulate, lower, upper);
    }
}

ACCM_Q4X8_UNPACKED_GEMM(gemm_unpacked, ACCM_AVX2, group_rows)

ACCM_AVX2 static int gemm_q4_0x8_avx2(const uint8_t *w, const uint16_t *ws, size_t cols, size_t first_row, size_t count,
                                      const int8_t *xq, const float *xs, size_t rows, float *y, size_t ldy, int accumulate) {
    if (rows <= ACCM_BATCH_ROWS) {  // few rows: unpacking into scratch costs more than it saves
        accm_gemv_q4_0x8_rows_avx2(w, ws, cols, first_row, count, xq, xs, rows, y, ldy, accumulate);
        return 1;
    }
    return gemm_unpacked(w, ws, cols, first_row, count, xq, xs, rows, y, ldy, accumulate);
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
