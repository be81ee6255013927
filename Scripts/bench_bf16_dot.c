// Times accm_gemm_bf16_dot (the opt-in bf16 dot products, input rounded to bf16) against OpenBLAS sgemm on the
// same bf16 weights converted to fp32, on one thread, at LLaMA-7B prefill shapes. Build and run from the repository
// root (x86-64 with AVX-512 BF16):
//
//   clang -O3 -ISources/CKernels/include -ISources/CKernels -I/usr/include/x86_64-linux-gnu/openblas-pthread \
//       Scripts/bench_bf16_dot.c Sources/CKernels/*.c -lopenblas -lm -lpthread -o /tmp/bench_bf16_dot \
//       && OPENBLAS_NUM_THREADS=1 /tmp/bench_bf16_dot
//
// Each figure is the fastest of 3 calls (the dot products' time includes rounding the input to bf16).

#include "accm_kernels.h"
#include "internal.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static float uniform(float scale) { return (rand() / (float)RAND_MAX - 0.5f) * scale; }

int main(void) {
    const size_t shapes[][3] = {{640, 11008, 4096}, {640, 4096, 11008}, {100, 11008, 4096}};  // rows, outputs, inputs
    srand(2);
    for (int s = 0; s < 3; s++) {
        size_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        float *x = malloc(m * k * 4), *wf = malloc(n * k * 4), *y = malloc(m * n * 4);
        uint16_t *w = malloc(n * k * 2), *xb = malloc(m * k * 2);
        for (size_t i = 0; i < m * k; i++) x[i] = uniform(1);
        for (size_t i = 0; i < n * k; i++) wf[i] = accm_bf16_value(w[i] = accm_bf16_bits(uniform(0.05f)));
        double dot = 1e30, sgemm = 1e30;
        for (int run = 0; run < 3; run++) {
            double start = seconds();
            accm_round_to_bf16(x, xb, m * k);
            accm_gemm_bf16_dot(w, k, n, k, xb, k, m, y, n, 0);
            double t = seconds() - start;
            dot = t < dot ? t : dot;
            start = seconds();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1, x, k, wf, k, 0, y, n);
            t = seconds() - start;
            sgemm = t < sgemm ? t : sgemm;
        }
        double flop = 2.0 * m * n * k;
        printf("%zux%zux%zu: bf16 dot %.1f GFLOP/s, sgemm %.1f GFLOP/s, %.2fx\n", m, n, k, flop / dot / 1e9,
               flop / sgemm / 1e9, sgemm / dot);
        free(x), free(wf), free(y), free(w), free(xb);
    }
    return 0;
}
