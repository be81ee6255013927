// Prefill over int8/int4 weights on AVX-512 VNNI (ACCM_KERNELS_AVX512_VNNI). vpdpbusd multiplies 4 unsigned
// bytes with 4 signed bytes and adds the 4 products to an int32 lane in one instruction, where AVX2 needs
// vpmaddubsw (int16 sums), vpmaddwd and an add (internal.h: accm_u8x8_block_dots_vnni). Every product here is
// one unsigned weight byte times one signed activation byte (q8_0 activations, -127...127):
//
// - int4: the nibbles q (0...15), Σ (q − 8)·x = Σ q·x − 8·Σ x, through gemm_q4_0.c's unpacking driver;
// - int8: 8 weight rows repacked into the same layout as w + 128 (the sign bit flipped), Σ w·x = Σ (w + 128)·x −
//   128·Σ x, so both formats share one tile.
//
// The tile is the AVX2 one's body (ACCM_UNSIGNED_GROUP_TILE) with 8 activation rows (the 256-bit EVEX forms have
// 32 vector registers; AVX2's tile holds 4): every block's sum is an exact integer and the fp32 work runs in the
// same order, so int4 gives bit for bit the AVX2 result, and int8 too (its AVX2 path sums pairs as int16 but the
// same integers). The decode kernels of this level are in gemv_quantized.c. 512-bit forms are not tried.

#include "accm_kernels.h"
#include "internal.h"

#if ACCM_X86

enum { GROUP = 8, TILE_ROWS = 8 };

ACCM_UNSIGNED_GROUP_TILE(group_tile, ACCM_AVX512_VNNI, accm_u8x8_block_dots_vnni, TILE_ROWS)

/// One tile of `rm` (1...8) activation rows.
ACCM_AVX512_VNNI static void any_group_tile(const accm_unsigned_group *g, size_t blocks, size_t cols, const int8_t *xq,
                                            const float *xs, const int32_t *offsets, size_t m0, int rm, float *out,
                                            size_t ldy, int accumulate, size_t lower, size_t upper) {
#define TILE(n) case n: group_tile(g, blocks, cols, xq, xs, offsets, m0, n, out, ldy, accumulate, lower, upper); break
    switch (rm) {
    TILE(8); TILE(7); TILE(6); TILE(5); TILE(4); TILE(3); TILE(2);
    default: group_tile(g, blocks, cols, xq, xs, offsets, m0, 1, out, ldy, accumulate, lower, upper); break;
    }
#undef TILE
}

/// Every activation row against one unpacked group, whose outputs lower ..< upper go to `out`.
ACCM_AVX512_VNNI static void group_rows(const accm_unsigned_group *g, size_t blocks, size_t cols, const int8_t *xq,
                                        const float *xs, const int32_t *offsets, size_t rows, float *out, size_t ldy,
                                        int accumulate, size_t lower, size_t upper) {
    for (size_t m0 = 0; m0 < rows; m0 += TILE_ROWS) {
        int rm = rows - m0 < TILE_ROWS ? (int)(rows - m0) : TILE_ROWS;
        any_group_tile(g, blocks, cols, xq, xs, offsets, m0, rm, out, ldy, accumulate, lower, upper);
    }
}

ACCM_Q4X8_UNPACKED_GEMM(gemm_unpacked, ACCM_AVX512_VNNI, group_rows)

ACCM_AVX512_VNNI int accm_gemm_q4_0x8_vnni(const uint8_t *w, const uint16_t *ws, size_t cols, size_t first_row,
                                          size_t count, const int8_t *xq, const float *xs, size_t rows, float *y,
                                          size_t ldy, int accumulate) {
    if (rows <= ACCM_BATCH_ROWS) {  // few rows: unpacking into scratch costs more than it saves
        accm_gemv_q4_0x8_rows_vnni(w, ws, cols, first_row, count, xq, xs, rows, y, ldy, accumulate);
        return 1;
    }
    return gemm_unpacked(w, ws, cols, first_row, count, xq, xs, rows, y, ldy, accumulate);
}

/// int8 weight rows r0 ..< r0 + count (count ≤ 8; missing rows are 0) as w + 128: each row's block is 8 words
/// of 4 weights, transposed so that vector k holds word k of every row, its sign bits flipped.
ACCM_AVX512_VNNI static void repack_q8_group(accm_unsigned_group *out, const int8_t *w, const uint16_t *scales,
                                             size_t cols, size_t r0, size_t count) {
    size_t blocks = cols / ACCM_QUANT_BLOCK;
    const __m256i sign_bits = _mm256_set1_epi8((char)0x80);
    for (size_t b = 0; b < blocks; b++) {
        __m256i v[GROUP];
        for (size_t r = 0; r < GROUP; r++) {
            v[r] = r < count ? _mm256_loadu_si256((const __m256i *)(w + (r0 + r) * cols + b * ACCM_QUANT_BLOCK))
                             : _mm256_setzero_si256();
            out->scales[b * GROUP + r] = r < count ? _cvtsh_ss(accm_load_u16(scales + (r0 + r) * blocks + b)) : 0;
        }
        accm_transpose_8x8_epi32(v);
        __m256i *target = (__m256i *)(out->bytes + b * 256);
        for (int k = 0; k < 8; k++) _mm256_store_si256(target + k, _mm256_xor_si256(v[k], sign_bits));
    }
}

ACCM_AVX512_VNNI int accm_gemm_q8_0_vnni(const int8_t *w, const uint16_t *scales, size_t rows, size_t cols,
                                        const int8_t *xq, const float *xs, size_t count, float *y, size_t ldy,
                                        int accumulate) {
    size_t blocks = cols / ACCM_QUANT_BLOCK;
    // One or two rows (decode): a product a row. From 3, repacking is cheaper than reading the weights again per
    // row: one thread over 16384×4096 (two runs), 2 rows 5.1 / 5.1 ms against 6.0 / 5.2 a row at a time, 3 rows
    // 5.5 / 5.4 against 7.8 / 7.5, 4 rows 5.8 / 5.7 against 10.7 / 9.5 (AVX2's repack pays off only from 5).
    if (count <= 2) {
        for (size_t m = 0; m < count; m++)
            accm_gemv_q8_0_vnni(w, scales, rows, cols, xq + m * cols, xs + m * blocks, y + m * ldy, accumulate);
        return 1;
    }
    accm_unsigned_group g;
    int32_t *offsets;
    if (!accm_unsigned_group_allocate(&g, &offsets, blocks, count)) return 0;
    accm_q4_block_offsets(xq, count * blocks, offsets);            // 8 · Σ x
    for (size_t i = 0; i < count * blocks; i++) offsets[i] *= 16;  // 128 · Σ x
    for (size_t r0 = 0; r0 < rows; r0 += GROUP) {
        size_t n = rows - r0 < GROUP ? rows - r0 : GROUP;
        repack_q8_group(&g, w, scales, cols, r0, n);
        group_rows(&g, blocks, cols, xq, xs, offsets, count, y + r0, ldy, accumulate, 0, n);
    }
    accm_unsigned_group_free(&g, offsets);
    return 1;
}

#endif
