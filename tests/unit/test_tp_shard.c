/* Tensor-parallel shards (src/model/shard.c, forward.h's forward_tp) without MPI: N shards of a small
 * random model run in N threads of one process, exchanging their slices through shared memory at the
 * forward pass's gather points, as src/dist/ does over MPI. Checks, for F32, Q8_0 and Q4_0 weights and GQA
 * ratios 1, 2 and 4 at N = 2 and 4:
 *  - rank 0's logits of a 12-token prompt and of 3 decode steps are bit-identical to the whole model's;
 *  - a shard holds 1/N of the heads, its KV cache 1/N of the KV dimension, rows cut as model_shard_range says;
 *  - a split that does not divide the KV heads is refused with one line. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "herd.h"
#include "model/forward.h"
#include "model/model.h"
#include "testutil.h"
#include "testvocab.h"

static char g_dir[256];


#define NMAX 4
#define NP 12

typedef struct shared shared;
typedef struct {
    shared *sh;
    int rank;
    herd_model *m;
    forward_state *fs;
    forward_tp tp;
    int64_t off[4][NMAX + 1];
    float *logits; /* [NP + 3][n_vocab] */
} rank_t;

struct shared {
    int n;
    pthread_barrier_t bar;
    float *slot[NMAX]; /* each rank's slice of the current exchange */
    rank_t r[NMAX];
    const int32_t *toks;
};

/* the in-process all-gather: publish my slice, wait for all, assemble, wait until all have read */
static void gather(void *ctx, float *buf, int64_t n, int what) {
    rank_t *me = ctx;
    shared *sh = me->sh;
    const int64_t *off = me->off[what], full = off[sh->n], wl = off[me->rank + 1] - off[me->rank];
    memcpy(sh->slot[me->rank], buf, (size_t)(n * wl) * sizeof(float));
    pthread_barrier_wait(&sh->bar);
    for (int64_t t = 0; t < n; t++)
        for (int p = 0; p < sh->n; p++) {
            const int64_t wp = off[p + 1] - off[p];
            memcpy(buf + t * full + off[p], sh->slot[p] + t * wp, (size_t)wp * sizeof(float));
        }
    pthread_barrier_wait(&sh->bar);
}

static void *run_rank(void *arg) {
    rank_t *me = arg;
    const int64_t nv = me->m->hp.n_vocab;
    bool want[NP];
    for (int i = 0; i < NP; i++) want[i] = true;
    forward_batch(me->fs, me->sh->toks, NULL, NP, want, me->logits);
    for (int i = 0; i < 3; i++) forward_batch(me->fs, me->sh->toks + i, NULL, 1, want, me->logits + (NP + i) * nv);
    return NULL;
}

static void check_split(const char *path, const char *name, int n) {
    herd_model *whole = NULL;
    CHECK(model_load(path, 0, &whole) == 0, "load %s: %s", name, herd_last_error());
    if (!whole) return;
    const int64_t nv = whole->hp.n_vocab;
    int32_t toks[NP];
    for (int i = 0; i < NP; i++) toks[i] = (int32_t)((i * 37 + 11) % nv);
    float *ref = malloc(sizeof(float) * (size_t)((NP + 3) * nv));
    forward_state *fs = NULL;
    CHECK(forward_state_new(whole, 1, 64, 32, HERD_TYPE_F32, 1, &fs) == 0, "whole state");
    bool want[NP];
    for (int i = 0; i < NP; i++) want[i] = true;
    forward_batch(fs, toks, NULL, NP, want, ref);
    for (int i = 0; i < 3; i++) forward_batch(fs, toks + i, NULL, 1, want, ref + (NP + i) * nv);
    forward_state_free(fs);

    shared sh = {.n = n, .toks = toks};
    pthread_barrier_init(&sh.bar, NULL, (unsigned)n);
    const int64_t full[4] = {whole->layers[0].wo.n_in, whole->hp.n_embd, whole->layers[0].w_down.n_in, nv};
    bool ok = true;
    for (int r = 0; r < n; r++) {
        rank_t *me = &sh.r[r];
        me->sh = &sh;
        me->rank = r;
        sh.slot[r] = malloc(sizeof(float) * (size_t)(32 * nv));
        ok &= model_load_shard(path, 0, r, n, &me->m) == 0;
        CHECK(me->m, "%s shard %d of %d: %s", name, r, n, herd_last_error());
        if (!me->m) continue;
        CHECK(me->m->hp.n_head == whole->hp.n_head / n && me->m->hp.n_head_kv == whole->hp.n_head_kv / n,
              "%s: shard %d holds 1/%d of the heads", name, r, n);
        for (int w = 0; w < 4; w++)
            for (int p = 0; p < n; p++) {
                int64_t r0, r1;
                if (w == FORWARD_TP_ATT) r0 = full[w] / n * p, r1 = full[w] / n * (p + 1);
                else model_shard_range(full[w], p, n, &r0, &r1);
                me->off[w][p] = r0;
                me->off[w][p + 1] = r1;
            }
        CHECK(me->m->layers[1].w_down.n_out == me->off[FORWARD_TP_EMBD][r + 1] - me->off[FORWARD_TP_EMBD][r] &&
              me->m->output.n_out == me->off[FORWARD_TP_VOCAB][r + 1] - me->off[FORWARD_TP_VOCAB][r],
              "%s: shard %d's rows are model_shard_range's", name, r);
        ok &= forward_state_new(me->m, 1, 64, 32, HERD_TYPE_F32, 1, &me->fs) == 0;
        if (!me->fs) continue;
        CHECK(forward_kv(me->fs)->kv_dim * n == whole->hp.n_head_kv * whole->hp.head_dim, "%s: KV cache of 1/%d", name, n);
        me->tp = (forward_tp){.ctx = me, .gather = gather};
        forward_set_tp(me->fs, &me->tp);
        me->logits = malloc(sizeof(float) * (size_t)((NP + 3) * nv));
    }
    if (ok) {
        pthread_t th[NMAX];
        for (int r = 0; r < n; r++) pthread_create(&th[r], NULL, run_rank, &sh.r[r]);
        for (int r = 0; r < n; r++) pthread_join(th[r], NULL);
        for (int r = 0; r < n; r++)
            CHECK(memcmp(sh.r[r].logits, ref, sizeof(float) * (size_t)((NP + 3) * nv)) == 0,
                  "%s: rank %d of %d: prompt and decode logits bit-identical to the whole model", name, r, n);
    }
    for (int r = 0; r < n; r++) {
        forward_state_free(sh.r[r].fs);
        model_free(sh.r[r].m);
        free(sh.r[r].logits);
        free(sh.slot[r]);
    }
    pthread_barrier_destroy(&sh.bar);
    model_free(whole);
    free(ref);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/herd-test-tp-XXXXXX");
    CHECK(mkdtemp(g_dir) != NULL, "mkdtemp");
    char vocab[512], path[512];
    snprintf(vocab, sizeof vocab, "%s/vocab.gguf", g_dir);
    write_vocab(vocab);
    const struct { int type, n_head, n_head_kv; } cases[] = {
        {HERD_TYPE_F32, 4, 4}, {HERD_TYPE_Q8_0, 8, 4}, {HERD_TYPE_Q4_0, 8, 2}, {HERD_TYPE_Q8_0, 4, 4}, {HERD_TYPE_F32, 8, 2}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        snprintf(path, sizeof path, "%s/m%zu.gguf", g_dir, c);
        herd_synth_params p = {.vocab_path = vocab, .n_embd = 64, .n_layer = 2, .n_head = cases[c].n_head,
                               .n_head_kv = cases[c].n_head_kv, .head_dim = 16, .n_ff = 96, .n_ctx_train = 256,
                               .rope_theta = 10000, .norm_eps = 1e-5f, .rope_scale = 8, .tied_output = c == 3,
                               .type = cases[c].type, .output_type = -1, .weight_scale = 0.08f, .seed = 7 + (uint64_t)c};
        CHECK(herd_synth_model(&p, path) == 0, "synth: %s", herd_last_error());
        char name[64];
        snprintf(name, sizeof name, "%s GQA %d%s", herd_type_name(cases[c].type), cases[c].n_head / cases[c].n_head_kv,
                 c == 3 ? " tied" : "");
        for (int n = 2; n <= NMAX; n *= 2)
            if (cases[c].n_head_kv % n == 0) check_split(path, name, n);
        if (c == 0) { /* 4 KV heads do not split 3 ways */
            herd_model *m = NULL;
            CHECK(model_load_shard(path, 0, 0, 3, &m) == HERD_E_ARG && !m, "--tp 3 of 4 KV heads refused");
            CHECK(strstr(herd_last_error(), "does not divide the 4 KV heads") != NULL, "message: %s", herd_last_error());
        }
        unlink(path);
    }
    unlink(vocab);
    rmdir(g_dir);
    return TU_DONE("test_tp_shard");
}
