// Times the integer prefill kernels alone: accm_gemm_q4_0 and accm_gemm_q8_0 on one thread over one
// 11008×4096 matrix (LLaMA-7B's gate/up shape), three calls each, for the activation row count given
// (8: where the weight repack weighs most; 100: ACCM's prompt). Build and run from the repository root:
//
//   clang -O3 -ISources/CKernels/include -ISources/CKernels Scripts/bench_integer_gemm.c Sources/CKernels/*.c \
//       -lm -lpthread -o /tmp/bench_integer_gemm && /tmp/bench_integer_gemm 100
//
// To compare two commits, build it against each one's Sources/CKernels (`git archive COMMIT Sources/CKernels`)
// and run the two binaries alternately: a shared machine's speed drifts between runs.

#include "accm_kernels.h"

#include <stdio.h>
#include <stdlib.h>
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
    printf("accm_gemm_q4_0, %zu rows:", count);
    for (int run = 0; run < 3; run++) {
        double start = seconds();
        accm_gemm_q4_0(q4, scales, rows, cols, xq, xs, count, y, rows, 0);
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
    return 0;
}
