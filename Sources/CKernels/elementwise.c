// Element-wise kernels over fp32 rows: exp, softmax, the sigmoid-gated activations (SiLU, quick GELU,
// tanh GELU), erf GELU, layer and RMS normalisation.
//
// exp is the Cephes single-precision polynomial (about 1 ulp against libm over the finite range) with the
// 1.5·2²³ rounding trick, clamped to [-87.33654, 88.37626] (so exp of a very negative value is the smallest
// normal float, never NaN); erf GELU uses the erfc approximation of Numerical Recipes (fractional error
// below 1.2e-7). The portable path runs the same formulas one float at a time (the compiler may still
// vectorise it with the target's baseline SIMD); the AVX2 path runs them eight lanes at a time with FMA.

#include "accm_kernels.h"
#include "internal.h"

#define EXP_LOW -87.33654f
#define EXP_HIGH 88.37626f
#define ROUNDING 12582912.0f  // 1.5 · 2^23
#define SQRT_2_OVER_PI 0.7978845608028654f
#define INV_SQRT_2 0.7071067811865476f

static inline float exp_scalar(float v) {
    float x = v < EXP_LOW ? EXP_LOW : (v > EXP_HIGH ? EXP_HIGH : v);  // NaN stays NaN
    float shifted = x * 1.44269504f + ROUNDING;
    float fx = shifted - ROUNDING;
    x = x - fx * 0.693359375f;
    x = x - fx * -2.12194440e-4f;
    float y = 1.9875691500e-4f;
    y = y * x + 1.3981999507e-3f;
    y = y * x + 8.3334519073e-3f;
    y = y * x + 4.1665795894e-2f;
    y = y * x + 1.6666665459e-1f;
    y = y * x + 5.0000001201e-1f;
    y = y * (x * x) + x + 1.0f;
    uint32_t n = accm_bits(shifted) - 0x4B400000u;
    return y * accm_float((n + 127u) << 23);
}

/// 1 + erf(x), through erfc(|x|) so that both tails keep their relative precision.
static inline float one_plus_erf_scalar(float x) {
    float z = fabsf(x), t = 1.0f / (1.0f + 0.5f * z);
    float p = 0.17087277f;
    p = p * t - 0.82215223f;
    p = p * t + 1.48851587f;
    p = p * t - 1.13520398f;
    p = p * t + 0.27886807f;
    p = p * t - 0.18628806f;
    p = p * t + 0.09678418f;
    p = p * t + 0.37409196f;
    p = p * t + 1.00002368f;
    p = p * t - 1.26551223f;
    float erfc = t * exp_scalar(p - z * z);
    return x >= 0 ? 2.0f - erfc : erfc;
}

void accm_exp_portable(float *p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = exp_scalar(p[i]);
}

void accm_sigmoid_gate_portable(float *p, size_t n, float alpha) {
    for (size_t i = 0; i < n; i++) p[i] = p[i] / (1.0f + exp_scalar(-alpha * p[i]));
}

void accm_gelu_tanh_portable(float *p, size_t n) {
    // 0.5 x (1 + tanh(u)) = x · sigmoid(2u)
    for (size_t i = 0; i < n; i++) {
        float x = p[i], u = SQRT_2_OVER_PI * (x + 0.044715f * x * x * x);
        p[i] = x / (1.0f + exp_scalar(-2.0f * u));
    }
}

void accm_gelu_erf_portable(float *p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = 0.5f * p[i] * one_plus_erf_scalar(p[i] * INV_SQRT_2);
}

void accm_softmax_portable(float *p, size_t n) {
    if (n == 0) return;
    float m = p[0], sum = 0;
    for (size_t i = 1; i < n; i++) m = p[i] > m ? p[i] : m;
    for (size_t i = 0; i < n; i++) {
        p[i] = exp_scalar(p[i] - m);
        sum += p[i];
    }
    float inv = 1.0f / sum;
    for (size_t i = 0; i < n; i++) p[i] *= inv;
}

void accm_layer_norm_portable(const float *x, float *y, size_t rows, size_t width, const float *weight,
                              const float *bias, float epsilon) {
    for (size_t r = 0; r < rows; r++) {
        const float *src = x + r * width;
        float *dst = y + r * width;
        float sum = 0, squares = 0;
        for (size_t i = 0; i < width; i++) sum += src[i];
        float mean = sum / (float)width;
        for (size_t i = 0; i < width; i++) squares += (src[i] - mean) * (src[i] - mean);
        float inv = 1.0f / sqrtf(squares / (float)width + epsilon);
        for (size_t i = 0; i < width; i++) dst[i] = (src[i] - mean) * inv * weight[i] + (bias ? bias[i] : 0.0f);
    }
}

void accm_rms_norm_portable(const float *x, float *y, size_t rows, size_t width, const float *weight, float epsilon) {
    for (size_t r = 0; r < rows; r++) {
        const float *src = x + r * width;
        float *dst = y + r * width;
        float squares = 0;
        for (size_t i = 0; i < width; i++) squares += src[i] * src[i];
        float inv = 1.0f / sqrtf(squares / (float)width + epsilon);
        for (size_t i = 0; i < width; i++) dst[i] = weight[i] * (src[i] * inv);
    }
}

#if ACCM_X86
ACCM_AVX2 static inline __m256 exp8(__m256 v) {
    // max/min return their second operand when either is NaN: NaN passes through.
    __m256 x = _mm256_min_ps(_mm256_set1_ps(EXP_HIGH), _mm256_max_ps(_mm256_set1_ps(EXP_LOW), v));
    const __m256 rounding = _mm256_set1_ps(ROUNDING);
    __m256 shifted = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504f), rounding);
    __m256 fx = _mm256_sub_ps(shifted, rounding);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
    __m256i n = _mm256_sub_epi32(_mm256_castps_si256(shifted), _mm256_set1_epi32(0x4B400000));
    __m256 scale = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n, _mm256_set1_epi32(127)), 23));
    return _mm256_mul_ps(y, scale);
}

/// x / (1 + exp(-k·x)), eight lanes.
ACCM_AVX2 static inline __m256 sigmoid_gate8(__m256 x, __m256 minus_k) {
    __m256 e = exp8(_mm256_mul_ps(minus_k, x));
    return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

ACCM_AVX2 static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

ACCM_AVX2 static inline float hmax8(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

ACCM_AVX2 static void exp_avx2(float *p, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(p + i, exp8(_mm256_loadu_ps(p + i)));
    accm_exp_portable(p + i, n - i);
}

ACCM_AVX2 static void sigmoid_gate_avx2(float *p, size_t n, float alpha) {
    const __m256 minus_alpha = _mm256_set1_ps(-alpha);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(p + i, sigmoid_gate8(_mm256_loadu_ps(p + i), minus_alpha));
    accm_sigmoid_gate_portable(p + i, n - i, alpha);
}

ACCM_AVX2 static void gelu_tanh_avx2(float *p, size_t n) {
    const __m256 c = _mm256_set1_ps(SQRT_2_OVER_PI), cubic = _mm256_set1_ps(0.044715f), minus_two = _mm256_set1_ps(-2.0f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(p + i);
        __m256 u = _mm256_mul_ps(c, _mm256_fmadd_ps(_mm256_mul_ps(cubic, x), _mm256_mul_ps(x, x), x));
        __m256 e = exp8(_mm256_mul_ps(minus_two, u));
        _mm256_storeu_ps(p + i, _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e)));
    }
    accm_gelu_tanh_portable(p + i, n - i);
}

ACCM_AVX2 static void gelu_erf_avx2(float *p, size_t n) {
    static const float coefficients[] = {
        0.17087277f, -0.82215223f, 1.48851587f, -1.13520398f, 0.27886807f,
        -0.18628806f, 0.09678418f, 0.37409196f, 1.00002368f, -1.26551223f,
    };
    const __m256 one = _mm256_set1_ps(1.0f), half = _mm256_set1_ps(0.5f), two = _mm256_set1_ps(2.0f);
    const __m256 sign = _mm256_set1_ps(-0.0f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(p + i);
        __m256 scaled = _mm256_mul_ps(x, _mm256_set1_ps(INV_SQRT_2));
        __m256 z = _mm256_andnot_ps(sign, scaled);
        __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(half, z, one));
        __m256 q = _mm256_set1_ps(coefficients[0]);
        for (int k = 1; k < 10; k++) q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(coefficients[k]));
        __m256 erfc = _mm256_mul_ps(t, exp8(_mm256_fnmadd_ps(z, z, q)));
        __m256 nonnegative = _mm256_cmp_ps(scaled, _mm256_setzero_ps(), _CMP_GE_OQ);
        __m256 one_plus_erf = _mm256_blendv_ps(erfc, _mm256_sub_ps(two, erfc), nonnegative);
        _mm256_storeu_ps(p + i, _mm256_mul_ps(_mm256_mul_ps(half, x), one_plus_erf));
    }
    accm_gelu_erf_portable(p + i, n - i);
}

ACCM_AVX2 static void softmax_avx2(float *p, size_t n) {
    if (n < 8) { accm_softmax_portable(p, n); return; }
    __m256 best = _mm256_loadu_ps(p);
    size_t i = 8;
    for (; i + 8 <= n; i += 8) best = _mm256_max_ps(best, _mm256_loadu_ps(p + i));
    float m = hmax8(best);
    for (; i < n; i++) m = p[i] > m ? p[i] : m;
    const __m256 vm = _mm256_set1_ps(m);
    __m256 sums = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(p + i), vm));
        _mm256_storeu_ps(p + i, e);
        sums = _mm256_add_ps(sums, e);
    }
    float sum = hsum8(sums);
    for (; i < n; i++) {
        p[i] = exp_scalar(p[i] - m);
        sum += p[i];
    }
    const __m256 inv = _mm256_set1_ps(1.0f / sum);
    for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(p + i, _mm256_mul_ps(_mm256_loadu_ps(p + i), inv));
    for (; i < n; i++) p[i] *= 1.0f / sum;
}

/// Sum of `width` floats, four independent accumulators.
ACCM_AVX2 static inline float sum_avx2(const float *x, size_t width) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 32 <= width; i += 32) {
        a0 = _mm256_add_ps(a0, _mm256_loadu_ps(x + i));
        a1 = _mm256_add_ps(a1, _mm256_loadu_ps(x + i + 8));
        a2 = _mm256_add_ps(a2, _mm256_loadu_ps(x + i + 16));
        a3 = _mm256_add_ps(a3, _mm256_loadu_ps(x + i + 24));
    }
    for (; i + 8 <= width; i += 8) a0 = _mm256_add_ps(a0, _mm256_loadu_ps(x + i));
    float s = hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < width; i++) s += x[i];
    return s;
}

/// Σ (x - center)², four independent accumulators.
ACCM_AVX2 static inline float squares_avx2(const float *x, size_t width, float center) {
    const __m256 c = _mm256_set1_ps(center);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 32 <= width; i += 32) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(x + i), c), d1 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 8), c);
        __m256 d2 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 16), c), d3 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 24), c);
        a0 = _mm256_fmadd_ps(d0, d0, a0);
        a1 = _mm256_fmadd_ps(d1, d1, a1);
        a2 = _mm256_fmadd_ps(d2, d2, a2);
        a3 = _mm256_fmadd_ps(d3, d3, a3);
    }
    for (; i + 8 <= width; i += 8) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + i), c);
        a0 = _mm256_fmadd_ps(d, d, a0);
    }
    float s = hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < width; i++) s += (x[i] - center) * (x[i] - center);
    return s;
}

ACCM_AVX2 static void layer_norm_avx2(const float *x, float *y, size_t rows, size_t width, const float *weight,
                                      const float *bias, float epsilon) {
    for (size_t r = 0; r < rows; r++) {
        const float *src = x + r * width;
        float *dst = y + r * width;
        float mean = sum_avx2(src, width) / (float)width;
        float inv = 1.0f / sqrtf(squares_avx2(src, width, mean) / (float)width + epsilon);
        const __m256 vm = _mm256_set1_ps(mean), vi = _mm256_set1_ps(inv);
        size_t i = 0;
        for (; i + 8 <= width; i += 8) {
            __m256 v = _mm256_mul_ps(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(src + i), vm), vi), _mm256_loadu_ps(weight + i));
            _mm256_storeu_ps(dst + i, bias ? _mm256_add_ps(v, _mm256_loadu_ps(bias + i)) : v);
        }
        for (; i < width; i++) dst[i] = (src[i] - mean) * inv * weight[i] + (bias ? bias[i] : 0.0f);
    }
}

ACCM_AVX2 static void rms_norm_avx2(const float *x, float *y, size_t rows, size_t width, const float *weight, float epsilon) {
    for (size_t r = 0; r < rows; r++) {
        const float *src = x + r * width;
        float *dst = y + r * width;
        float inv = 1.0f / sqrtf(squares_avx2(src, width, 0.0f) / (float)width + epsilon);
        const __m256 vi = _mm256_set1_ps(inv);
        size_t i = 0;
        for (; i + 8 <= width; i += 8)
            _mm256_storeu_ps(dst + i, _mm256_mul_ps(_mm256_loadu_ps(weight + i), _mm256_mul_ps(_mm256_loadu_ps(src + i), vi)));
        for (; i < width; i++) dst[i] = weight[i] * (src[i] * inv);
    }
}
#endif

void accm_exp(float *p, size_t n) {
#if ACCM_X86
    if (accm_kernels_simd_level()) { exp_avx2(p, n); return; }
#endif
    accm_exp_portable(p, n);
}

void accm_sigmoid_gate(float *p, size_t n, float alpha) {
#if ACCM_X86
    if (accm_kernels_simd_level()) { sigmoid_gate_avx2(p, n, alpha); return; }
#endif
    accm_sigmoid_gate_portable(p, n, alpha);
}

void accm_gelu_tanh(float *p, size_t n) {
#if ACCM_X86
    if (accm_kernels_simd_level()) { gelu_tanh_avx2(p, n); return; }
#endif
    accm_gelu_tanh_portable(p, n);
}

void accm_gelu_erf(float *p, size_t n) {
#if ACCM_X86
    if (accm_kernels_simd_level()) { gelu_erf_avx2(p, n); return; }
#endif
    accm_gelu_erf_portable(p, n);
}

void accm_softmax(float *p, size_t n) {
#if ACCM_X86
    if (accm_kernels_simd_level()) { softmax_avx2(p, n); return; }
#endif
    accm_softmax_portable(p, n);
}

void accm_layer_norm(const float *x, float *y, size_t rows, size_t width, const float *weight, const float *bias,
                     float epsilon) {
#if ACCM_X86
    if (accm_kernels_simd_level()) { layer_norm_avx2(x, y, rows, width, weight, bias, epsilon); return; }
#endif
    accm_layer_norm_portable(x, y, rows, width, weight, bias, epsilon);
}

void accm_rms_norm(const float *x, float *y, size_t rows, size_t width, const float *weight, float epsilon) {
#if ACCM_X86
    if (accm_kernels_simd_level()) { rms_norm_avx2(x, y, rows, width, weight, epsilon); return; }
#endif
    accm_rms_norm_portable(x, y, rows, width, weight, epsilon);
}
