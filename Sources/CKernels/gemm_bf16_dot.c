// Products over bf16 weights with the input rounded to bf16 too, in AVX-512 BF16 dot products (vdpbf16ps: two
// bf16 products summed into each fp32 lane), the opt-in `ACCM_BF16_PRODUCTS=bf16`: what llama.cpp and PyTorch's
// bf16 run, at twice the multiplications per instruction of fp32 FMA. The default bf16 path converts the weights
// to fp32 and keeps the input in fp32 (gemv_half.c, and sgemm for prefill), exact to transformers on fp32 compute.
//
// One kernel serves decode (a few input rows) and prefill: a register tile of up to 6 input rows by 4 weight rows,
// 24 sums of 16 lanes, the k loop 32 values a step (the last step masked); the weight rows are taken in blocks of
// about 512 KB so that a block stays in the L2 cache while every input tile passes over it. One Zen 4 core,
// Scripts/bench_bf16_dot.c: 640×11008×4096 143 GFLOP/s against OpenBLAS sgemm's 98, 640×4096×11008 179 against 99,
// 100×11008×4096 200 against 76.
//
// UNFINISHED: the engine does not call these kernels yet (WeightMatrix's bf16 products still run the fp32 path
// whatever ACCM_BF16_PRODUCTS says); they are built and tested against the portable path only.

#include "accm_kernels.h"
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void accm_gemm_bf16_dot_portable(const uint16_t *w, size_t ldw, size_t n, size_t k, const uint16_t *x, size_t ldx,
                                 size_t rows, float *y, size_t ldy, int accumulate) {
    for (size_t m = 0; m < rows; m++)
        for (size_t j = 0; j < n; j++) {
            float sum = 0;
            for (size_t c = 0; c < k; c++)
                sum += accm_bf16_value(accm_load_u16(x + m * ldx + c)) * accm_bf16_value(accm_load_u16(w + j * ldw + c));
            float *out = y + m * ldy + j;
            *out = accumulate ? *out + sum : sum;
        }
}

#if ACCM_X86
#define ACCM_AVX512_BF16 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512bf16")))

/// Round to nearest even, 32 values an instruction (vcvtne2ps2bf16; a subnormal input becomes a signed zero).
ACCM_AVX512_BF16 static void round_to_bf16_avx512(const float *x, uint16_t *out, size_t n) {
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(x + i));
        _mm512_storeu_si512(out + i, (__m512i)v);
    }
    for (; i < n; i++) out[i] = accm_bf16_bits(x[i]);
}

/// y[m, j] (+)= x[m, :] · w[j, :] for MR input rows by NR weight rows (constants after inlining).
ACCM_AVX512_BF16 static inline __attribute__((always_inline)) void
dot_tile(const uint16_t *x, size_t ldx, const uint16_t *w, size_t ldw, size_t k, float *y, size_t ldy,
         const int MR, const int NR, int accumulate) {
    __m512 s[6][4];
    ACCM_UNROLL for (int m = 0; m < MR; m++) ACCM_UNROLL for (int i = 0; i < NR; i++) s[m][i] = _mm512_setzero_ps();
    size_t c = 0;
    for (; c + 32 <= k; c += 32) {
        __m512bh wv[4];
        ACCM_UNROLL for (int i = 0; i < NR; i++) wv[i] = (__m512bh)_mm512_loadu_si512(w + i * ldw + c);
        ACCM_UNROLL for (int m = 0; m < MR; m++) {
            __m512bh xv = (__m512bh)_mm512_loadu_si512(x + m * ldx + c);
            ACCM_UNROLL for (int i = 0; i < NR; i++) s[m][i] = _mm512_dpbf16_ps(s[m][i], xv, wv[i]);
        }
    }
    if (c < k) {  // the last k % 32 values, the rest of the vector zero
        __mmask32 mask = (__mmask32)((1ull << (k - c)) - 1);
        __m512bh wv[4];
        ACCM_UNROLL for (int i = 0; i < NR; i++) wv[i] = (__m512bh)_mm512_maskz_loadu_epi16(mask, w + i * ldw + c);
        ACCM_UNROLL for (int m = 0; m < MR; m++) {
            __m512bh xv = (__m512bh)_mm512_maskz_loadu_epi16(mask, x + m * ldx + c);
            ACCM_UNROLL for (int i = 0; i < NR; i++) s[m][i] = _mm512_dpbf16_ps(s[m][i], xv, wv[i]);
        }
    }
    ACCM_UNROLL for (int m = 0; m < MR; m++) ACCM_UNROLL for (int i = 0; i < NR; i++) {
        float v = _mm512_reduce_add_ps(s[m][i]), *out = y + m * ldy + i;
        *out = accumulate ? *out + v : v;
    }
}

/// The weight rows j0 ..< j1 (4 at a time, then the rest one by one) against MR input rows.
#define DOT_ROWS(MR)                                                                                           \
    ACCM_AVX512_BF16 static void dot_rows_##MR(const uint16_t *x, size_t ldx, const uint16_t *w, size_t ldw,    \
                                              size_t j0, size_t j1, size_t k, float *y, size_t ldy, int acc) { \
        size_t j = j0;                                                                                         \
        for (; j + 4 <= j1; j += 4) dot_tile(x, ldx, w + j * ldw, ldw, k, y + j, ldy, MR, 4, acc);            \
        for (; j < j1; j++) dot_tile(x, ldx, w + j * ldw, ldw, k, y + j, ldy, MR, 1, acc);                    \
    }
DOT_ROWS(1)
DOT_ROWS(2)
DOT_ROWS(3)
DOT_ROWS(4)
DOT_ROWS(5)
DOT_ROWS(6)

/// Bytes of weight rows a block holds (half of a Zen 4 / Sapphire Rapids core's L2).
#define DOT_BLOCK_BYTES (512 * 1024)

ACCM_AVX512_BF16 static void gemm_bf16_dot_avx512(const uint16_t *w, size_t ldw, size_t n, size_t k, const uint16_t *x,
                                                 size_t ldx, size_t rows, float *y, size_t ldy, int accumulate) {
    size_t block = DOT_BLOCK_BYTES / (2 * (k ? k : 1)) / 4 * 4;
    if (block < 4) block = 4;
    for (size_t j0 = 0; j0 < n; j0 += block) {
        size_t j1 = j0 + block < n ? j0 + block : n;
        for (size_t m = 0; m < rows; m += 6) {
            const uint16_t *xm = x + m * ldx;
            float *ym = y + m * ldy;
            switch (rows - m < 6 ? rows - m : 6) {
            case 1: dot_rows_1(xm, ldx, w, ldw, j0, j1, k, ym, ldy, accumulate); break;
            case 2: dot_rows_2(xm, ldx, w, ldw, j0, j1, k, ym, ldy, accumulate); break;
            case 3: dot_rows_3(xm, ldx, w, ldw, j0, j1, k, ym, ldy, accumulate); break;
            case 4: dot_rows_4(xm, ldx, w, ldw, j0, j1, k, ym, ldy, accumulate); break;
            case 5: dot_rows_5(xm, ldx, w, ldw, j0, j1, k, ym, ldy, accumulate); break;
            default: dot_rows_6(xm, ldx, w, ldw, j0, j1, k, ym, ldy, accumulate); break;
            }
        }
    }
}
#endif

int accm_kernels_cpu_has_bf16_dot(void) {
#if ACCM_X86
    static volatile int has = -1;
    if (has < 0) {
        __builtin_cpu_init();
        has = accm_kernels_cpu_level() >= ACCM_KERNELS_AVX512_VNNI && __builtin_cpu_supports("avx512bf16");
    }
    return has;
#else
    return 0;
#endif
}

/// ACCM_BF16_PRODUCTS=bf16 asks for the dot products, =fp32 (or nothing) for the exact default; any other value
/// is named on stderr and asks for nothing.
static int requested(void) {
    const char *asked = getenv("ACCM_BF16_PRODUCTS");
    if (!asked || strcmp(asked, "fp32") == 0) return 0;
    if (strcmp(asked, "bf16") == 0) return 1;
    fprintf(stderr, "accm: ACCM_BF16_PRODUCTS=%s is not one of fp32, bf16; it is ignored\n", asked);
    return 0;
}

static volatile int bf16_requested = -1;

/// Whether the AVX-512 BF16 paths run: the CPU has them and ACCM_KERNELS does not cap below avx512-vnni.
static int dot_path(void) {
    return accm_kernels_cpu_has_bf16_dot() && accm_kernels_simd_level() >= ACCM_KERNELS_AVX512_VNNI;
}

int accm_bf16_products_in_bf16(void) {
    if (bf16_requested < 0) bf16_requested = requested();
    return bf16_requested && dot_path();
}

int accm_set_bf16_products_in_bf16(int on) {
    bf16_requested = on != 0;
    return accm_bf16_products_in_bf16();
}

void accm_round_to_bf16(const float *x, uint16_t *out, size_t n) {
#if ACCM_X86
    if (dot_path()) {
        round_to_bf16_avx512(x, out, n);
        return;
    }
#endif
    accm_f32_to_bf16(x, out, n);
}

void accm_gemm_bf16_dot(const uint16_t *w, size_t ldw, size_t n, size_t k, const uint16_t *x, size_t ldx, size_t rows,
                        float *y, size_t ldy, int accumulate) {
#if ACCM_X86
    if (dot_path()) {
        gemm_bf16_dot_avx512(w, ldw, n, k, x, ldx, rows, y, ldy, accumulate);
        return;
    }
#endif
    accm_gemm_bf16_dot_portable(w, ldw, n, k, x, ldx, rows, y, ldy, accumulate);
}
