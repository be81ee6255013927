// Helpers shared by the kernel files (not part of the module's interface).

#ifndef ACCM_KERNELS_INTERNAL_H
#define ACCM_KERNELS_INTERNAL_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/// Fully unrolls a loop of constant trip count, so that a tile's sums and pointers stay in registers (SwiftPM
/// builds C at -O2, where clang leaves such loops rolled).
#if defined(__clang__)
#define ACCM_UNROLL _Pragma("clang loop unroll(full)")
#else
#define ACCM_UNROLL
#endif

/// Inputs the few-row kernels (a batch's decode step) multiply per pass over the weights; more run in turns.
#define ACCM_BATCH_ROWS 4

#if defined(__x86_64__) || defined(__i386__)
#define ACCM_X86 1
#include <immintrin.h>
/// Compiles one function for AVX2 + FMA + F16C (called only after the run-time CPU check).
#define ACCM_AVX2 __attribute__((target("avx2,fma,f16c")))
/// Compiles one function for AVX-512 F/BW/VL + VNNI on top of AVX2 (called only at ACCM_KERNELS_AVX512_VNNI).
#define ACCM_AVX512_VNNI __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))

/// The sum of a vector's 8 lanes (the end of every matrix-vector kernel's row).
ACCM_AVX2 static inline float accm_horizontal_sum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/// Transposes 8 vectors of 8 int32 lanes in place: afterwards v[j] holds lane j of each former v[0...7], in order
/// (how the integer GEMMs gather 4 bytes of each of 8 weight rows into one vector).
ACCM_AVX2 static inline void accm_transpose_8x8_epi32(__m256i v[8]) {
    __m256i a[8], b[8];
    for (int i = 0; i < 8; i += 2) {               // pairs of rows: (r, r+1) interleaved by lane pairs
        a[i] = _mm256_unpacklo_epi32(v[i], v[i + 1]);
        a[i + 1] = _mm256_unpackhi_epi32(v[i], v[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {               // quads of rows, 64-bit lanes
        b[i] = _mm256_unpacklo_epi64(a[i], a[i + 2]);
        b[i + 1] = _mm256_unpackhi_epi64(a[i], a[i + 2]);
        b[i + 2] = _mm256_unpacklo_epi64(a[i + 1], a[i + 3]);
        b[i + 3] = _mm256_unpackhi_epi64(a[i + 1], a[i + 3]);
    }
    for (int i = 0; i < 4; i++) {                  // 128-bit halves: rows 0-3 with rows 4-7
        v[i] = _mm256_permute2x128_si256(b[i], b[i + 4], 0x20);
        v[i + 4] = _mm256_permute2x128_si256(b[i], b[i + 4], 0x31);
    }
}

/// The 8 rows' sums Σ q·x − offset over one block of a group of 8 weight rows unpacked to bytes (w[k]: the 4
/// weights of each row that multiply activation bytes 4k ..< 4k + 4; for int4, w[k] for k < 4 holds weights
/// 4k ..< 4k + 4 and w[4 + k] weights 16 + 4k ..< 20 + 4k) and the block's 32 activation bytes. AVX2, for int4's
/// bytes 0...15: vpmaddubsw against each activation word broadcast, the 8 products summed in int16 (at most
/// 8 · 2 · 15 · 127 = 30480), then one vpmaddwd into an int32 lane per row.
ACCM_AVX2 static inline __m256i accm_q4x8_block_dots(const __m256i w[8], const int8_t *x, int32_t offset) {
    int32_t words[8];
    memcpy(words, x, sizeof words);
    __m256i s = _mm256_maddubs_epi16(w[0], _mm256_set1_epi32(words[0]));
    for (int k = 1; k < 8; k++) s = _mm256_add_epi16(s, _mm256_maddubs_epi16(w[k], _mm256_set1_epi32(words[k])));
    return _mm256_sub_epi32(_mm256_madd_epi16(s, _mm256_set1_epi16(1)), _mm256_set1_epi32(offset));
}

/// accm_q4x8_block_dots on AVX-512 VNNI, for any unsigned bytes (int8's w + 128 too): one vpdpbusd per vector,
/// in two chains (half the latency), the sums exact in int32.
ACCM_AVX512_VNNI static inline __m256i accm_u8x8_block_dots_vnni(const __m256i w[8], const int8_t *x, int32_t offset) {
    int32_t words[8];
    memcpy(words, x, sizeof words);
    __m256i even = _mm256_set1_epi32(-offset), odd = _mm256_setzero_si256();
    for (int k = 0; k < 8; k += 2) {
        even = _mm256_dpbusd_epi32(even, w[k], _mm256_set1_epi32(words[k]));
        odd = _mm256_dpbusd_epi32(odd, w[k + 1], _mm256_set1_epi32(words[k + 1]));
    }
    return _mm256_add_epi32(even, odd);
}

/// One group of 8 weight rows unpacked to unsigned bytes for the prefill kernels: per block, 8 vectors of 32
/// bytes (the w[8] of the block-dot functions above), then the 8 rows' scales as fp32.
typedef struct {
    uint8_t *bytes;   // blocks × 256
    float *scales;    // blocks × 8
} accm_unsigned_group;

/// Scratch for one group and an int32 offset per activation block (`rows` rows of `blocks`); 0, with nothing
/// held, when an allocation failed.
static inline int accm_unsigned_group_allocate(accm_unsigned_group *g, int32_t **offsets, size_t blocks, size_t rows) {
    g->bytes = aligned_alloc(32, blocks * 256);
    g->scales = aligned_alloc(32, blocks * 8 * sizeof(float));
    *offsets = malloc(rows * blocks * sizeof(int32_t));
    if (g->bytes && g->scales && *offsets) return 1;
    free(g->bytes); free(g->scales); free(*offsets);
    return 0;
}

static inline void accm_unsigned_group_free(accm_unsigned_group *g, int32_t *offsets) {
    free(g->bytes); free(g->scales); free(offsets);
}

/// Defines `name`, the prefill tile over one unpacked group: activation rows m0 ..< m0 + RM (RM ≤ MAX_RM) times
/// its 8 weight rows, block by block through `dots` (a block-dot function above) with `offsets[row * blocks +
/// block]` subtracted; lanes lower ..< upper of the 8 outputs per row are written from out[0] of each output
/// row. One body for the AVX2 and the AVX-512 VNNI tiles, so both sum in the same order.
#define ACCM_UNSIGNED_GROUP_TILE(name, TARGET, dots, MAX_RM)                                                      \
    TARGET static inline __attribute__((always_inline)) void                                                      \
    name(const accm_unsigned_group *g, size_t blocks, size_t cols, const int8_t *xq, const float *xs,              \
         const int32_t *offsets, size_t m0, int RM, float *out, size_t ldy, int accumulate, size_t lower,          \
         size_t upper) {                                                                                           \
        __m256 acc[MAX_RM];                                                                                        \
        ACCM_UNROLL                                                                                                \
        for (int m = 0; m < RM; m++) acc[m] = _mm256_setzero_ps();                                                 \
        for (size_t b = 0; b < blocks; b++) {                                                                      \
            const __m256i *wv = (const __m256i *)(g->bytes + b * 256);                                             \
            const __m256i w[8] = {                                                                                 \
                _mm256_load_si256(wv), _mm256_load_si256(wv + 1), _mm256_load_si256(wv + 2),                       \
                _mm256_load_si256(wv + 3), _mm256_load_si256(wv + 4), _mm256_load_si256(wv + 5),                   \
                _mm256_load_si256(wv + 6), _mm256_load_si256(wv + 7),                                              \
            };                                                                                                     \
            __m256 dw = _mm256_load_ps(g->scales + b * 8);                                                         \
            ACCM_UNROLL                                                                                            \
            for (int m = 0; m < RM; m++) {                                                                         \
                __m256i dot = dots(w, xq + (m0 + m) * cols + b * 32, offsets[(m0 + m) * blocks + b]);              \
                __m256 scale = _mm256_mul_ps(dw, _mm256_set1_ps(xs[(m0 + m) * blocks + b]));                       \
                acc[m] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), scale, acc[m]);                                  \
            }                                                                                                      \
        }                                                                                                          \
        for (int m = 0; m < RM; m++) {                                                                             \
            float *o = out + (m0 + m) * ldy;                                                                       \
            float lanes[8];                                                                                        \
            _mm256_storeu_ps(lanes, acc[m]);                                                                       \
            for (size_t r = lower; r < upper; r++) o[r - lower] = accumulate ? o[r - lower] + lanes[r] : lanes[r]; \
        }                                                                                                          \
    }

/// Group `g` of an interleaved int4 matrix (accm_q4_0x8) unpacked into `out` for the prefill kernels: per block,
/// vector k < 4 the low nibbles of chunk k (weights 4k ..< 4k + 4 of every row, as bytes 0...15), vector 4 + k
/// its high nibbles (weights 16 + 4k ..< 20 + 4k), and the 8 rows' scales as fp32.
ACCM_AVX2 static inline void accm_q4x8_unpack_group(accm_unsigned_group *out, const uint8_t *w, const uint16_t *ws,
                                                    size_t blocks, size_t g) {
    const __m256i low_nibbles = _mm256_set1_epi8(0x0F);
    for (size_t b = 0; b < blocks; b++) {
        const __m256i *chunk = (const __m256i *)(w + (g * blocks + b) * 128);
        __m256i *target = (__m256i *)(out->bytes + b * 256);
        for (int k = 0; k < 4; k++) {
            __m256i packed = _mm256_loadu_si256(chunk + k);
            _mm256_store_si256(target + k, _mm256_and_si256(packed, low_nibbles));
            _mm256_store_si256(target + k + 4, _mm256_and_si256(_mm256_srli_epi16(packed, 4), low_nibbles));
        }
        _mm256_store_ps(out->scales + b * 8, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(ws + (g * blocks + b) * 8))));
    }
}

/// 8 · Σ x of each of `count` activation blocks (32 bytes each): what Σ (q − 8)·x = Σ q·x − 8·Σ x subtracts from
/// the int4 kernels' unsigned-nibble sums.
ACCM_AVX2 static inline void accm_q4_block_offsets(const int8_t *xq, size_t count, int32_t *offsets) {
    const __m256i ones = _mm256_set1_epi16(1), eights = _mm256_set1_epi8(8);
    for (size_t i = 0; i < count; i++) {
        __m256i sums = _mm256_madd_epi16(_mm256_maddubs_epi16(eights, _mm256_loadu_si256((const __m256i *)(xq + i * 32))), ones);
        __m128i half = _mm_add_epi32(_mm256_castsi256_si128(sums), _mm256_extracti128_si256(sums, 1));
        half = _mm_add_epi32(half, _mm_shuffle_epi32(half, 0x4E));
        offsets[i] = _mm_cvtsi128_si32(_mm_add_epi32(half, _mm_shuffle_epi32(half, 0xB1)));
    }
}

/// Defines `name`, int4 prefill over the interleaved matrix with `group_rows` (a level's tiles: every activation
/// row against one unpacked group, its outputs lower ..< upper into `out`): each group of 8 rows unpacked once
/// into scratch, then multiplied with every activation row. It returns 0 when the scratch could not be had. A
/// macro, not a function taking `group_rows` by pointer: a tile function whose address is taken is compiled
/// less well for its other callers (int8 and int4 VNNI prefill ran 4–7% slower so).
#define ACCM_Q4X8_UNPACKED_GEMM(name, TARGET, group_rows)                                                         \
    TARGET static int name(const uint8_t *w, const uint16_t *ws, size_t cols, size_t first_row, size_t count,     \
                           const int8_t *xq, const float *xs, size_t rows, float *y, size_t ldy, int accumulate) { \
        size_t blocks = cols / ACCM_QUANT_BLOCK;                                                                  \
        accm_unsigned_group g;                                                                                    \
        int32_t *offsets;                                                                                         \
        if (!accm_unsigned_group_allocate(&g, &offsets, blocks, rows)) return 0;                                  \
        accm_q4_block_offsets(xq, rows * blocks, offsets);                                                        \
        size_t end = first_row + count;                                                                           \
        for (size_t group = first_row / 8; group * 8 < end; group++) {                                           \
            size_t lower = group * 8 > first_row ? 0 : first_row - group * 8;                                     \
            size_t upper = group * 8 + 8 <= end ? 8 : end - group * 8;                                            \
            accm_q4x8_unpack_group(&g, w, ws, blocks, group);                                                     \
            group_rows(&g, blocks, cols, xq, xs, offsets, rows, y + (group * 8 + lower - first_row), ldy,         \
                       accumulate, lower, upper);                                                                 \
        }                                                                                                         \
        accm_unsigned_group_free(&g, offsets);                                                                    \
        return 1;                                                                                                 \
    }

/// accm_gemv_q4_0x8 for `rows` activation rows (row m into y + m * ldy), each block's weights loaded and unpacked
/// once for up to ACCM_BATCH_ROWS rows: a batch's decode step, and prefill of few rows (gemv_quantized.c).
ACCM_AVX2 void accm_gemv_q4_0x8_rows_avx2(const uint8_t *w, const uint16_t *ws, size_t cols, size_t first_row, size_t count,
                                          const int8_t *xq, const float *xs, size_t rows, float *y, size_t ldy, int accumulate);

/// The AVX-512 VNNI integer products (integer_vnni.c), each with the contract of the AVX2 kernel it replaces. The
/// GEMMs return 0 when their scratch could not be allocated (the caller then takes a lower path).
ACCM_AVX512_VNNI void accm_gemv_q4_0x8_rows_vnni(const uint8_t *w, const uint16_t *ws, size_t cols, size_t first_row,
                                                 size_t count, const int8_t *xq, const float *xs, size_t rows, float *y,
                                                 size_t ldy, int accumulate);
ACCM_AVX512_VNNI void accm_gemv_q8_0_vnni(const int8_t *w, const uint16_t *scales, size_t rows, size_t cols,
                                          const int8_t *xq, const float *xs, float *y, int accumulate);
ACCM_AVX512_VNNI int accm_gemm_q4_0x8_vnni(const uint8_t *w, const uint16_t *ws, size_t cols, size_t first_row,
                                          size_t count, const int8_t *xq, const float *xs, size_t rows, float *y,
                                          size_t ldy, int accumulate);
ACCM_AVX512_VNNI int accm_gemm_q8_0_vnni(const int8_t *w, const uint16_t *scales, size_t rows, size_t cols,
                                        const int8_t *xq, const float *xs, size_t count, float *y, size_t ldy,
                                        int accumulate);

#else
#define ACCM_X86 0
#endif

static inline uint32_t accm_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float accm_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
/// A little-endian uint16 at any alignment.
static inline uint16_t accm_load_u16(const uint16_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }

static inline float accm_bf16_value(uint16_t h) { return accm_float((uint32_t)h << 16); }

/// IEEE binary16 → binary32, exact for every value (subnormals, infinities, NaN).
static inline float accm_f16_value(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exponent = (h >> 10) & 0x1F, mantissa = h & 0x3FF;
    if (exponent == 0) {
        float magnitude = (float)mantissa * 5.9604644775390625e-8f;  // mantissa · 2^-24
        return sign ? -magnitude : magnitude;
    }
    if (exponent == 31) return accm_float(sign | 0x7F800000u | (mantissa << 13));
    return accm_float(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

/// binary32 → binary16, rounding to nearest even.
static inline uint16_t accm_f16_bits(float f) {
    uint32_t x = accm_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t magnitude = x & 0x7FFFFFFFu;
    if (magnitude >= 0x7F800000u) return sign | (magnitude > 0x7F800000u ? 0x7E00 : 0x7C00);
    if (magnitude >= 0x477FF000u) return sign | 0x7C00;  // rounds to 65520 or more: infinity
    if (magnitude < 0x38800000u) {                        // below 2^-14: a subnormal (or zero) result
        return sign | (uint16_t)nearbyintf(fabsf(f) * 16777216.0f);  // in units of 2^-24, ties to even
    }
    uint32_t rounded = magnitude + 0xFFFu + ((magnitude >> 13) & 1u);
    return sign | (uint16_t)((rounded - (112u << 23)) >> 13);
}

static inline uint16_t accm_bf16_bits(float f) {
    uint32_t x = accm_bits(f);
    if ((x & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((x >> 16) | 0x40);  // quiet NaN
    return (uint16_t)((x + 0x7FFFu + ((x >> 16) & 1u)) >> 16);
}

#endif
