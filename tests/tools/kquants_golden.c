/* Golden hashes of llama.cpp's own K-quant code for tests/unit/test_kquants.c (a developer tool, not part
 * of make test; herd's library contains no llama.cpp code — this program only *calls* it).
 *
 *   tests/ref/setup.sh
 *   git clone -q build/ref/node_modules/node-llama-cpp/llama/gitRelease.bundle /tmp/llama.cpp
 *   L=/tmp/llama.cpp/ggml; gcc -std=c11 -O2 -c $L/src/ggml-quants.c -I$L/include -I$L/src -o /tmp/ggml-quants.o
 *   gcc -std=c11 -O2 -D_GNU_SOURCE -Iinclude -Isrc tests/tools/kquants_golden.c /tmp/ggml-quants.o -lm \
 *       -o /tmp/kquants_golden && /tmp/kquants_golden
 *
 * It prints the k_golden_* tables of test_kquants.c. The data generators below must stay identical to
 * the test's (gen_blocks, gen_weights, gen_acts there): a mismatch shows up as a failing hash, never as a
 * silent pass. Block layouts come from herd's src/kernels/kquants.h (the test proves they are llama.cpp's).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kquants.h"

/* llama.cpp (ggml-quants.c), declared here with void * for the blocks */
void dequantize_row_q2_K(const void *x, float *y, int64_t k);
void dequantize_row_q3_K(const void *x, float *y, int64_t k);
void dequantize_row_q4_K(const void *x, float *y, int64_t k);
void dequantize_row_q5_K(const void *x, float *y, int64_t k);
void dequantize_row_q6_K(const void *x, float *y, int64_t k);
void quantize_row_q2_K_ref(const float *x, void *y, int64_t k);
void quantize_row_q3_K_ref(const float *x, void *y, int64_t k);
void quantize_row_q4_K_ref(const float *x, void *y, int64_t k);
void quantize_row_q5_K_ref(const float *x, void *y, int64_t k);
void quantize_row_q6_K_ref(const float *x, void *y, int64_t k);
void quantize_row_q4_0_ref(const float *x, void *y, int64_t k);
void quantize_row_q8_0_ref(const float *x, void *y, int64_t k);
void quantize_row_q8_K_ref(const float *x, void *y, int64_t k);

/* what ggml-quants.o needs from the rest of ggml (never called on these paths) */
void ggml_abort(const char *file, int line, const char *fmt, ...) {
    (void)fmt;
    fprintf(stderr, "ggml_abort %s:%d\n", file, line);
    abort();
}
size_t ggml_row_size(int type, int64_t ne) {
    (void)type, (void)ne;
    abort();
}
size_t ggml_type_size(int type) {
    (void)type;
    abort();
}
const char *ggml_type_name(int type) {
    (void)type;
    return "?";
}

/* ---- generators: identical to test_kquants.c ------------------------------------------------------ */

static uint64_t g_rng;

static uint64_t rnd_u64(void) {
    uint64_t z = (g_rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double rnd_unit(void) {
    return (double)(rnd_u64() >> 11) * 0x1p-53;
}

static double rnd_normal(void) { /* Irwin-Hall: 12 uniforms - 6, mean 0, variance 1; IEEE ops only */
    double s = 0;
    for (int i = 0; i < 12; i++) s += rnd_unit();
    return s - 6;
}

static double rnd_t3(void) { /* Student-t with 3 degrees of freedom (from the approximate normals) */
    double z = rnd_normal(), c = 0;
    for (int i = 0; i < 3; i++) {
        double u = rnd_normal();
        c += u * u;
    }
    return z / sqrt(c / 3 + 1e-12);
}

static uint16_t rnd_f16_scale(void) { /* a normal half in [2^-14, 2^5), random sign */
    uint16_t e = (uint16_t)(1 + rnd_u64() % 20), m = (uint16_t)(rnd_u64() & 0x3ff);
    return (uint16_t)(((rnd_u64() & 1) << 15) | (e << 10) | m);
}

static const int k_types[5] = {10, 11, 12, 13, 14};
static const size_t k_bytes[5] = {sizeof(block_q2_K), sizeof(block_q3_K), sizeof(block_q4_K),
                                  sizeof(block_q5_K), sizeof(block_q6_K)};

/* nb random blocks of K type ti: random bytes, then sane f16 scales */
static void gen_blocks(int ti, void *dst, int nb) {
    uint8_t *p = dst;
    for (size_t i = 0; i < (size_t)nb * k_bytes[ti]; i++) p[i] = (uint8_t)rnd_u64();
    for (int b = 0; b < nb; b++) {
        uint8_t *blk = p + (size_t)b * k_bytes[ti];
        uint16_t d = rnd_f16_scale(), dmin = (uint16_t)(rnd_f16_scale() & 0x7fff);
        switch (k_types[ti]) {
        case 10: memcpy(&((block_q2_K *)blk)->d, &d, 2), memcpy(&((block_q2_K *)blk)->dmin, &dmin, 2); break;
        case 11: memcpy(&((block_q3_K *)blk)->d, &d, 2); break;
        case 12: memcpy(&((block_q4_K *)blk)->d, &d, 2), memcpy(&((block_q4_K *)blk)->dmin, &dmin, 2); break;
        case 13: memcpy(&((block_q5_K *)blk)->d, &d, 2), memcpy(&((block_q5_K *)blk)->dmin, &dmin, 2); break;
        default: memcpy(&((block_q6_K *)blk)->d, &d, 2); break;
        }
    }
}

/* weights: dist 0 normal, 1 Student-t(3), std-ish 0.02 */
static void gen_weights(int dist, float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)(0.02 * (dist ? rnd_t3() : rnd_normal()));
}

/* activations: blocks of 256 at scales 2^-20..2^20, block 5 all zero */
static void gen_acts(float *x, int64_t n) {
    for (int64_t b = 0; b < n / 256; b++) {
        double s = ldexp(1, (int)(rnd_u64() % 41) - 20);
        for (int i = 0; i < 256; i++) x[256 * b + i] = b == 5 ? 0.0f : (float)(s * rnd_normal());
    }
}

static uint64_t fnv(const void *p, size_t n) {
    const uint8_t *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

#define NB 64
#define N (NB * 256)

int main(void) {
    typedef void (*deq)(const void *, float *, int64_t);
    typedef void (*qnt)(const float *, void *, int64_t);
    const deq dq[5] = {dequantize_row_q2_K, dequantize_row_q3_K, dequantize_row_q4_K, dequantize_row_q5_K,
                       dequantize_row_q6_K};
    const qnt qk[7] = {quantize_row_q2_K_ref, quantize_row_q3_K_ref, quantize_row_q4_K_ref, quantize_row_q5_K_ref,
                       quantize_row_q6_K_ref, quantize_row_q4_0_ref, quantize_row_q8_0_ref};
    static uint8_t blocks[N * 2];
    static float x[N], y[N];

    g_rng = 1;
    printf("static const uint64_t k_golden_dequant[5] = {");
    for (int t = 0; t < 5; t++) {
        gen_blocks(t, blocks, NB);
        dq[t](blocks, y, N);
        printf("%s0x%016llxull", t ? ", " : "", (unsigned long long)fnv(y, sizeof y));
    }
    printf("};\n");

    g_rng = 2;
    gen_acts(x, N);
    memset(blocks, 0, sizeof blocks);
    quantize_row_q8_K_ref(x, blocks, N);
    printf("static const uint64_t k_golden_q8_K = 0x%016llxull;\n",
           (unsigned long long)fnv(blocks, NB * sizeof(block_q8_K)));

    /* bytes per 256 elements of q2_K..q6_K, q4_0 (8 blocks of 18), q8_0 (8 of 34) */
    const size_t qbytes[7] = {84, 110, 144, 176, 210, 144, 272};
    printf("static const uint64_t k_golden_quant[2][7] = {");
    for (int dist = 0; dist < 2; dist++) {
        g_rng = 3 + (uint64_t)dist;
        gen_weights(dist, x, N);
        printf("%s{", dist ? ", " : "");
        for (int t = 0; t < 7; t++) {
            memset(blocks, 0, sizeof blocks);
            qk[t](x, blocks, N);
            printf("%s0x%016llxull", t ? ", " : "", (unsigned long long)fnv(blocks, NB * qbytes[t]));
        }
        printf("}");
    }
    printf("};\n");
    return 0;
}
