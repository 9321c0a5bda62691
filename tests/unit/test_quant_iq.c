/* The low-bit quantizers (src/quant/quant_iq.c: IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M, TQ1_0,
 * TQ2_0):
 *   error         random rows (uniform values, random importance weights) quantize to values whose NMSE,
 *                 dequantized by the kernels' reference, is within a bound of the type's bits (measured here,
 *                 bound ~1.5x); the same bytes twice; without weights for the types that allow it too;
 *   zero rows     an all-zero row comes back all zero (every scale 0), no NaN;
 *   threads       four threads quantizing at once from a cold start (the lattice tables are built on first
 *                 use, under a lock) write the bytes one thread writes (ASan / the lock's ordering);
 *   dispatch      quant_row_lowbit takes exactly these types; quant_lowbit_needs_weights names IQ2_XXS,
 *                 IQ2_XS and IQ1_S.
 * ggml's own bytes are checked by tests/conformance/quant_mixes_llama_cpp.sh. Exit 0 = pass, 1 = fail. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herd.h"
#include "kernels/kernels.h"
#include "quant/quant.h"
#include "testutil.h"

enum { N = 512, ROWS = 8 };

static const struct {
    int type;
    double bound;      /* NMSE with weights */
    bool weightless;   /* runs without weights */
} k_types[] = {
    {HERD_TYPE_IQ2_XXS, 0.15, false}, {HERD_TYPE_IQ2_XS, 0.12, false}, {HERD_TYPE_IQ2_S, 0.10, true},
    {HERD_TYPE_IQ3_XXS, 0.06, true},  {HERD_TYPE_IQ3_S, 0.03, true},  {HERD_TYPE_IQ1_S, 0.30, false},
    {HERD_TYPE_IQ1_M, 0.25, true},    {HERD_TYPE_TQ1_0, 0.35, true},   {HERD_TYPE_TQ2_0, 0.35, true},
};
enum { N_TYPES = sizeof k_types / sizeof k_types[0] };

static float g_x[ROWS][N], g_qw[N];

static double row_nmse(int type, const float *x, const float *qw, uint8_t *q, uint8_t *q2, float *y, int *differ) {
    size_t bytes = (size_t)kernels_row_bytes(type, N);
    CHECK(quant_row_lowbit(type, x, q, N, qw), "%s taken", herd_type_name(type));
    quant_row_lowbit(type, x, q2, N, qw);
    *differ += memcmp(q, q2, bytes) != 0;
    kernels_type(type)->to_f32(q, y, N);
    double err = 0, ref = 0;
    for (int j = 0; j < N; j++) err += ((double)x[j] - y[j]) * ((double)x[j] - y[j]), ref += (double)x[j] * x[j];
    return err / ref;
}

static void test_error(void) {
    uint8_t *q = malloc(1024), *q2 = malloc(1024);
    float y[N];
    for (int k = 0; k < N_TYPES; k++) {
        int t = k_types[k].type;
        for (int w = 0; w < (k_types[k].weightless ? 2 : 1); w++) {
            const float *qw = w ? NULL : g_qw;
            double sum = 0;
            int differ = 0;
            for (int r = 0; r < ROWS; r++) sum += row_nmse(t, g_x[r], qw, q, q2, y, &differ);
            double nmse = sum / ROWS;
            CHECK(differ == 0, "%s: not deterministic", herd_type_name(t));
            CHECK(nmse < k_types[k].bound * (w ? 1.3 : 1.0), "%s%s: NMSE %.3g >= bound", herd_type_name(t),
                  w ? " (no weights)" : "", nmse);
            printf("  %-8s %-12s NMSE %.3e\n", herd_type_name(t), w ? "no weights" : "weights", nmse);
        }
        float zero[N] = {0};
        quant_row_lowbit(t, zero, q, N, g_qw);
        kernels_type(t)->to_f32(q, y, N);
        int nonzero = 0;
        for (int j = 0; j < N; j++) nonzero += y[j] != 0.0f;
        CHECK(nonzero == 0, "%s: a zero row comes back with %d non-zero values", herd_type_name(t), nonzero);
    }
    free(q);
    free(q2);
}

typedef struct {
    int type;
    uint8_t out[ROWS][1024];
} thread_job;

static void *quantize_rows(void *arg) {
    thread_job *j = arg;
    for (int r = 0; r < ROWS; r++) quant_row_lowbit(j->type, g_x[r], j->out[r], N, g_qw);
    return NULL;
}

/* run before test_error: the tables are cold, so the threads race to build them */
static void test_threads(void) {
    static thread_job jobs[4];
    pthread_t th[4];
    int types[2] = {HERD_TYPE_IQ2_S, HERD_TYPE_IQ3_XXS};
    for (int i = 0; i < 4; i++) {
        jobs[i].type = types[i % 2];
        CHECK(pthread_create(&th[i], NULL, quantize_rows, &jobs[i]) == 0, "pthread_create");
    }
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    for (int i = 2; i < 4; i++)
        CHECK(memcmp(jobs[i].out, jobs[i - 2].out, sizeof jobs[i].out) == 0, "%s: threads disagree",
              herd_type_name(jobs[i].type));
}

static void test_dispatch(void) {
    float x[N] = {0};
    uint8_t q[1024];
    CHECK(!quant_row_lowbit(HERD_TYPE_Q4_K, x, q, N, g_qw), "Q4_K is not a low-bit type");
    CHECK(!quant_row_lowbit(HERD_TYPE_IQ4_XS, x, q, N, g_qw), "IQ4_XS is not a low-bit type");
    int need = 0;
    for (int k = 0; k < N_TYPES; k++) need += quant_lowbit_needs_weights(k_types[k].type) != !k_types[k].weightless;
    CHECK(need == 0, "quant_lowbit_needs_weights disagrees with the table");
}

int main(void) {
    tu_rng = 23;
    kernels_init();
    for (int r = 0; r < ROWS; r++)
        for (int j = 0; j < N; j++) g_x[r][j] = tu_sym() * (r == ROWS - 1 ? 1e-3f : 1.0f);
    for (int j = 0; j < N; j++) g_qw[j] = 0.05f + (tu_sym() + 1.0f);
    test_threads();
    test_error();
    test_dispatch();
    return TU_DONE("test_quant_iq");
}
