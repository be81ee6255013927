// The engine's own C kernels: reading bf16/f16 weights and 8-/4-bit block-quantized weights directly, and the
// element-wise work around them (exp, softmax, activations, norms).
//
// Every dispatching kernel picks its code path once per process by a CPU check: AVX-512 VNNI for the integer
// products where the CPU has it, AVX2 + FMA + F16C where the CPU has them (x86-64), else a portable C path
// (also exported, with the suffix `_portable`, so tests compare them). `ACCM_KERNELS=portable` or `=avx2` in
// the environment caps the level.
//
// Matrices are row-major `W[rows, cols]` with PyTorch's `Linear` layout (`rows` = outputs, `cols` = inputs).
// Block-quantized rows (Q8_0- and Q4_0-like, as llama.cpp's) hold `cols / 32` blocks of 32 weights along
// the input dimension, each with one fp16 scale `d`; weight = d · q. Q8_0: q in -127...127, one int8 per
// weight, `cols` bytes per row. Q4_0: q - 8 with q in 0...15, two per byte (byte j of a block holds weight j
// in its low nibble and weight j + 16 in its high nibble), `cols / 2` bytes per row. Scales: `cols / 32`
// uint16 per row, stored apart from the quantized bytes. The Q4_0 products read rows interleaved 8 at a time
// (accm_q4_0x8, below), made from row-major Q4_0 at load.

#ifndef ACCM_KERNELS_H
#define ACCM_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Weights per quantization block.
#define ACCM_QUANT_BLOCK 32

/// The kernels' code paths, each including the ones below it: a kernel without a path of the chosen level runs
/// its best lower one. AVX-512 VNNI (with F, BW, VL) speeds up the integer products of int8/int4 weights.
enum { ACCM_KERNELS_PORTABLE = 0, ACCM_KERNELS_AVX2 = 1, ACCM_KERNELS_AVX512_VNNI = 2 };

/// The level the dispatching kernels run: the CPU's best, capped by ACCM_KERNELS (portable, avx2, avx512-vnni).
int accm_kernels_simd_level(void);
/// The best level this CPU runs, whatever ACCM_KERNELS says.
int accm_kernels_cpu_level(void);
/// Makes the dispatching kernels run `level` (capped at accm_kernels_cpu_level()) and returns the level now in
/// force: for tests and benchmarks that compare the paths in one process. Call it while no kernel runs.
int accm_kernels_set_level(int level);
/// "avx512-vnni", "avx2+fma+f16c" or "portable".
const char *accm_kernels_level_name(int level);
/// The name of the level in force.
const char *accm_kernels_path_name(void);

// MARK: Half-precision conversions (any alignment of `src`)

void accm_bf16_to_f32(const uint16_t *src, float *dst, size_t n);
void accm_bf16_to_f32_portable(const uint16_t *src, float *dst, size_t n);
void accm_f16_to_f32(const uint16_t *src, float *dst, size_t n);
void accm_f16_to_f32_portable(const uint16_t *src, float *dst, size_t n);
/// Round to nearest even (as torch's `.to(torch.bfloat16)`); NaN stays NaN.
void accm_f32_to_bf16(const float *src, uint16_t *dst, size_t n);
/// Round to nearest even; overflow goes to infinity.
void accm_f32_to_f16(const float *src, uint16_t *dst, size_t n);
void accm_f32_to_f16_portable(const float *src, uint16_t *dst, size_t n);

// MARK: Matrix-vector products over half-precision weights
// y[r] = sum_c W[r * ldw + c] * x[c] for r < rows (added to y[r] when `accumulate`).

void accm_gemv_bf16(const uint16_t *w, size_t ldw, size_t rows, size_t cols, const float *x, float *y, int accumulate);
void accm_gemv_bf16_portable(const uint16_t *w, size_t ldw, size_t rows, size_t cols, const float *x, float *y, int accumulate);
void accm_gemv_f16(const uint16_t *w, size_t ldw, size_t rows, size_t cols, const float *x, float *y, int accumulate);
void accm_gemv_f16_portable(const uint16_t *w, size_t ldw, size_t rows, size_t cols, const float *x, float *y, int accumulate);
// The same over fp32 weights (decode's product for f32 matrices, in place of sgemv).
void accm_gemv_f32(const float *w, size_t ldw, size_t rows, size_t cols, const float *x, float *y, int accumulate);
void accm_gemv_f32_portable(const float *w, size_t ldw, size_t rows, size_t cols, const float *x, float *y, int accumulate);

// MARK: Matrix-vector products of a batch of inputs (a decode step of several sequences)
// y[m * ldy + r] (+)= Σ_c W[r * ldw + c] · x[m * ldx + c] for r < rows, m < batch: each weight loaded once for
// up to 4 inputs (more run in turns; a turn of one runs the one-input kernel above).

void accm_gemv_f32_batch(const float *w, size_t ldw, size_t rows, size_t cols, const float *x, size_t ldx, size_t batch,
                         float *y, size_t ldy, int accumulate);
void accm_gemv_f32_batch_portable(const float *w, size_t ldw, size_t rows, size_t cols, const float *x, size_t ldx,
                                  size_t batch, float *y, size_t ldy, int accumulate);
void accm_gemv_bf16_batch(const uint16_t *w, size_t ldw, size_t rows, size_t cols, const float *x, size_t ldx,
                          size_t batch, float *y, size_t ldy, int accumulate);
void accm_gemv_bf16_batch_portable(const uint16_t *w, size_t ldw, size_t rows, size_t cols, const float *x, size_t ldx,
                                   size_t batch, float *y, size_t ldy, int accumulate);
void accm_gemv_f16_batch(const uint16_t *w, size_t ldw, size_t rows, size_t cols, const float *x, size_t ldx,
                         size_t batch, float *y, size_t ldy, int accumulate);
void accm_gemv_f16_batch_portable(const uint16_t *w, size_t ldw, size_t rows, size_t cols, const float *x, size_t ldx,
                                  size_t batch, float *y, size_t ldy, int accumulate);

// MARK: bf16 weights against a bf16-rounded input (the opt-in ACCM_BF16_PRODUCTS=bf16)
// What llama.cpp and PyTorch's bf16 compute: the input rounded to bf16, each product of two bf16 values exact in
// fp32, the sums in fp32 (AVX-512 BF16 vdpbf16ps, two products a lane, which also treats subnormals as zero). The
// default bf16 products keep the input in fp32 (above, and block conversion + sgemm for prefill).
// UNFINISHED: the engine does not call these yet; its bf16 products run the fp32 path whatever the switch says.

/// Whether this CPU has AVX-512 BF16 (with the AVX-512 VNNI level).
int accm_kernels_cpu_has_bf16_dot(void);
/// Whether bf16 weights' products run in bf16 dot products: ACCM_BF16_PRODUCTS=bf16 (fp32, the default, or
/// unset: no; any other value is named on stderr and ignored), on a CPU that has them, with ACCM_KERNELS not
/// capping below avx512-vnni. Elsewhere the default fp32 products run.
int accm_bf16_products_in_bf16(void);
/// Asks for (1) or against (0) the bf16 dot products, whatever ACCM_BF16_PRODUCTS says, and returns whether they
/// are now in force: for tests and benchmarks. Call it while no kernel runs.
int accm_set_bf16_products_in_bf16(int on);
/// fp32 → bf16, round to nearest even: accm_f32_to_bf16, 32 values an instruction on the AVX-512 BF16 path
/// (which makes a subnormal input a signed zero).
void accm_round_to_bf16(const float *x, uint16_t *out, size_t n);
/// y[m * ldy + j] (+)= Σ_c x[m * ldx + c] · w[j * ldw + c] for m < rows, j < n, over bf16 x and w with fp32
/// sums: decode's and prefill's product alike (up to 6 input rows by 4 weight rows a register tile). The portable
/// path sums each row's products in order.
void accm_gemm_bf16_dot(const uint16_t *w, size_t ldw, size_t n, size_t k, const uint16_t *x, size_t ldx, size_t rows,
                        float *y, size_t ldy, int accumulate);
void accm_gemm_bf16_dot_portable(const uint16_t *w, size_t ldw, size_t n, size_t k, const uint16_t *x, size_t ldx,
                                 size_t rows, float *y, size_t ldy, int accumulate);

// MARK: Block quantization (n a multiple of ACCM_QUANT_BLOCK)

/// Weights → Q8_0: d = max|x| / 127, q = round(x / d) (llama.cpp's quantize_row_q8_0_ref).
void accm_quantize_q8_0(const float *x, size_t n, int8_t *q, uint16_t *scales);
/// Weights → Q4_0: d = (the value of largest magnitude) / -8, q = min(15, trunc(x / d + 8.5)) (quantize_row_q4_0_ref).
void accm_quantize_q4_0(const float *x, size_t n, uint8_t *q, uint16_t *scales);
void accm_dequantize_q8_0(const int8_t *q, const uint16_t *scales, size_t n, float *out);
void accm_dequantize_q8_0_portable(const int8_t *q, const uint16_t *scales, size_t n, float *out);
void accm_dequantize_q4_0(const uint8_t *q, const uint16_t *scales, size_t n, float *out);
void accm_dequantize_q4_0_portable(const uint8_t *q, const uint16_t *scales, size_t n, float *out);

/// An activation vector → 8-bit blocks with fp32 scales (d = max|x| / 127, q = round-to-nearest-even(x / d)),
/// the other operand of the integer dot products below. Both paths give the same bytes.
void accm_quantize_activation(const float *x, size_t n, int8_t *q, float *scales);
void accm_quantize_activation_portable(const float *x, size_t n, int8_t *q, float *scales);

// MARK: Matrix-vector products over quantized weights and a quantized activation
// y[r] = sum_b dw[r, b] * dx[b] * (sum_j qw[r, b, j] * qx[b, j]), each block's sum in exact integers.

void accm_gemv_q8_0(const int8_t *w, const uint16_t *scales, size_t rows, size_t cols,
                    const int8_t *xq, const float *xs, float *y, int accumulate);
void accm_gemv_q8_0_portable(const int8_t *w, const uint16_t *scales, size_t rows, size_t cols,
                             const int8_t *xq, const float *xs, float *y, int accumulate);

// MARK: Q4_0 matrices interleaved 8 rows at a time (how the engine holds int4 weights)
// Rows are taken in groups of 8; the last group is padded to 8 rows (with zero weights and scales, by
// accm_q4_0x8_pad). With blocks = cols / 32, group g's block b is 128 bytes at w + (g * blocks + b) * 128: 4
// chunks of 32 bytes, chunk k holding bytes 4k ..< 4k + 4 of each row's row-major Q4_0 block (low nibbles:
// weights 4k + j, high nibbles: weights 16 + 4k + j), row r of the group at k * 32 + r * 4. The 8 rows' fp16
// scales of that block are at ws + (g * blocks + b) * 8. A matrix of `rows` rows takes
// accm_q4_0x8_groups(rows) * blocks * 128 bytes and 8 times as many scales per group as blocks.

/// Groups of 8 rows a matrix of `rows` rows takes (the last one padded).
size_t accm_q4_0x8_groups(size_t rows);
/// Row-major Q4_0 rows (`count` rows of `cols / 2` bytes, `cols / 32` scales each) into rows
/// first_row ..< first_row + count of the interleaved matrix `w`, `ws`.
void accm_q4_0x8_pack(const uint8_t *q, const uint16_t *scales, size_t count, size_t cols, size_t first_row,
                      uint8_t *w, uint16_t *ws);
/// Rows first_row ..< first_row + count of the interleaved matrix, back to row-major Q4_0 (the inverse).
void accm_q4_0x8_unpack(const uint8_t *w, const uint16_t *ws, size_t cols, size_t first_row, size_t count,
                        uint8_t *q, uint16_t *scales);
/// Rows first_row ..< first_row + count of the interleaved matrix as fp32 (`cols` floats a row), as
/// accm_dequantize_q4_0 gives them from row-major Q4_0.
void accm_q4_0x8_dequantize(const uint8_t *w, const uint16_t *ws, size_t cols, size_t first_row, size_t count, float *out);
/// Fills the padding rows of the last group of a `rows`-row matrix: weight 0 (q = 8), scale 0.
void accm_q4_0x8_pad(uint8_t *w, uint16_t *ws, size_t rows, size_t cols);
/// Weight q − 8 (−8...7) at (row, column) of the interleaved matrix, and its block's scale when `scale` is not NULL.
int accm_q4_0x8_weight(const uint8_t *w, const uint16_t *ws, size_t cols, size_t row, size_t column, float *scale);

/// y[i] (+)= Σ_b dw[r, b] · dx[b] · Σ_j (q[r, b, j] − 8) · qx[b, j] for rows r = first_row + i, i < count, of the
/// interleaved matrix (any first_row and count: partial groups are computed whole and written in part).
void accm_gemv_q4_0x8(const uint8_t *w, const uint16_t *ws, size_t cols, size_t first_row, size_t count,
                      const int8_t *xq, const float *xs, float *y, int accumulate);
void accm_gemv_q4_0x8_portable(const uint8_t *w, const uint16_t *ws, size_t cols, size_t first_row, size_t count,
                               const int8_t *xq, const float *xs, float *y, int accumulate);
/// accm_gemv_q4_0x8 for each of `rows` activation rows (`xq`: `rows` rows of `cols` bytes, `xs`: `rows` rows of
/// `cols / 32` scales), activation row m into y + m * ldy: up to 4 rows (a batch's decode step) share each
/// block's loads in registers; more (prefill) unpack each group of 8 weight rows once into scratch.
void accm_gemm_q4_0x8(const uint8_t *w, const uint16_t *ws, size_t cols, size_t first_row, size_t count,
                      const int8_t *xq, const float *xs, size_t rows, float *y, size_t ldy, int accumulate);
void accm_gemm_q4_0x8_portable(const uint8_t *w, const uint16_t *ws, size_t cols, size_t first_row, size_t count,
                               const int8_t *xq, const float *xs, size_t rows, float *y, size_t ldy, int accumulate);

// MARK: Matrix-matrix product over Q8_0 weights and quantized activation rows (prefill, and a batch's decode step)
// y[m * ldy + r] = sum_b dw[r, b] * dx[m, b] * (sum_j q[r, b, j] * qx[m, b, j]): accm_gemv_q8_0 for each of
// `count` activation rows (laid out as accm_gemm_q4_0x8's), each block's sum in exact integers. Up to 4 rows (2 on
// AVX-512 VNNI) run accm_gemv_q8_0 each; more repack 8 weight rows at a time.

void accm_gemm_q8_0(const int8_t *w, const uint16_t *scales, size_t rows, size_t cols,
                    const int8_t *xq, const float *xs, size_t count, float *y, size_t ldy, int accumulate);
void accm_gemm_q8_0_portable(const int8_t *w, const uint16_t *scales, size_t rows, size_t cols,
                             const int8_t *xq, const float *xs, size_t count, float *y, size_t ldy, int accumulate);

// MARK: Attention over an f16 key/value cache
// out[c] = sum_r p[r] * V[r * ldv + c] for c < cols (overwrites out): the value side of one query's
// attention, reading the cached f16 rows directly (the key side is accm_gemv_f16 with ldw = the cache width).

void accm_weighted_rows_f16(const uint16_t *v, size_t ldv, size_t count, size_t cols, const float *p, float *out);
void accm_weighted_rows_f16_portable(const uint16_t *v, size_t ldv, size_t count, size_t cols, const float *p, float *out);

// MARK: Element-wise kernels over fp32 (in place, any length and alignment)

/// p[i] = exp(p[i]) (Cephes polynomial; inputs clamped to [-87.33654, 88.37626], NaN stays NaN).
void accm_exp(float *p, size_t n);
void accm_exp_portable(float *p, size_t n);
/// p[i] = p[i] · sigmoid(alpha · p[i]): SiLU for alpha = 1, CLIP's quick GELU for alpha = 1.702.
void accm_sigmoid_gate(float *p, size_t n, float alpha);
void accm_sigmoid_gate_portable(float *p, size_t n, float alpha);
/// tanh-approximated GELU (gelu_new), computed as x · sigmoid(2u).
void accm_gelu_tanh(float *p, size_t n);
void accm_gelu_tanh_portable(float *p, size_t n);
/// Exact GELU, 0.5 x (1 + erf(x / √2)), with erfc to a fractional error below 1.2e-7.
void accm_gelu_erf(float *p, size_t n);
void accm_gelu_erf_portable(float *p, size_t n);
/// Softmax of one row of `n` values.
void accm_softmax(float *p, size_t n);
void accm_softmax_portable(float *p, size_t n);

// MARK: Normalisation of `rows` rows of `width` floats (x and y may be the same buffer)

/// y = (x - mean) / sqrt(variance + epsilon) · weight + bias (bias may be NULL), per row.
void accm_layer_norm(const float *x, float *y, size_t rows, size_t width, const float *weight, const float *bias,
                     float epsilon);
void accm_layer_norm_portable(const float *x, float *y, size_t rows, size_t width, const float *weight,
                              const float *bias, float epsilon);
/// y = weight · (x / sqrt(mean(x²) + epsilon)), per row (LLaMA's RMSNorm).
void accm_rms_norm(const float *x, float *y, size_t rows, size_t width, const float *weight, float epsilon);
void accm_rms_norm_portable(const float *x, float *y, size_t rows, size_t width, const float *weight, float epsilon);

// MARK: Threads

/// A task of a parallel job: `index` in 0 ..< the job's count.
typedef void (*accm_task)(void *context, size_t index);

/// Runs fn(context, i) for every i < count on up to `threads` threads (the caller's and the pool's workers)
/// and returns when all have finished. Workers spin for 0.5 ms after a job before they sleep, so back-to-back
/// jobs start on every core at once. Jobs run one at a time: a call made while another runs (from another
/// thread, or from inside a task) runs its tasks on the calling thread. `count` above 65535 also runs there.
void accm_parallel_for(size_t count, int threads, accm_task fn, void *context);

// MARK: Scratch

/// A 64-byte-aligned buffer of at least `count` floats owned by the calling thread, reused by every later
/// call on that thread (grown when a call asks for more). Valid until the thread's next call.
float *accm_thread_scratch(size_t count);

#ifdef __cplusplus
}
#endif

#endif
