// Times a batch's decode step in the kernels alone, on one thread, over one 16384×4096 matrix (256 MB in f32):
// for each input count N, the batch kernels (each weight read once for up to 4 inputs, in passes of 4) against
// one matrix-vector product per input, and against what prefill would run for N rows:
// - f32: accm_gemv_f32_batch vs accm_gemv_f32 per input vs OpenBLAS sgemm;
// - bf16: accm_gemv_bf16_batch vs accm_gemv_bf16 per input vs converting 512 rows at a time to fp32 + sgemm;
// - int8 (no batch kernel: see gemv_batch.c): accm_gemv_q8_0 per input vs accm_gemm_q8_0, what the engine runs
//   (a product per input up to 4 rows on AVX2 and 2 on AVX-512 VNNI, the repacking integer GEMM above that);
// - int4: the register kernel of the level in force (accm_gemv_q4_0x8_rows_avx2 / _vnni) vs accm_gemv_q4_0x8 per
//   input vs the unpacking GEMM.
// ACCM_KERNELS=avx2 times the AVX2 kernels on a CPU with AVX-512 VNNI.
// These set WeightMatrix.floatMatrixVectorRowLimit (8) and matrixVectorRowLimit (4). Build and run from the
// repository root (x86-64 with AVX2):
//
//   clang -O3 -ISources/CKernels/include -ISources/CKernels -I/usr/include/x86_64-linux-gnu/openblas-pthread \
//       Scripts/bench_batch_kernels.c Sources/CKernels/*.c -lopenblas -lm -lpthread -o /tmp/bench_batch_kernels \
//       && /tmp/bench_batch_kernels
//
// Times are the fastest of 3 calls, in ms. A shared machine's speed drifts: compare within a line.

#include "accm_kernels.h"
#include "internal.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

#define FASTEST_MS(call)                                                        \
    ({                                                                          \
        double best = 1e30;                                                     \
        for (int run = 0; run < 3; run++) {                                     \
            double start = seconds();                                           \
            call;                                                               \
            double t = seconds() - start;                                       \
            if (t < best) best = t;                                             \
        }                                                                       \
        best * 1e3;                                                             \
    })

int main(void) {
    if (!accm_kernels_simd_level()) {
        fprintf(stderr, "needs AVX2/FMA/F16C\n");
        return 2;
    }
    openblas_set_num_threads(1);
    const size_t rows = 16384, cols = 4096, blocks = cols / ACCM_QUANT_BLOCK, most = 8;
    float *w = malloc(rows * cols * sizeof(float));
    for (size_t i = 0; i < rows * cols; i++) w[i] = (float)((i * 2654435761u) % 1000) / 1000 - 0.5f;
    uint16_t *bf16 = malloc(rows * cols * 2), *q8_scales = malloc(rows * blocks * 2), *q4_scales = malloc(rows * blocks * 2);
    int8_t *q8 = malloc(rows * cols);
    uint8_t *q4 = malloc(rows * cols / 2), *q4_interleaved = malloc(rows * cols / 2);
    uint16_t *q4_interleaved_scales = malloc(rows * blocks * 2);
    accm_f32_to_bf16(w, bf16, rows * cols);
    accm_quantize_q8_0(w, rows * cols, q8, q8_scales);
    accm_quantize_q4_0(w, rows * cols, q4, q4_scales);
    accm_q4_0x8_pack(q4, q4_scales, rows, cols, 0, q4_interleaved, q4_interleaved_scales);
    float *x = malloc(most * cols * sizeof(float)), *xs = malloc(most * blocks * sizeof(float));
    int8_t *xq = malloc(most * cols);
    for (size_t i = 0; i < most * cols; i++) x[i] = (float)((i * 40503u) % 1000) / 1000 - 0.5f;
    for (size_t m = 0; m < most; m++) accm_quantize_activation(x + m * cols, cols, xq + m * cols, xs + m * blocks);
    float *y = malloc(most * rows * sizeof(float)), *scratch = malloc(512 * cols * sizeof(float));

    void (*q4_rows)(const uint8_t *, const uint16_t *, size_t, size_t, size_t, const int8_t *, const float *, size_t,
                    float *, size_t, int) = accm_gemv_q4_0x8_rows_avx2;
    if (accm_kernels_simd_level() >= ACCM_KERNELS_AVX512_VNNI) q4_rows = accm_gemv_q4_0x8_rows_vnni;
    printf("kernels: %s\n", accm_kernels_path_name());
    printf("inputs | f32 batch / per input / sgemm | bf16 batch / per input / convert+sgemm | "
           "int8 per input / accm_gemm_q8_0 | int4 batch / per input / GEMM\n");
    for (size_t n = 1; n <= most; n++) {
        double f32_batch = FASTEST_MS(accm_gemv_f32_batch(w, cols, rows, cols, x, cols, n, y, rows, 0));
        double f32_each = FASTEST_MS(for (size_t m = 0; m < n; m++) accm_gemv_f32(w, cols, rows, cols, x + m * cols, y + m * rows, 0));
        double f32_sgemm = FASTEST_MS(cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)rows, (int)cols, 1,
                                                  x, (int)cols, w, (int)cols, 0, y, (int)rows));
        double bf16_batch = FASTEST_MS(accm_gemv_bf16_batch(bf16, cols, rows, cols, x, cols, n, y, rows, 0));
        double bf16_each = FASTEST_MS(for (size_t m = 0; m < n; m++) accm_gemv_bf16(bf16, cols, rows, cols, x + m * cols, y + m * rows, 0));
        double bf16_sgemm = FASTEST_MS(for (size_t r0 = 0; r0 < rows; r0 += 512) {
            accm_bf16_to_f32(bf16 + r0 * cols, scratch, 512 * cols);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, 512, (int)cols, 1, x, (int)cols, scratch, (int)cols,
                        0, y + r0, (int)rows);
        });
        double q8_each = FASTEST_MS(for (size_t m = 0; m < n; m++)
            accm_gemv_q8_0(q8, q8_scales, rows, cols, xq + m * cols, xs + m * blocks, y + m * rows, 0));
        double q8_gemm = FASTEST_MS(accm_gemm_q8_0(q8, q8_scales, rows, cols, xq, xs, n, y, rows, 0));
        double q4_batch = FASTEST_MS(q4_rows(q4_interleaved, q4_interleaved_scales, cols, 0, rows, xq, xs, n, y, rows, 0));
        double q4_each = FASTEST_MS(for (size_t m = 0; m < n; m++)
            accm_gemv_q4_0x8(q4_interleaved, q4_interleaved_scales, cols, 0, rows, xq + m * cols, xs + m * blocks, y + m * rows, 0));
        double q4_gemm = n > ACCM_BATCH_ROWS
            ? FASTEST_MS(accm_gemm_q4_0x8(q4_interleaved, q4_interleaved_scales, cols, 0, rows, xq, xs, n, y, rows, 0)) : 0;
        printf("%6zu | %5.1f / %5.1f / %5.1f | %5.1f / %5.1f / %5.1f | %5.1f / ", n, f32_batch, f32_each, f32_sgemm,
               bf16_batch, bf16_each, bf16_sgemm, q8_each);
        printf("%5.1f | %5.1f / %5.1f / ", q8_gemm, q4_batch, q4_each);
        if (q4_gemm > 0) printf("%5.1f\n", q4_gemm); else printf("    –\n");
    }
    return 0;
}
