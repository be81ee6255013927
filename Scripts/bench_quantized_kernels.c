// Times the Q4_0/Q8_0 kernels alone, on one thread:
// - prefill: accm_gemm_q4_0x8 and accm_gemm_q8_0 over one 11008×4096 matrix (LLaMA-7B's gate/up shape), three
//   calls each, for the activation row count given (8: where the weight repack weighs most; 100: ACCM's prompt);
// - decode: accm_gemv_q4_0x8 and accm_gemv_q8_0 as GB/s of weights read, from memory (88064 rows, 180 MB in
//   int4) and from cache (64 rows, 130 KB, called 4000 times), next to glibc's memcmp over two 128 MiB buffers:
//   a kernel slower in cache than memory streams is bound by its instructions, not by the memory.
// Build and run from the repository root:
//
//   clang -O3 -ISources/CKernels/include -ISources/CKernels Scripts/bench_quantized_kernels.c \
//       Sources/CKernels/*.c -lm -lpthread -o /tmp/bench_quantized_kernels && /tmp/bench_quantized_kernels 100
//
// To compare two commits, build it against each one's Sources/CKernels (`git archive COMMIT Sources/CKernels`)
// and run the two binaries alternately: a shared machine's speed drifts between runs.

#include "accm_kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/// Deterministic values in [-0.5, 0.5).
static float *values(size_t count, uint32_t multiplier) {
    float *p = malloc(count * sizeof(float));
    for (size_t i = 0; i < count; i++) p[i] = (float)((i * multiplier) % 1000) / 1000 - 0.5f;
    return p;
}

int main(int argc, char **argv) {
    if (argc < 2 || atoi(argv[1]) < 1) {
        fprintf(stderr, "usage: %s ACTIVATION_ROWS\n", argv[0]);
        return 2;
    }
    const size_t rows = 11008, cols = 4096, count = (size_t)atoi(argv[1]), blocks = cols / ACCM_QUANT_BLOCK;
    float *w = values(rows * cols, 2654435761u), *x = values(count * cols, 40503u);
    uint8_t *q4 = malloc(rows * cols / 2);
    int8_t *q8 = malloc(rows * cols), *xq = malloc(count * cols);
    uint16_t *scales = malloc(rows * blocks * sizeof(uint16_t));
    float *xs = malloc(count * blocks * sizeof(float)), *y = malloc(count * rows * sizeof(float));
    for (size_t m = 0; m < count; m++) accm_quantize_activation(x + m * cols, cols, xq + m * cols, xs + m * blocks);

    accm_quantize_q4_0(w, rows * cols, q4, scales);
    uint8_t *q4_interleaved = malloc(rows * cols / 2);
    uint16_t *interleaved_scales = malloc(rows * blocks * sizeof(uint16_t));
    accm_q4_0x8_pack(q4, scales, rows, cols, 0, q4_interleaved, interleaved_scales);
    printf("accm_gemm_q4_0x8, %zu rows:", count);
    for (int run = 0; run < 3; run++) {
        double start = seconds();
        accm_gemm_q4_0x8(q4_interleaved, interleaved_scales, cols, 0, rows, xq, xs, count, y, rows, 0);
        printf(" %.1f", (seconds() - start) * 1e3);
    }
    accm_quantize_q8_0(w, rows * cols, q8, scales);
    printf(" ms; accm_gemm_q8_0:");
    for (int run = 0; run < 3; run++) {
        double start = seconds();
        accm_gemm_q8_0(q8, scales, rows, cols, xq, xs, count, y, rows, 0);
        printf(" %.1f", (seconds() - start) * 1e3);
    }
    printf(" ms\n");

    // Decode: one activation row against many weight rows, then against few rows many times.
    const size_t long_rows = 8 * rows, short_rows = 64, calls = 4000;
    const double q4_row = cols / 2 + blocks * 2, q8_row = cols + blocks * 2;  // bytes a row, with its scales
    uint8_t *q4_long = malloc(long_rows * cols / 2);
    int8_t *q8_long = malloc(long_rows / 2 * cols);
    uint16_t *long_scales = malloc(long_rows * blocks * sizeof(uint16_t));
    memset(q4_long, 0x5A, long_rows * cols / 2);
    memset(q8_long, 3, long_rows / 2 * cols);
    for (size_t i = 0; i < long_rows * blocks; i++) long_scales[i] = 0x3C00;  // 1.0 in binary16
    float *y_long = malloc(long_rows * sizeof(float));
    const size_t compared = (size_t)1 << 27;
    char *first = malloc(compared), *second = malloc(compared);
    memset(first, 1, compared);
    memset(second, 1, compared);
    for (int run = 0; run < 3; run++) {
        double start = seconds();
        accm_gemv_q4_0x8(q4_long, long_scales, cols, 0, long_rows, xq, xs, y_long, 0);
        double q4_memory = long_rows * q4_row / (seconds() - start) / 1e9;
        start = seconds();
        accm_gemv_q8_0(q8_long, long_scales, long_rows / 2, cols, xq, xs, y_long, 0);
        double q8_memory = long_rows / 2 * q8_row / (seconds() - start) / 1e9;
        start = seconds();
        for (size_t c = 0; c < calls; c++) accm_gemv_q4_0x8(q4_long, long_scales, cols, 0, short_rows, xq, xs, y_long, 0);
        double q4_cache = calls * short_rows * q4_row / (seconds() - start) / 1e9;
        start = seconds();
        for (size_t c = 0; c < calls; c++) accm_gemv_q8_0(q8_long, long_scales, short_rows, cols, xq, xs, y_long, 0);
        double q8_cache = calls * short_rows * q8_row / (seconds() - start) / 1e9;
        start = seconds();
        volatile int differ = memcmp(first, second, compared);
        double stream = 2.0 * compared / (seconds() - start) / 1e9;
        (void)differ;
        printf("decode GB/s: accm_gemv_q4_0x8 %.1f from memory, %.1f from cache; accm_gemv_q8_0 %.1f, %.1f; "
               "memcmp %.1f\n", q4_memory, q4_cache, q8_memory, q8_cache, stream);
    }
    return 0;
}
