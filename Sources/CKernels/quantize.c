// Q8_0/Q4_0 block quantization of weights (at load), their dequantization (prefill converts a block of
// rows at a time), and the 8-bit quantization of an activation vector (decode's integer dot products).

#include "accm_kernels.h"
#include "internal.h"

void accm_quantize_q8_0(const float *x, size_t n, int8_t *q, uint16_t *scales) {
    for (size_t b = 0; b < n / ACCM_QUANT_BLOCK; b++) {
        const float *v = x + b * ACCM_QUANT_BLOCK;
        float amax = 0;
        for (int j = 0; j < ACCM_QUANT_BLOCK; j++) amax = fmaxf(amax, fabsf(v[j]));
        float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
        scales[b] = accm_f16_bits(d);
        for (int j = 0; j < ACCM_QUANT_BLOCK; j++) q[b * ACCM_QUANT_BLOCK + j] = (int8_t)roundf(v[j] * id);
    }
}

void accm_quantize_q4_0(const float *x, size_t n, uint8_t *q, uint16_t *scales) {
    const int half = ACCM_QUANT_BLOCK / 2;
    for (size_t b = 0; b < n / ACCM_QUANT_BLOCK; b++) {
        const float *v = x + b * ACCM_QUANT_BLOCK;
        float amax = 0, extreme = 0;
        for (int j = 0; j < ACCM_QUANT_BLOCK; j++) {
            if (amax < fabsf(v[j])) { amax = fabsf(v[j]); extreme = v[j]; }
        }
        float d = extreme / -8.0f, id = d != 0 ? 1.0f / d : 0.0f;
        scales[b] = accm_f16_bits(d);
        for (int j = 0; j < half; j++) {
            int low = (int)(int8_t)(v[j] * id + 8.5f), high = (int)(int8_t)(v[j + half] * id + 8.5f);
            low = low < 15 ? low : 15;
            high = high < 15 ? high : 15;
            q[b * half + j] = (uint8_t)(low | (high << 4));
        }
    }
}

void accm_dequantize_q8_0_portable(const int8_t *q, const uint16_t *scales, size_t n, float *out) {
    for (size_t b = 0; b < n / ACCM_QUANT_BLOCK; b++) {
        float d = accm_f16_value(accm_load_u16(scales + b));
        for (int j = 0; j < ACCM_QUANT_BLOCK; j++) out[b * ACCM_QUANT_BLOCK + j] = d * (float)q[b * ACCM_QUANT_BLOCK + j];
    }
}

void accm_dequantize_q4_0_portable(const uint8_t *q, const uint16_t *scales, size_t n, float *out) {
    const int half = ACCM_QUANT_BLOCK / 2;
    for (size_t b = 0; b < n / ACCM_QUANT_BLOCK; b++) {
        float d = accm_f16_value(accm_load_u16(scales + b));
        for (int j = 0; j < half; j++) {
            uint8_t byte = q[b * half + j];
            out[b * ACCM_QUANT_BLOCK + j] = d * (float)((int)(byte & 0x0F) - 8);
            out[b * ACCM_QUANT_BLOCK + j + half] = d * (float)((int)(byte >> 4) - 8);
        }
    }
}

void accm_quantize_activation_portable(const float *x, size_t n, int8_t *q, float *scales) {
    for (size_t b = 0; b < n / ACCM_QUANT_BLOCK; b++) {
        const float *v = x + b * ACCM_QUANT_BLOCK;
        float amax = 0;
        for (int j = 0; j < ACCM_QUANT_BLOCK; j++) amax = fmaxf(amax, fabsf(v[j]));
        float id = amax != 0 ? 127.0f / amax : 0.0f;
        scales[b] = amax / 127.0f;
        for (int j = 0; j < ACCM_QUANT_BLOCK; j++) q[b * ACCM_QUANT_BLOCK + j] = (int8_t)nearbyintf(v[j] * id);
    }
}

#if ACCM_X86
ACCM_AVX2 static void dequantize_q8_0_avx2(const int8_t *q, const uint16_t *scales, size_t n, float *out) {
    for (size_t b = 0; b < n / ACCM_QUANT_BLOCK; b++) {
        __m256 d = _mm256_set1_ps(_cvtsh_ss(accm_load_u16(scales + b)));
        const int8_t *block = q + b * ACCM_QUANT_BLOCK;
        float *o = out + b * ACCM_QUANT_BLOCK;
        for (int j = 0; j < ACCM_QUANT_BLOCK; j += 8) {
            __m256i wide = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(block + j)));
            _mm256_storeu_ps(o + j, _mm256_mul_ps(d, _mm256_cvtepi32_ps(wide)));
        }
    }
}

ACCM_AVX2 static void dequantize_q4_0_avx2(const uint8_t *q, const uint16_t *scales, size_t n, float *out) {
    const __m128i mask = _mm_set1_epi8(0x0F), eight = _mm_set1_epi8(8);
    for (size_t b = 0; b < n / ACCM_QUANT_BLOCK; b++) {
        __m256 d = _mm256_set1_ps(_cvtsh_ss(accm_load_u16(scales + b)));
        __m128i packed = _mm_loadu_si128((const __m128i *)(q + b * ACCM_QUANT_BLOCK / 2));
        __m128i low = _mm_sub_epi8(_mm_and_si128(packed, mask), eight);
        __m128i high = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(packed, 4), mask), eight);
        float *o = out + b * ACCM_QUANT_BLOCK;
        _mm256_storeu_ps(o, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(low))));
        _mm256_storeu_ps(o + 8, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(low, 8)))));
        _mm256_storeu_ps(o + 16, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(high))));
        _mm256_storeu_ps(o + 24, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(high, 8)))));
    }
}

ACCM_AVX2 static void quantize_activation_avx2(const float *x, size_t n, int8_t *q, float *scales) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (size_t b = 0; b < n / ACCM_QUANT_BLOCK; b++) {
        const float *v = x + b * ACCM_QUANT_BLOCK;
        __m256 v0 = _mm256_loadu_ps(v), v1 = _mm256_loadu_ps(v + 8), v2 = _mm256_loadu_ps(v + 16), v3 = _mm256_loadu_ps(v + 24);
        __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
                                 _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        float amax = _mm_cvtss_f32(m4);
        float id = amax != 0 ? 127.0f / amax : 0.0f;
        scales[b] = amax / 127.0f;
        __m256 s = _mm256_set1_ps(id);
#define ROUNDING (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
        __m256i i0 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v0, s), ROUNDING));
        __m256i i1 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v1, s), ROUNDING));
        __m256i i2 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v2, s), ROUNDING));
        __m256i i3 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v3, s), ROUNDING));
        __m256i packed = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
        _mm256_storeu_si256((__m256i *)(q + b * ACCM_QUANT_BLOCK), _mm256_permutevar8x32_epi32(packed, order));
    }
}
#endif

void accm_dequantize_q8_0(const int8_t *q, const uint16_t *scales, size_t n, float *out) {
#if ACCM_X86
    if (accm_kernels_simd_level()) { dequantize_q8_0_avx2(q, scales, n, out); return; }
#endif
    accm_dequantize_q8_0_portable(q, scales, n, out);
}

void accm_dequantize_q4_0(const uint8_t *q, const uint16_t *scales, size_t n, float *out) {
#if ACCM_X86
    if (accm_kernels_simd_level()) { dequantize_q4_0_avx2(q, scales, n, out); return; }
#endif
    accm_dequantize_q4_0_portable(q, scales, n, out);
}

void accm_quantize_activation(const float *x, size_t n, int8_t *q, float *scales) {
#if ACCM_X86
    if (accm_kernels_simd_level()) { quantize_activation_avx2(x, n, q, scales); return; }
#endif
    accm_quantize_activation_portable(x, n, q, scales);
}
