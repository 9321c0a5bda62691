/* Random valid K-quant blocks: weights that no quantizer produced, so that a model written with them
 * tests how a reader decodes the layout (quants, bit planes, packed 6-bit scales, mins) independently of
 * herd's quantizer (tests/conformance/kquants_llama_cpp.sh compares llama.cpp and herd on such files).
 * The bytes are random; only the f16 super-block scales are computed, from the block's own values:
 *   types with mins (q2_K, q4_K, q5_K): x = d A - dmin B with A = scale * q, B = min from the random bytes;
 *       dmin = d sum(A) / sum(B) makes the block's mean 0, then d sets the RMS;
 *   q3_K, q6_K: x = d A (signed), d sets the RMS (random sign). */
#include "synth_blocks.h"

#include <math.h>
#include <string.h>

#include "../base/log.h"
#include "../kernels/kernels.h"
#include "../kernels/kquants.h"
#include "../kernels/types.h"
#include "herd.h"

bool synth_random_blocks_type(int type) {
    return type == HERD_TYPE_Q2_K || type == HERD_TYPE_Q3_K || type == HERD_TYPE_Q4_K || type == HERD_TYPE_Q5_K ||
           type == HERD_TYPE_Q6_K;
}

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void synth_random_blocks(int type, uint8_t *dst, int64_t n, float rms, uint64_t seed) {
    const kernel_type_ops *o = kernels_type_isa(type, KERNEL_ISA_REF);
    HERD_ASSERT(o && synth_random_blocks_type(type) && n % QK_K == 0);
    const bool has_min = type != HERD_TYPE_Q3_K && type != HERD_TYPE_Q6_K;
    const uint16_t one = fp32_to_fp16(1.0f);
    float A[QK_K], B[QK_K];
    for (int64_t b = 0; b < n / QK_K; b++) {
        uint8_t *blk = dst + b * o->block_bytes;
        for (int64_t i = 0; i < o->block_bytes; i += 8) {
            uint64_t r = splitmix(&seed);
            memcpy(blk + i, &r, (size_t)(o->block_bytes - i < 8 ? o->block_bytes - i : 8));
        }
        kq_block_set_scales(type, blk, one, 0); /* A: the scale * quant part */
        o->to_f32(blk, A, QK_K);
        double sa = 0, sb = 0, r = 0;
        if (has_min) {
            kq_block_set_scales(type, blk, 0, one); /* -B: the min part */
            o->to_f32(blk, B, QK_K);
            for (int e = 0; e < QK_K; e++) sa += A[e], sb -= B[e];
        }
        double ratio = sb > 0 ? sa / sb : 0, ss = 0; /* dmin = d * ratio */
        for (int e = 0; e < QK_K; e++) {
            double v = A[e] + (has_min ? ratio * B[e] : 0);
            ss += v * v;
        }
        r = sqrt(ss / QK_K);
        float d = r > 0 ? (float)(rms / r) : 0.0f;
        if (!has_min && (splitmix(&seed) & 1)) d = -d;
        kq_block_set_scales(type, blk, fp32_to_fp16(d), fp32_to_fp16((float)(d * ratio)));
    }
}
