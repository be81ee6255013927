// The engine's in-memory layout of Q4_0 matrices: rows interleaved 8 at a time (see accm_kernels.h), so that
// one 32-byte load gives 4 weights of each of 8 rows, the operand both integer kernels (decode's matrix-vector
// product and prefill's matrix product) multiply with a broadcast activation word. Row-major Q4_0 (what a
// pre-quantized file holds and what quantization writes) becomes this layout by moving 4-byte words: word k of
// a row's 16-byte block goes to chunk k, lane r.

#include "accm_kernels.h"
#include "internal.h"

#include <string.h>

/// Bytes of a block of one group: 8 rows × 16 bytes.
#define GROUP_BLOCK_BYTES 128

size_t accm_q4_0x8_groups(size_t rows) { return (rows + 7) / 8; }

void accm_q4_0x8_pack(const uint8_t *q, const uint16_t *scales, size_t count, size_t cols, size_t first_row,
                      uint8_t *w, uint16_t *ws) {
    size_t blocks = cols / ACCM_QUANT_BLOCK;
    for (size_t i = 0; i < count; i++) {
        size_t row = first_row + i, group = row / 8, lane = row % 8;
        const uint8_t *source = q + i * cols / 2;
        for (size_t b = 0; b < blocks; b++) {
            uint8_t *block = w + (group * blocks + b) * GROUP_BLOCK_BYTES + lane * 4;
            for (int k = 0; k < 4; k++) memcpy(block + k * 32, source + b * 16 + k * 4, 4);
            ws[(group * blocks + b) * 8 + lane] = accm_load_u16(scales + i * blocks + b);
        }
    }
}

void accm_q4_0x8_unpack(const uint8_t *w, const uint16_t *ws, size_t cols, size_t first_row, size_t count,
                        uint8_t *q, uint16_t *scales) {
    size_t blocks = cols / ACCM_QUANT_BLOCK;
    for (size_t i = 0; i < count; i++) {
        size_t row = first_row + i, group = row / 8, lane = row % 8;
        uint8_t *target = q + i * cols / 2;
        for (size_t b = 0; b < blocks; b++) {
            const uint8_t *block = w + (group * blocks + b) * GROUP_BLOCK_BYTES + lane * 4;
            for (int k = 0; k < 4; k++) memcpy(target + b * 16 + k * 4, block + k * 32, 4);
            uint16_t s = ws[(group * blocks + b) * 8 + lane];
            memcpy(scales + i * blocks + b, &s, 2);
        }
    }
}

void accm_q4_0x8_pad(uint8_t *w, uint16_t *ws, size_t rows, size_t cols) {
    size_t blocks = cols / ACCM_QUANT_BLOCK, group = rows / 8;
    if (rows % 8 == 0) return;
    for (size_t lane = rows % 8; lane < 8; lane++)
        for (size_t b = 0; b < blocks; b++) {
            uint8_t *block = w + (group * blocks + b) * GROUP_BLOCK_BYTES + lane * 4;
            for (int k = 0; k < 4; k++) memset(block + k * 32, 0x88, 4);  // q = 8: weight 0
            ws[(group * blocks + b) * 8 + lane] = 0;
        }
}

void accm_q4_0x8_dequantize(const uint8_t *w, const uint16_t *ws, size_t cols, size_t first_row, size_t count, float *out) {
    size_t blocks = cols / ACCM_QUANT_BLOCK;
    for (size_t i = 0; i < count; i++) {
        size_t row = first_row + i, group = row / 8, lane = row % 8;
        for (size_t b = 0; b < blocks; b++) {  // a block at a time, as row-major Q4_0: no buffer for a whole row
            const uint8_t *source = w + (group * blocks + b) * GROUP_BLOCK_BYTES + lane * 4;
            uint8_t block[16];
            for (int k = 0; k < 4; k++) memcpy(block + k * 4, source + k * 32, 4);
            accm_dequantize_q4_0(block, ws + (group * blocks + b) * 8 + lane, ACCM_QUANT_BLOCK,
                                 out + i * cols + b * ACCM_QUANT_BLOCK);
        }
    }
}

int accm_q4_0x8_weight(const uint8_t *w, const uint16_t *ws, size_t cols, size_t row, size_t column, float *scale) {
    size_t blocks = cols / ACCM_QUANT_BLOCK, group = row / 8, lane = row % 8, b = column / ACCM_QUANT_BLOCK;
    size_t j = column % ACCM_QUANT_BLOCK, word = j % 16;
    uint8_t byte = w[(group * blocks + b) * GROUP_BLOCK_BYTES + (word / 4) * 32 + lane * 4 + word % 4];
    if (scale) *scale = accm_f16_value(ws[(group * blocks + b) * 8 + lane]);
    return (j < 16 ? byte & 0x0F : byte >> 4) - 8;
}
