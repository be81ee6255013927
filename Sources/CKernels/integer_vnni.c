// The integer products of int8/int4 weights on AVX-512 VNNI (ACCM_KERNELS_AVX512_VNNI): vpdpbusd multiplies 4
// unsigned bytes with 4 signed bytes and adds the 4 products to an int32 lane in one instruction, where AVX2
// needs vpmaddubsw (int16 sums), vpmaddwd and an add. Every product here is one unsigned weight byte times one
// signed activation byte (q8_0 activations, -127...127):
//
// - int4: the nibbles q (0...15), Σ (q − 8)·x = Σ q·x − 8·Σ x (as the AVX2 kernels);
// - int8 prefill: a weight w (-127...127) repacked as w + 128 (its sign bit flipped), Σ w·x = Σ (w + 128)·x −
//   128·Σ x;
// - int8 decode: |w| · sign(x, w), the products of the AVX2 kernel, summed by vpdpbusd.
//
// Each block's sums are exact integers and the fp32 work around them is done in the AVX2 kernels' order, so
// the int4 products and int8 decode give bit for bit what the AVX2 path gives. The instructions are the 256-bit
// EVEX forms (AVX-512 VL): 32 vector registers, so prefill's tile holds 8 activation rows where AVX2's holds 4.
// On a CPU with AVX-512 VNNI only through 256-bit units (AMD Zen 4), 512-bit forms would do the same work in
// as many cycles.

#include "accm_kernels.h"
#include "internal.h"

#include <stdlib.h>

#if ACCM_X86

/// How far ahead of its reads the decode kernels ask for weight bytes (as gemv_quantized.c).
#define PREFETCH_BYTES 2048

enum { GROUP = 8, TILE_ROWS = 8 };

/// One group of 8 weight rows as unsigned bytes: per block, 8 vectors of 32 bytes (vector k: the 4 weights of
/// each row that multiply activation bytes 4k ..< 4k + 4), then the 8 rows' scales as fp32.
typedef struct {
    uint8_t *bytes;   // blocks × 256
    float *scales;    // blocks × 8
} UnsignedGroup;

/// Σ over a block of (the 8 weight vectors `w`) · (the block's 32 activation bytes `x`, 4 broadcast to each
/// lane), minus `offset`: one exact int32 dot product per row of the group.
ACCM_AVX512_VNNI static inline __m256i block_dots(const __m256i w[8], const int8_t *x, int32_t offset) {
    int32_t words[8];
    memcpy(words, x, sizeof words);
    __m256i even = _mm256_set1_epi32(-offset), odd = _mm256_setzero_si256();  // two chains: half the latency
    for (int k = 0; k < 8; k += 2) {
        even = _mm256_dpbusd_epi32(even, w[k], _mm256_set1_epi32(words[k]));
        odd = _mm256_dpbusd_epi32(odd, w[k + 1], _mm256_set1_epi32(words[k + 1]));
    }
    return _mm256_add_epi32(even, odd);
}

// MARK: int4 decode: blocks unpacked in registers, shared by up to ACCM_BATCH_ROWS activation rows

ACCM_AVX512_VNNI static inline __attribute__((always_inline)) void
q4x8_group_sums(const uint8_t *w, const uint16_t *ws, size_t blocks, size_t g, const int8_t *xq, const float *xs,
                const int32_t *offsets, int RM, __m256 out[ACCM_BATCH_ROWS]) {
    const __m256i low_nibbles = _mm256_set1_epi8(0x0F);
    const uint8_t *group = w + g * blocks * 128;
    const uint16_t *group_scales = ws + g * blocks * 8;
    __m256 acc[ACCM_BATCH_ROWS];
    for (int m = 0; m < RM; m++) acc[m] = _mm256_setzero_ps();
    for (size_t b = 0; b < blocks; b++) {
        const __m256i *chunk = (const __m256i *)(group + b * 128);
        _mm_prefetch((const char *)chunk + PREFETCH_BYTES, _MM_HINT_T0);
        _mm_prefetch((const char *)chunk + PREFETCH_BYTES + 64, _MM_HINT_T0);
        __m256i p0 = _mm256_loadu_si256(chunk), p1 = _mm256_loadu_si256(chunk + 1),
                p2 = _mm256_loadu_si256(chunk + 2), p3 = _mm256_loadu_si256(chunk + 3);
        const __m256i unpacked[8] = {
            _mm256_and_si256(p0, low_nibbles), _mm256_and_si256(p1, low_nibbles),
            _mm256_and_si256(p2, low_nibbles), _mm256_and_si256(p3, low_nibbles),
            _mm256_and_si256(_mm256_srli_epi16(p0, 4), low_nibbles), _mm256_and_si256(_mm256_srli_epi16(p1, 4), low_nibbles),
            _mm256_and_si256(_mm256_srli_epi16(p2, 4), low_nibbles), _mm256_and_si256(_mm256_srli_epi16(p3, 4), low_nibbles),
        };
        __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(group_scales + b * 8)));
        for (int m = 0; m < RM; m++) {
            __m256i dots = block_dots(unpacked, xq + m * blocks * ACCM_QUANT_BLOCK + b * ACCM_QUANT_BLOCK,
                                      offsets[m * blocks + b]);
            acc[m] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dots), _mm256_mul_ps(dw, _mm256_set1_ps(xs[m * blocks + b])), acc[m]);
        }
    }
    for (int m = 0; m < RM; m++) out[m] = acc[m];
}

/// Writes lanes of `sums` to the rows of first_row ..< first_row + count that group `g` holds.
ACCM_AVX512_VNNI static inline void store_group(__m256 sums, size_t g, size_t first_row, size_t count, float *y,
                                                int accumulate) {
    if (g * 8 >= first_row && g * 8 + 8 <= first_row + count) {
        float *out = y + (g * 8 - first_row);
        _mm256_storeu_ps(out, accumulate ? _mm256_add_ps(_mm256_loadu_ps(out), sums) : sums);
        return;
    }
    float lanes[8];
    _mm256_storeu_ps(lanes, sums);
    size_t lower = g * 8 > first_row ? g * 8 : first_row;
    size_t upper = g * 8 + 8 < first_row + count ? g * 8 + 8 : first_row + count;
    for (size_t row = lower; row < upper; row++) {
        float v = lanes[row - g * 8];
        y[row - first_row] = accumulate ? y[row - first_row] + v : v;
    }
}

ACCM_AVX512_VNNI static void q4x8_rows(const uint8_t *w, const uint16_t *ws, size_t cols, size_t first_row, size_t count,
                                       const int8_t *xq, const float *xs, int RM, float *y, size_t ldy, int accumulate) {
    size_t blocks = cols / ACCM_QUANT_BLOCK;
    int32_t offsets[RM * blocks];  // 8 · Σ x per block and row
    accm_q4_block_offsets(xq, RM * blocks, offsets);
    for (size_t g = first_row / 8; g * 8 < first_row + count; g++) {
        __m256 sums[ACCM_BATCH_ROWS];
        switch (RM) {
        case 4: q4x8_group_sums(w, ws, blocks, g, xq, xs, offsets, 4, sums); break;
        case 3: q4x8_group_sums(w, ws, blocks, g, xq, xs, offsets, 3, sums); break;
        case 2: q4x8_group_sums(w, ws, blocks, g, xq, xs, offsets, 2, sums); break;
        default: q4x8_group_sums(w, ws, blocks, g, xq, xs, offsets, 1, sums); break;
        }
        for (int m = 0; m < RM; m++) store_group(sums[m], g, first_row, count, y + m * ldy, accumulate);
    }
}

ACCM_AVX512_VNNI void accm_gemv_q4_0x8_rows_vnni(const uint8_t *w, const uint16_t *ws, size_t cols, size_t first_row,
                                                 size_t count, const int8_t *xq, const float *xs, size_t rows, float *y,
                                                 size_t ldy, int accumulate) {
    if (count == 0) return;
    for (size_t m0 = 0; m0 < rows; m0 += ACCM_BATCH_ROWS) {
        int rm = rows - m0 < ACCM_BATCH_ROWS ? (int)(rows - m0) : ACCM_BATCH_ROWS;
        q4x8_rows(w, ws, cols, first_row, count, xq + m0 * cols, xs + m0 * (cols / ACCM_QUANT_BLOCK), rm,
                  y + m0 * ldy, ldy, accumulate);
    }
}

// MARK: int8 decode

ACCM_AVX512_VNNI static inline __m256 q8_block_dot(__m256i w, __m256i x) {
    return _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_abs_epi8(w), _mm256_sign_epi8(x, w)));
}

ACCM_AVX512_VNNI void accm_gemv_q8_0_vnni(const int8_t *w, const uint16_t *scales, size_t rows, size_t cols,
                                          const int8_t *xq, const float *xs, float *y, int accumulate) {
    size_t blocks = cols / ACCM_QUANT_BLOCK;
    float d[8] __attribute__((aligned(32)));
    for (size_t r = 0; r < rows; r++) {
        const int8_t *row = w + r * cols;
        const uint16_t *rs = scales + r * blocks;
        __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
        size_t b = 0;
        for (; b + 8 <= blocks; b += 8) {
            _mm256_store_ps(d, _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(rs + b))),
                                             _mm256_loadu_ps(xs + b)));
            for (int line = 0; line < 4; line++)
                _mm_prefetch((const char *)(row + b * 32 + PREFETCH_BYTES + 64 * line), _MM_HINT_T0);
            for (int k = 0; k < 8; k += 2) {
                const int8_t *p = row + (b + k) * 32, *q = xq + (b + k) * 32;
                __m256 p0 = q8_block_dot(_mm256_loadu_si256((const __m256i *)p), _mm256_loadu_si256((const __m256i *)q));
                __m256 p1 = q8_block_dot(_mm256_loadu_si256((const __m256i *)(p + 32)), _mm256_loadu_si256((const __m256i *)(q + 32)));
                acc0 = _mm256_fmadd_ps(_mm256_broadcast_ss(d + k), p0, acc0);
                acc1 = _mm256_fmadd_ps(_mm256_broadcast_ss(d + k + 1), p1, acc1);
            }
        }
        for (; b < blocks; b++) {
            __m256 d0 = _mm256_set1_ps(_cvtsh_ss(accm_load_u16(rs + b)) * xs[b]);
            __m256i w0 = _mm256_loadu_si256((const __m256i *)(row + b * 32));
            __m256i x0 = _mm256_loadu_si256((const __m256i *)(xq + b * 32));
            acc0 = _mm256_fmadd_ps(d0, q8_block_dot(w0, x0), acc0);
        }
        float sum = accm_horizontal_sum(_mm256_add_ps(acc0, acc1));
        y[r] = accumulate ? y[r] + sum : sum;
    }
}

// MARK: Prefill: groups of 8 weight rows unpacked to unsigned bytes, tiles of up to 8 activation rows

/// Activation rows m0 ..< m0 + RM against one unpacked group: lanes `lower ..< upper` of the 8 outputs per row,
/// written from `out[0]` of each output row.
ACCM_AVX512_VNNI static inline __attribute__((always_inline)) void
group_tile(const UnsignedGroup *g, size_t blocks, size_t cols, const int8_t *xq, const float *xs,
           const int32_t *offsets, size_t m0, int RM, float *out, size_t ldy, int accumulate, size_t lower, size_t upper) {
    __m256 acc[TILE_ROWS];
    ACCM_UNROLL
    for (int m = 0; m < RM; m++) acc[m] = _mm256_setzero_ps();
    for (size_t b = 0; b < blocks; b++) {
        const __m256i *wv = (const __m256i *)(g->bytes + b * 256);
        const __m256i unpacked[8] = {
            _mm256_load_si256(wv), _mm256_load_si256(wv + 1), _mm256_load_si256(wv + 2), _mm256_load_si256(wv + 3),
            _mm256_load_si256(wv + 4), _mm256_load_si256(wv + 5), _mm256_load_si256(wv + 6), _mm256_load_si256(wv + 7),
        };
        __m256 dw = _mm256_load_ps(g->scales + b * GROUP);
        ACCM_UNROLL
        for (int m = 0; m < RM; m++) {
            __m256i dot = block_dots(unpacked, xq + (m0 + m) * cols + b * 32, offsets[(m0 + m) * blocks + b]);
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

ACCM_AVX512_VNNI static void any_group_tile(const UnsignedGroup *g, size_t blocks, size_t cols, const int8_t *xq,
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
ACCM_AVX512_VNNI static void group_rows(const UnsignedGroup *g, size_t blocks, size_t cols, const int8_t *xq,
                                        const float *xs, const int32_t *offsets, size_t rows, float *out, size_t ldy,
                                        int accumulate, size_t lower, size_t upper) {
    for (size_t m0 = 0; m0 < rows; m0 += TILE_ROWS) {
        int rm = rows - m0 < TILE_ROWS ? (int)(rows - m0) : TILE_ROWS;
        any_group_tile(g, blocks, cols, xq, xs, offsets, m0, rm, out, ldy, accumulate, lower, upper);
    }
}

/// Scratch for one group and each activation block's offset; 0 when an allocation failed (nothing is held).
ACCM_AVX512_VNNI static int allocate(UnsignedGroup *g, int32_t **offsets, size_t blocks, size_t rows) {
    g->bytes = aligned_alloc(32, blocks * 256);
    g->scales = aligned_alloc(32, blocks * GROUP * sizeof(float));
    *offsets = malloc(rows * blocks * sizeof(int32_t));
    if (g->bytes && g->scales && *offsets) return 1;
    free(g->bytes); free(g->scales); free(*offsets);
    return 0;
}

ACCM_AVX512_VNNI int accm_gemm_q4_0x8_vnni(const uint8_t *w, const uint16_t *ws, size_t cols, size_t first_row,
                                          size_t count, const int8_t *xq, const float *xs, size_t rows, float *y,
                                          size_t ldy, int accumulate) {
    if (rows <= ACCM_BATCH_ROWS) {  // few rows: unpacking into scratch costs more than it saves
        accm_gemv_q4_0x8_rows_vnni(w, ws, cols, first_row, count, xq, xs, rows, y, ldy, accumulate);
        return 1;
    }
    size_t blocks = cols / ACCM_QUANT_BLOCK;
    UnsignedGroup g;
    int32_t *offsets;
    if (!allocate(&g, &offsets, blocks, rows)) return 0;
    accm_q4_block_offsets(xq, rows * blocks, offsets);
    size_t end = first_row + count;
    for (size_t group = first_row / GROUP; group * GROUP < end; group++) {
        size_t lower = group * GROUP > first_row ? 0 : first_row - group * GROUP;
        size_t upper = group * GROUP + GROUP <= end ? GROUP : end - group * GROUP;
        accm_q4x8_unpack_group(g.bytes, g.scales, w, ws, blocks, group);
        group_rows(&g, blocks, cols, xq, xs, offsets, rows, y + (group * GROUP + lower - first_row), ldy, accumulate,
                   lower, upper);
    }
    free(g.bytes); free(g.scales); free(offsets);
    return 1;
}

/// int8 weight rows r0 ..< r0 + count (count ≤ 8; missing rows are 0) as w + 128: each row's block is 8 words
/// of 4 weights, transposed so that vector k holds word k of every row, its sign bits flipped.
ACCM_AVX512_VNNI static void repack_q8_group(UnsignedGroup *out, const int8_t *w, const uint16_t *scales, size_t cols,
                                             size_t r0, size_t count) {
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
    UnsignedGroup g;
    int32_t *offsets;
    if (!allocate(&g, &offsets, blocks, count)) return 0;
    accm_q4_block_offsets(xq, count * blocks, offsets);  // 8 · Σ x
    for (size_t i = 0; i < count * blocks; i++) offsets[i] *= 16;  // 128 · Σ x
    for (size_t r0 = 0; r0 < rows; r0 += GROUP) {
        size_t n = rows - r0 < GROUP ? rows - r0 : GROUP;
        repack_q8_group(&g, w, scales, cols, r0, n);
        group_rows(&g, blocks, cols, xq, xs, offsets, count, y + r0, ldy, accumulate, 0, n);
    }
    free(g.bytes); free(g.scales); free(offsets);
    return 1;
}

#endif
