/* See tmodel.h: parameters, tapes, and the forward/backward pass of one sequence. */
#include "tmodel.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../base/log.h"
#include "../kernels/kernels.h"
#include "../model/ops.h"
#include "../thread/cpus.h"
#include "attn.h"
#include "ops.h"

/* One layer's intermediates (tmodel.h names them). */
typedef struct {
    float *h1, *s1, *q, *k, *v, *o, *lse, *xm, *h2, *s2, *g, *u, *a;
    float *xa[LORA_N_TARGETS]; /* [T][rank]: scale drop(x) A^T of each adapted matrix */
    float *xd[LORA_N_TARGETS]; /* [T][n_in]: drop(x) (only with dropout) */
} ltape;

struct tmodel {
    herd_model *base;
    tmodel_params p;
    int64_t E, qd, kd, F, V, L, H, Hkv, hd;
    thread_pool *pool;
    train_gemm *gemm;
    tlayer *layers;
    train_w embd;        /* embedding rows: the base's (LoRA) or the F32 copy (full) */
    float *g_embd;
    const float *out_norm;
    float *g_out_norm;
    train_w out;         /* the output matrix (tied: the embedding) */
    float *g_out;
    bool lora_on;
    tparam *params;
    int n_params, cap_params;
    /* grads_ready: the layers' shared gradient buffer (layer_g_n floats), where each group starts in
     * params (layer l: layer_p0 + 9 l, nine tensors), the output_norm's and the output's index (-1: tied) */
    float *layer_g;
    int64_t layer_g_n;
    int layer_p0, p_out_norm, p_out;
    /* buffers for sequences of up to max_T tokens */
    int64_t max_T;
    float *xs;           /* [L + 1][T][E] */
    ltape *tapes;        /* [1] when checkpointing, else [L] */
    bool ckpt_asked;     /* p.checkpoint as given: p.checkpoint is what tmodel_reserve chose */
    int n_tapes;
    float *cs;           /* [T][hd] rope cos, sin */
    float *dx, *dxm, *dh, *dq, *dk, *dv, *dO, *da, *du, *dxa, *tmp, *D; /* backward scratch */
    float *hN, *sN, *logits, *logits_t, *dlogits; /* loss head: [T][E], [T], [head_rows][V] x 3 (the last two for
                                                   * distillation only: else d logits overwrite the logits) */
    int64_t head_rows;   /* min(max_T, TRAIN_HEAD_CHUNK) */
    float *hg, *hg_grad; /* [CHUNK][E]: the gathered positions' hidden states and their gradient */
    float *attn_scratch;
    /* current sequence (dropout mask) */
    int64_t cur_step, cur_seq;
};

/* ---- memory trace -------------------------------------------------------------------------------- */

void train_mem_note(const char *what) {
    static int on = -1;
    if (on < 0) on = getenv("HERD_TRAIN_MEM") && strcmp(getenv("HERD_TRAIN_MEM"), "0");
    if (!on) return;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return;
    char line[256];
    long long rss = -1, hwm = -1, anon = -1, file = -1;
    while (fgets(line, sizeof line, f)) {
        sscanf(line, "VmRSS: %lld", &rss), sscanf(line, "VmHWM: %lld", &hwm);
        sscanf(line, "RssAnon: %lld", &anon), sscanf(line, "RssFile: %lld", &file);
    }
    fclose(f);
    fprintf(stderr, "train: memory %-28s RSS %7.0f MB (anon %7.0f, file %7.0f), peak %7.0f MB\n", what, rss / 1024.0,
            anon / 1024.0, file / 1024.0, hwm / 1024.0);
}

/* ---- parameters ------------------------------------------------------------------------------ */

static float *falloc(int64_t n, bool *ok) {
    float *p = calloc((size_t)(n ? n : 1), sizeof(float));
    if (!p) *ok = false;
    return p;
}

static void add_param(tmodel *tm, const char *name, float *w, float *g, int64_t ne0, int64_t ne1, int src_type) {
    if (tm->n_params == tm->cap_params) {
        tm->cap_params = tm->cap_params ? 2 * tm->cap_params : 64;
        tm->params = herd_xrealloc(tm->params, (size_t)tm->cap_params * sizeof *tm->params);
    }
    tparam *p = &tm->params[tm->n_params++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->w = w, p->g = g, p->n = ne0 * ne1, p->ne[0] = ne0, p->ne[1] = ne1, p->src_type = src_type;
}

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* uniform [0, 1) from a counter: the same (key, i) always gives the same number */
static inline float unit_at(uint64_t key, uint64_t i) {
    return (float)(mix64(key + 0x9e3779b97f4a7c15ull * (i + 1)) >> 40) * 0x1p-24f;
}

static const char *k_tensor_names[LORA_N_TARGETS] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                                      "ffn_gate", "ffn_up", "ffn_down"};

/* an F32 copy of a frozen weight */
static float *copy_weight(const weight *w, bool *ok) {
    float *f = falloc(w->n_in * w->n_out, ok);
    if (!f) return NULL;
    train_w tw = {.q = w, .n_in = w->n_in, .n_out = w->n_out};
    for (int64_t r = 0; r < w->n_out; r++) train_w_row(&tw, r, 0, w->n_in, f + r * w->n_in);
    return f;
}

static float *copy_vec(const float *v, int64_t n, bool *ok) {
    float *f = falloc(n, ok);
    if (f) memcpy(f, v, (size_t)n * sizeof(float));
    return f;
}

int tmodel_new(herd_model *base, const tmodel_params *p, tmodel **out) {
    *out = NULL;
    const model_hparams *hp = &base->hp;
    tmodel *tm = herd_xcalloc(1, sizeof *tm);
    tm->base = base;
    tm->p = *p;
    tm->E = hp->n_embd, tm->H = hp->n_head, tm->Hkv = hp->n_head_kv, tm->hd = hp->head_dim;
    tm->qd = tm->H * tm->hd, tm->kd = tm->Hkv * tm->hd, tm->F = hp->n_ff, tm->V = hp->n_vocab, tm->L = hp->n_layer;
    tm->lora_on = true;
    tm->ckpt_asked = p->checkpoint;
    tm->pool = pool_new(p->n_threads > 0 ? p->n_threads : cpus_default_threads());
    tm->gemm = tm->pool ? train_gemm_new(tm->pool) : NULL;
    if (!tm->gemm) {
        tmodel_free(tm);
        return herd_err(HERD_E_NOMEM, "train: out of memory for the thread pool");
    }
    /* only frozen weights: full fine-tuning's are F32 parameters, whose products stay F32 anyway */
    if (p->method != TRAIN_METHOD_FULL) train_gemm_set_base(tm->gemm, p->base_compute);
    bool ok = true, full = p->method == TRAIN_METHOD_FULL;
    char name[96];
    tm->p_out = -1;
    if (!full) tm->p.grads_ready = NULL;
    if (full && tm->p.grads_ready) { /* one layer's gradients: attn_norm, ffn_norm, then the seven matrices */
        weight *w[LORA_N_TARGETS];
        model_layer_matrices(&base->layers[0], w);
        tm->layer_g_n = 2 * tm->E;
        for (int t = 0; t < LORA_N_TARGETS; t++) tm->layer_g_n += w[t]->n_in * w[t]->n_out;
        tm->layer_g = falloc(tm->layer_g_n, &ok);
    }
    tm->layers = herd_xcalloc((size_t)tm->L, sizeof *tm->layers);
    /* embedding */
    if (full) {
        float *e = copy_weight(&base->tok_embd, &ok);
        tm->g_embd = falloc(tm->V * tm->E, &ok);
        tm->embd = (train_w){.f = e, .n_in = tm->E, .n_out = tm->V};
        add_param(tm, "token_embd.weight", e, tm->g_embd, tm->E, tm->V, base->tok_embd.type);
    } else {
        tm->embd = (train_w){.q = &base->tok_embd, .n_in = tm->E, .n_out = tm->V};
    }
    uint64_t init = mix64(p->seed ^ 0x4c6f5241ull);
    tm->layer_p0 = tm->n_params;
    for (int64_t l = 0; l < tm->L; l++) {
        layer_weights *lw = &base->layers[l];
        tlayer *tl = &tm->layers[l];
        weight *w[LORA_N_TARGETS];
        model_layer_matrices(lw, w);
        float *lg = tm->layer_g; /* grads_ready: the next free place in the shared buffer */
        if (full) {
            float *an = copy_vec(lw->attn_norm, tm->E, &ok), *fn = copy_vec(lw->ffn_norm, tm->E, &ok);
            tl->attn_norm = an, tl->ffn_norm = fn;
            if (lg) tl->g_attn_norm = lg, tl->g_ffn_norm = lg + tm->E, lg += 2 * tm->E;
            else tl->g_attn_norm = falloc(tm->E, &ok), tl->g_ffn_norm = falloc(tm->E, &ok);
            snprintf(name, sizeof name, "blk.%lld.attn_norm.weight", (long long)l);
            add_param(tm, name, an, tl->g_attn_norm, tm->E, 1, HERD_TYPE_F32);
        } else {
            tl->attn_norm = lw->attn_norm, tl->ffn_norm = lw->ffn_norm;
        }
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            tmat *m = &tl->m[t];
            m->w = (train_w){.q = w[t], .n_in = w[t]->n_in, .n_out = w[t]->n_out};
            if (full) {
                float *f = copy_weight(w[t], &ok);
                m->w = (train_w){.f = f, .n_in = w[t]->n_in, .n_out = w[t]->n_out};
                if (lg) m->gw = lg, lg += w[t]->n_in * w[t]->n_out;
                else m->gw = falloc(w[t]->n_in * w[t]->n_out, &ok);
                snprintf(name, sizeof name, "blk.%lld.%s.weight", (long long)l, k_tensor_names[t]);
                add_param(tm, name, f, m->gw, w[t]->n_in, w[t]->n_out, w[t]->type);
                if (t == LORA_O) {
                    snprintf(name, sizeof name, "blk.%lld.ffn_norm.weight", (long long)l);
                    add_param(tm, name, (float *)tl->ffn_norm, tl->g_ffn_norm, tm->E, 1, HERD_TYPE_F32);
                }
            } else if (p->targets & (1u << t)) {
                tlora *lo = &m->lora;
                const int64_t r = p->rank, n_in = w[t]->n_in, n_out = w[t]->n_out;
                lo->rank = r;
                lo->scale = p->alpha / (float)r;
                lo->a = falloc(r * n_in, &ok), lo->b = falloc(n_out * r, &ok);
                lo->ga = falloc(r * n_in, &ok), lo->gb = falloc(n_out * r, &ok);
                if (lo->a) { /* Kaiming-uniform with a = sqrt(5), as torch's nn.Linear and PEFT: bound 1/sqrt(n_in) */
                    const float bound = 1.0f / sqrtf((float)n_in);
                    const uint64_t key = mix64(init ^ (uint64_t)(l * LORA_N_TARGETS + t));
                    for (int64_t i = 0; i < r * n_in; i++) lo->a[i] = (2.0f * unit_at(key, (uint64_t)i) - 1.0f) * bound;
                }
                snprintf(name, sizeof name, "blk.%lld.%s.weight.lora_a", (long long)l, k_tensor_names[t]);
                add_param(tm, name, lo->a, lo->ga, n_in, r, HERD_TYPE_F32);
                snprintf(name, sizeof name, "blk.%lld.%s.weight.lora_b", (long long)l, k_tensor_names[t]);
                add_param(tm, name, lo->b, lo->gb, r, n_out, HERD_TYPE_F32);
            }
        }
    }
    if (full) {
        float *on = copy_vec(base->output_norm, tm->E, &ok);
        tm->out_norm = on, tm->g_out_norm = falloc(tm->E, &ok);
        tm->p_out_norm = tm->n_params;
        add_param(tm, "output_norm.weight", on, tm->g_out_norm, tm->E, 1, HERD_TYPE_F32);
        if (base->tied_output) {
            tm->out = tm->embd, tm->g_out = tm->g_embd;
        } else {
            float *o = copy_weight(&base->output, &ok);
            tm->out = (train_w){.f = o, .n_in = tm->E, .n_out = tm->V};
            tm->g_out = falloc(tm->V * tm->E, &ok);
            tm->p_out = tm->n_params;
            add_param(tm, "output.weight", o, tm->g_out, tm->E, tm->V, base->output.type);
        }
    } else {
        tm->out_norm = base->output_norm;
        tm->out = (train_w){.q = &base->output, .n_in = tm->E, .n_out = tm->V};
    }
    if (!ok) {
        tmodel_free(tm);
        return herd_err(HERD_E_NOMEM, "train: out of memory for the trainable parameters");
    }
    HERD_ASSERT(!full || tm->n_params == tm->layer_p0 + 9 * (int)tm->L + 1 + (tm->p_out >= 0));
    if (full && base->file.data) {
        /* the products read the F32 copies: the base's pages, read once to make them, are given back
         * (a read-only file mapping: a later read, e.g. DPO's reference, faults them in again) */
        const uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE), a = ((uintptr_t)base->file.data + pg - 1) & ~(pg - 1);
        const uintptr_t e = ((uintptr_t)base->file.data + base->file.size) & ~(pg - 1);
        if (e > a) madvise((void *)a, e - a, MADV_DONTNEED);
    }
    *out = tm;
    return HERD_OK;
}

static void free_tapes(tmodel *tm) {
    for (int i = 0; i < tm->n_tapes; i++) {
        ltape *t = &tm->tapes[i];
        float **f[] = {&t->h1, &t->s1, &t->q, &t->k, &t->v, &t->o, &t->lse, &t->xm, &t->h2, &t->s2, &t->g, &t->u, &t->a};
        for (size_t j = 0; j < sizeof f / sizeof f[0]; j++) free(*f[j]);
        for (int j = 0; j < LORA_N_TARGETS; j++) free(t->xa[j]), free(t->xd[j]);
    }
    free(tm->tapes);
    tm->tapes = NULL, tm->n_tapes = 0;
    float **bufs[] = {&tm->xs, &tm->cs, &tm->dx, &tm->dxm, &tm->dh, &tm->dq, &tm->dk, &tm->dv, &tm->dO, &tm->da,
                      &tm->du, &tm->dxa, &tm->tmp, &tm->D, &tm->hN, &tm->sN, &tm->logits, &tm->logits_t, &tm->dlogits, &tm->hg, &tm->hg_grad,
                      &tm->attn_scratch};
    for (size_t j = 0; j < sizeof bufs / sizeof bufs[0]; j++) free(*bufs[j]), *bufs[j] = NULL;
    tm->max_T = 0;
}

/* a gradient inside the layers' shared buffer (grads_ready) */
static bool in_layer_g(const tmodel *tm, const float *g) {
    return tm->layer_g && g >= tm->layer_g && g < tm->layer_g + tm->layer_g_n;
}

void tmodel_free(tmodel *tm) {
    if (!tm) return;
    free_tapes(tm);
    /* every trainable buffer (LoRA a, b; full copies; their gradients) is in the list once */
    for (int i = 0; i < tm->n_params; i++) {
        free(tm->params[i].w);
        if (!in_layer_g(tm, tm->params[i].g)) free(tm->params[i].g);
    }
    free(tm->layer_g);
    free(tm->params);
    free(tm->layers);
    train_gemm_free(tm->gemm);
    pool_free(tm->pool);
    free(tm);
}

tparam *tmodel_params_list(tmodel *tm, int *n) {
    *n = tm->n_params;
    return tm->params;
}

void tmodel_zero_grad(tmodel *tm) {
    for (int i = 0; i < tm->n_params; i++)
        if (!in_layer_g(tm, tm->params[i].g)) memset(tm->params[i].g, 0, (size_t)tm->params[i].n * sizeof(float));
    if (tm->layer_g) memset(tm->layer_g, 0, (size_t)tm->layer_g_n * sizeof(float));
}

void tmodel_free_grads(tmodel *tm) {
    for (int i = 0; i < tm->n_params; i++) {
        if (!in_layer_g(tm, tm->params[i].g)) free(tm->params[i].g);
        tm->params[i].g = NULL;
    }
    free(tm->layer_g);
    tm->layer_g = NULL, tm->layer_g_n = 0;
    tm->g_embd = tm->g_out = tm->g_out_norm = NULL;
    for (int64_t l = 0; l < tm->L; l++) {
        tlayer *tl = &tm->layers[l];
        tl->g_attn_norm = tl->g_ffn_norm = NULL;
        for (int t = 0; t < LORA_N_TARGETS; t++) tl->m[t].gw = NULL, tl->m[t].lora.ga = tl->m[t].lora.gb = NULL;
    }
}

void tmodel_lora_enable(tmodel *tm, bool on) {
    tm->lora_on = on;
}

thread_pool *tmodel_pool(tmodel *tm) {
    return tm->pool;
}

void tmodel_lora_view(tmodel *tm, lora_adapter *out) {
    memset(out, 0, sizeof *out);
    out->alpha = tm->p.alpha;
    out->n_layer = tm->L;
    out->m = herd_xcalloc((size_t)(tm->L * LORA_N_TARGETS), sizeof *out->m);
    for (int64_t l = 0; l < tm->L; l++)
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            const tlora *lo = &tm->layers[l].m[t].lora;
            out->m[l * LORA_N_TARGETS + t] = (lora_matrix){.rank = lo->rank, .a = lo->a, .b = lo->b};
        }
    out->owned = out->m; /* the caller frees the table (not a, b) with free(out->owned) */
}

int tmodel_reserve(tmodel *tm, int64_t T) {
    if (T <= tm->max_T) return HERD_OK;
    free_tapes(tm);
    bool ok = true;
    const int64_t E = tm->E, qd = tm->qd, kd = tm->kd, F = tm->F, H = tm->H;
    /* one layer's tape in floats; checkpointing (recomputing each layer in the backward pass: a third
     * more products) only where the tapes of all layers would not fit in TRAIN_TAPE_BUDGET */
    int64_t tape = T * (3 * E + 2 + 2 * qd + 2 * kd + H + 3 * F);
    for (int j = 0; j < LORA_N_TARGETS; j++) {
        const tlora *lo = &tm->layers[0].m[j].lora;
        if (lo->rank) tape += T * lo->rank + (tm->p.dropout > 0 ? T * tm->layers[0].m[j].w.n_in : 0);
    }
    tm->p.checkpoint = tm->ckpt_asked && (double)tape * sizeof(float) * (double)tm->L > (double)TRAIN_TAPE_BUDGET;
    tm->n_tapes = tm->p.checkpoint ? 1 : (int)tm->L;
    tm->tapes = herd_xcalloc((size_t)tm->n_tapes, sizeof *tm->tapes);
    int64_t max_r = 0, max_in = E > F ? E : F;
    for (int i = 0; i < tm->n_tapes; i++) {
        ltape *t = &tm->tapes[i];
        t->h1 = falloc(T * E, &ok), t->s1 = falloc(T, &ok), t->q = falloc(T * qd, &ok), t->k = falloc(T * kd, &ok);
        t->v = falloc(T * kd, &ok), t->o = falloc(T * qd, &ok), t->lse = falloc(T * H, &ok), t->xm = falloc(T * E, &ok);
        t->h2 = falloc(T * E, &ok), t->s2 = falloc(T, &ok), t->g = falloc(T * F, &ok), t->u = falloc(T * F, &ok);
        t->a = falloc(T * F, &ok);
        for (int j = 0; j < LORA_N_TARGETS; j++) {
            /* every layer adapts the same targets with the same rank */
            const tlora *lo = &tm->layers[0].m[j].lora;
            if (!lo->rank) continue;
            if (lo->rank > max_r) max_r = lo->rank;
            t->xa[j] = falloc(T * lo->rank, &ok);
            if (tm->p.dropout > 0) t->xd[j] = falloc(T * tm->layers[0].m[j].w.n_in, &ok);
        }
    }
    tm->xs = falloc((tm->L + 1) * T * E, &ok);
    tm->cs = falloc(T * tm->hd, &ok);
    tm->dx = falloc(T * E, &ok), tm->dxm = falloc(T * E, &ok), tm->dh = falloc(T * E, &ok);
    tm->dq = falloc(T * qd, &ok), tm->dk = falloc(T * kd, &ok), tm->dv = falloc(T * kd, &ok), tm->dO = falloc(T * qd, &ok);
    tm->da = falloc(T * F, &ok), tm->du = falloc(T * F, &ok); /* d gate: in the tape's a (layer_backward) */
    tm->dxa = falloc(T * (max_r ? max_r : 1), &ok);
    int64_t max_out = max_in > qd ? max_in : qd;
    tm->tmp = falloc(T * max_out, &ok);
    tm->D = falloc(T * H, &ok);
    tm->hN = falloc(T * E, &ok), tm->sN = falloc(T, &ok);
    /* a chunk never holds more positions than a sequence; logits_t: with the first teacher chunk (head) */
    tm->head_rows = T < TRAIN_HEAD_CHUNK ? T : TRAIN_HEAD_CHUNK;
    tm->logits = falloc(tm->head_rows * tm->V, &ok); /* dlogits, logits_t: with the first distillation chunk */
    tm->hg = falloc(TRAIN_HEAD_CHUNK * E, &ok), tm->hg_grad = falloc(TRAIN_HEAD_CHUNK * E, &ok);
    train_attn_shape as = {T, tm->H, tm->Hkv, tm->hd, 0};
    tm->attn_scratch = falloc(train_attention_scratch_floats(&as, pool_size(tm->pool)), &ok);
    if (!ok) {
        free_tapes(tm);
        return herd_err(HERD_E_NOMEM, "train: out of memory for the activations of a %lld-token sequence",
                        (long long)T);
    }
    tm->max_T = T;
    return HERD_OK;
}

/* ---- per-token jobs ---------------------------------------------------------------------------- */

typedef struct {
    tmodel *tm;
    int64_t T, n;
    const float *x, *w;
    float *y, *s;
    const float *dy;
    float *dx, *dw_part; /* rmsnorm backward: per-thread partial dw [nth][E] */
    const float *a, *b;
} ejob;

static void job_rmsnorm(void *arg, int ith, int nth) {
    ejob *j = arg;
    int64_t t0, t1;
    pool_range(j->T, ith, nth, &t0, &t1);
    for (int64_t t = t0; t < t1; t++) j->s[t] = model_rmsnorm(j->y + t * j->n, j->x + t * j->n, j->w, j->n, j->tm->base->hp.norm_eps);
}

static void rmsnorm_rows(tmodel *tm, int64_t T, const float *x, const float *w, float *y, float *s) {
    ejob j = {.tm = tm, .T = T, .n = tm->E, .x = x, .w = w, .y = y, .s = s};
    pool_run(tm->pool, job_rmsnorm, &j);
}

/* dx (written) from dy through the norm; dw (if not NULL) accumulated in token order on one thread */
static void job_rmsnorm_bwd(void *arg, int ith, int nth) {
    ejob *j = arg;
    int64_t t0, t1;
    pool_range(j->T, ith, nth, &t0, &t1);
    for (int64_t t = t0; t < t1; t++)
        train_rmsnorm_backward(j->dx + t * j->n, NULL, j->dy + t * j->n, j->x + t * j->n, j->w, j->s[t], j->n);
}

static void rmsnorm_backward_rows(tmodel *tm, int64_t T, float *dx, float *dw, const float *dy, const float *x,
                                  const float *w, const float *s) {
    ejob j = {.tm = tm, .T = T, .n = tm->E, .x = x, .w = w, .s = (float *)s, .dy = dy, .dx = dx};
    pool_run(tm->pool, job_rmsnorm_bwd, &j);
    if (dw) /* the norm weight's gradient: a sum over tokens, in token order */
        for (int64_t t = 0; t < T; t++) {
            const float *dyt = dy + t * tm->E, *xt = x + t * tm->E;
            for (int64_t i = 0; i < tm->E; i++) dw[i] += dyt[i] * (xt[i] * s[t]);
        }
}

static void job_rope(void *arg, int ith, int nth) {
    ejob *j = arg;
    tmodel *tm = j->tm;
    int64_t t0, t1;
    pool_range(j->T, ith, nth, &t0, &t1);
    const bool hs = tm->base->rope_half_split, bwd = j->dy != NULL;
    for (int64_t t = t0; t < t1; t++) {
        const float *cs = tm->cs + t * tm->hd;
        if (bwd) {
            train_rope_backward(j->dx + t * tm->qd, tm->H, tm->hd, cs, hs);
            train_rope_backward(j->y + t * tm->kd, tm->Hkv, tm->hd, cs, hs);
        } else {
            model_rope_apply(j->dx + t * tm->qd, tm->H, tm->hd, cs, hs);
            model_rope_apply(j->y + t * tm->kd, tm->Hkv, tm->hd, cs, hs);
        }
    }
}

static void rope_rows(tmodel *tm, int64_t T, float *q, float *k, bool backward) {
    ejob j = {.tm = tm, .T = T, .dx = q, .y = k, .dy = backward ? q : NULL};
    pool_run(tm->pool, job_rope, &j);
}

static void job_swiglu(void *arg, int ith, int nth) {
    ejob *j = arg;
    int64_t i0, i1;
    pool_range(j->n, ith, nth, &i0, &i1);
    if (j->dy) train_swiglu_backward(j->dx + i0, j->y + i0, j->dy + i0, j->a + i0, j->b + i0, i1 - i0);
    else train_swiglu_forward(j->y + i0, j->a + i0, j->b + i0, i1 - i0);
}

/* y[i] += a[i] for i < n, on the pool (the residual adds; elementwise: the same bits as one loop) */
typedef struct {
    float *y;
    const float *a;
    int64_t n;
} sjob;

static void job_add(void *arg, int ith, int nth) {
    sjob *j = arg;
    int64_t i0, i1;
    pool_range(j->n, ith, nth, &i0, &i1);
    for (int64_t i = i0; i < i1; i++) j->y[i] += j->a[i];
}

static void add_rows(tmodel *tm, float *y, const float *a, int64_t n) {
    sjob j = {.y = y, .a = a, .n = n};
    pool_run(tm->pool, job_add, &j);
}

/* ---- matrices with their adapters ---------------------------------------------------------------- */

/* the dropout mask's key for the adapter of (layer, target) in the current sequence */
static uint64_t dropout_key(const tmodel *tm, int64_t l, int t) {
    return mix64(tm->p.seed ^ mix64((uint64_t)tm->cur_step * 0x10001ull + (uint64_t)tm->cur_seq) ^
                 mix64((uint64_t)(l * LORA_N_TARGETS + t) + 0x5bd1e995ull));
}

/* drop(x) for the adapter of (layer, target): inverted dropout, element i dropped when
 * unit_at(key, i) < p */
static void dropout_rows(tmodel *tm, int64_t l, int t, const float *x, int64_t n, int64_t T, float *out) {
    const float p = tm->p.dropout, keep = 1.0f / (1.0f - p);
    const uint64_t key = dropout_key(tm, l, t);
    for (int64_t i = 0; i < T * n; i++) out[i] = unit_at(key, (uint64_t)i) < p ? 0.0f : x[i] * keep;
}

/* y[T][n_out] = x W^T (+ (scale drop(x) A^T) B^T: the adapter's input scaled, the tape's xa = scale drop(x)
 * A^T, a few columns, rather than its T x n_out output) */
static void mat_forward(tmodel *tm, int64_t l, int t, ltape *tp, const float *x, int64_t T, float *y) {
    tmat *m = &tm->layers[l].m[t];
    train_gemm_xwt(tm->gemm, &m->w, x, m->w.n_in, T, y, m->w.n_out);
    const tlora *lo = &m->lora;
    if (!lo->rank || !tm->lora_on) return;
    const float *xin = x;
    if (tm->p.dropout > 0) {
        dropout_rows(tm, l, t, x, m->w.n_in, T, tp->xd[t]);
        xin = tp->xd[t];
    }
    train_w A = {.f = lo->a, .n_in = m->w.n_in, .n_out = lo->rank}, B = {.f = lo->b, .n_in = lo->rank, .n_out = m->w.n_out};
    train_gemm_xwt(tm->gemm, &A, xin, m->w.n_in, T, tp->xa[t], lo->rank);
    for (int64_t i = 0; i < T * lo->rank; i++) tp->xa[t][i] *= lo->scale;
    train_gemm_xwt_acc(tm->gemm, &B, tp->xa[t], lo->rank, T, y, m->w.n_out);
}

/* dx[T][n_in] += dy W (+ the adapter's path); the weight's (full) or adapter's gradients accumulated */
static void mat_backward(tmodel *tm, int64_t l, int t, ltape *tp, const float *x, const float *dy, int64_t T,
                         float *dx) {
    tmat *m = &tm->layers[l].m[t];
    const int64_t n_in = m->w.n_in, n_out = m->w.n_out;
    train_gemm_dyw(tm->gemm, &m->w, dy, n_out, T, dx, n_in);
    if (m->gw) train_gemm_dytx(tm->gemm, dy, n_out, x, n_in, T, n_out, n_in, m->gw);
    const tlora *lo = &m->lora;
    if (!lo->rank || !tm->lora_on) return;
    const int64_t r = lo->rank;
    const float *xin = tm->p.dropout > 0 ? tp->xd[t] : x;
    /* gB += dy^T (scale xa) (the tape holds xa scaled); d(scale xa) = dy B, so dxa = scale (dy B) */
    train_gemm_dytx(tm->gemm, dy, n_out, tp->xa[t], r, T, n_out, r, lo->gb);
    train_w A = {.f = lo->a, .n_in = n_in, .n_out = r}, B = {.f = lo->b, .n_in = r, .n_out = n_out};
    memset(tm->dxa, 0, (size_t)(T * r) * sizeof(float));
    train_gemm_dyw(tm->gemm, &B, dy, n_out, T, tm->dxa, r);
    for (int64_t i = 0; i < T * r; i++) tm->dxa[i] *= lo->scale;
    train_gemm_dytx(tm->gemm, tm->dxa, r, xin, n_in, T, r, n_in, lo->ga);
    if (tm->p.dropout > 0) { /* dx += mask * (dxa A) / (1 - p): the mask is where drop(x) kept x */
        float *t2 = tm->tmp;
        memset(t2, 0, (size_t)(T * n_in) * sizeof(float));
        train_gemm_dyw(tm->gemm, &A, tm->dxa, r, T, t2, n_in);
        const float p = tm->p.dropout, keep = 1.0f / (1.0f - p);
        const uint64_t key = dropout_key(tm, l, t);
        for (int64_t i = 0; i < T * n_in; i++)
            if (unit_at(key, (uint64_t)i) >= p) dx[i] += t2[i] * keep;
    } else {
        train_gemm_dyw(tm->gemm, &A, tm->dxa, r, T, dx, n_in);
    }
}

/* ---- the layer ----------------------------------------------------------------------------------- */

static void layer_forward(tmodel *tm, int64_t l, ltape *tp, const float *x, float *x_out, int64_t T) {
    tlayer *L = &tm->layers[l];
    const int64_t E = tm->E, F = tm->F;
    rmsnorm_rows(tm, T, x, L->attn_norm, tp->h1, tp->s1);
    mat_forward(tm, l, LORA_Q, tp, tp->h1, T, tp->q);
    mat_forward(tm, l, LORA_K, tp, tp->h1, T, tp->k);
    mat_forward(tm, l, LORA_V, tp, tp->h1, T, tp->v);
    rope_rows(tm, T, tp->q, tp->k, false);
    train_attn_shape as = {T, tm->H, tm->Hkv, tm->hd, 1.0f / sqrtf((float)tm->hd)};
    train_attention_forward(tm->pool, &as, tp->q, tp->k, tp->v, tp->o, tp->lse, tm->attn_scratch);
    mat_forward(tm, l, LORA_O, tp, tp->o, T, tp->xm);
    add_rows(tm, tp->xm, x, T * E);
    rmsnorm_rows(tm, T, tp->xm, L->ffn_norm, tp->h2, tp->s2);
    mat_forward(tm, l, LORA_GATE, tp, tp->h2, T, tp->g);
    mat_forward(tm, l, LORA_UP, tp, tp->h2, T, tp->u);
    ejob sj = {.tm = tm, .n = T * F, .y = tp->a, .a = tp->g, .b = tp->u};
    pool_run(tm->pool, job_swiglu, &sj);
    mat_forward(tm, l, LORA_DOWN, tp, tp->a, T, x_out);
    add_rows(tm, x_out, tp->xm, T * E);
}

/* dx: in, the gradient of the layer's output; out, of its input x */
static void layer_backward(tmodel *tm, int64_t l, ltape *tp, const float *x, float *dx, int64_t T) {
    tlayer *L = &tm->layers[l];
    const int64_t E = tm->E, F = tm->F, qd = tm->qd;
    /* FFN */
    memset(tm->da, 0, (size_t)(T * F) * sizeof(float));
    mat_backward(tm, l, LORA_DOWN, tp, tp->a, dx, T, tm->da);
    /* a (the down product's input) is not read again: d gate goes there (a T x F buffer fewer) */
    float *dg = tp->a;
    ejob sj = {.tm = tm, .n = T * F, .dy = tm->da, .dx = dg, .y = tm->du, .a = tp->g, .b = tp->u};
    pool_run(tm->pool, job_swiglu, &sj);
    memset(tm->dh, 0, (size_t)(T * E) * sizeof(float));
    mat_backward(tm, l, LORA_GATE, tp, tp->h2, dg, T, tm->dh);
    mat_backward(tm, l, LORA_UP, tp, tp->h2, tm->du, T, tm->dh);
    rmsnorm_backward_rows(tm, T, tm->dxm, L->g_ffn_norm, tm->dh, tp->xm, L->ffn_norm, tp->s2);
    add_rows(tm, tm->dxm, dx, T * E);
    /* attention */
    memset(tm->dO, 0, (size_t)(T * qd) * sizeof(float));
    mat_backward(tm, l, LORA_O, tp, tp->o, tm->dxm, T, tm->dO);
    train_attn_shape as = {T, tm->H, tm->Hkv, tm->hd, 1.0f / sqrtf((float)tm->hd)};
    train_attention_backward(tm->pool, &as, tp->q, tp->k, tp->v, tp->o, tp->lse, tm->dO, tm->dq, tm->dk, tm->dv, tm->D,
                             tm->attn_scratch);
    rope_rows(tm, T, tm->dq, tm->dk, true);
    memset(tm->dh, 0, (size_t)(T * E) * sizeof(float));
    mat_backward(tm, l, LORA_Q, tp, tp->h1, tm->dq, T, tm->dh);
    mat_backward(tm, l, LORA_K, tp, tp->h1, tm->dk, T, tm->dh);
    mat_backward(tm, l, LORA_V, tp, tp->h1, tm->dv, T, tm->dh);
    rmsnorm_backward_rows(tm, T, dx, L->g_attn_norm, tm->dh, x, L->attn_norm, tp->s1);
    add_rows(tm, dx, tm->dxm, T * E);
}

/* ---- the pass ------------------------------------------------------------------------------------ */

static void embed_and_rope(tmodel *tm, int64_t T, const int32_t *tokens) {
    const model_hparams *hp = &tm->base->hp;
    for (int64_t t = 0; t < T; t++) {
        train_w_row(&tm->embd, tokens[t], 0, tm->E, tm->xs + t * tm->E);
        model_rope_cache(tm->cs + t * tm->hd, (float)t, tm->hd, hp->rope_theta, hp->rope_freq_scale, tm->base->rope_freqs);
    }
}

static void forward_layers(tmodel *tm, int64_t T) {
    for (int64_t l = 0; l < tm->L; l++) {
        ltape *tp = &tm->tapes[tm->p.checkpoint ? 0 : l];
        layer_forward(tm, l, tp, tm->xs + l * T * tm->E, tm->xs + (l + 1) * T * tm->E, T);
    }
    rmsnorm_rows(tm, T, tm->xs + tm->L * T * tm->E, tm->out_norm, tm->hN, tm->sN);
}

/* KL(teacher || student) at temperature kt over one row: lt holds the teacher's log-probabilities
 * (already tempered and normalised; -inf outside its top k); returns wt * KL and adds
 * wt * (p_s - p_t) / kt (the gradient w.r.t. the student's logits z) into dz. */
static double kl_row(float *dz, const float *z, const float *lt, int64_t V, float kt, float wt) {
    float m = -INFINITY;
    for (int64_t i = 0; i < V; i++)
        if (z[i] / kt > m) m = z[i] / kt;
    double sum = 0;
    for (int64_t i = 0; i < V; i++) sum += exp((double)(z[i] / kt - m));
    const double lse = (double)m + log(sum);
    double kl = 0;
    for (int64_t i = 0; i < V; i++) {
        const double ls = (double)(z[i] / kt) - lse, ps = exp(ls);
        const double pt = lt[i] == -INFINITY ? 0.0 : exp((double)lt[i]);
        if (pt > 0) kl += pt * ((double)lt[i] - ls);
        dz[i] += (float)((double)wt * (ps - pt) / (double)kt);
    }
    return (double)wt * kl;
}

/* one row of the loss head: d logits (written) and the row's cross-entropy and KL terms */
typedef struct {
    tmodel *tm;
    const tmodel_loss *ls;
    const int64_t *pos;
    bool any_kd;
    double xl[TRAIN_HEAD_CHUNK], logp[TRAIN_HEAD_CHUNK], kl[TRAIN_HEAD_CHUNK];
} hjob;

static void job_head_row(void *arg, int64_t i, int ith) {
    hjob *j = arg;
    tmodel *tm = j->tm;
    const tmodel_loss *ls = j->ls;
    const int64_t p = j->pos[i], V = tm->V;
    float *z = tm->logits + i * V;
    const float w = ls->weight[p], kw = j->any_kd ? ls->kd_weight[p] : 0;
    j->xl[i] = j->logp[i] = j->kl[i] = 0;
    if (!j->any_kd) { /* every gathered row has w != 0: d logits over the logits, in place */
        j->xl[i] = train_xent_row(z, z, V, ls->tokens[p + 1], w, &j->logp[i]);
        return;
    }
    float *dz = tm->dlogits + i * V; /* distillation reads z again after the cross-entropy */
    memset(dz, 0, (size_t)V * sizeof(float));
    if (w != 0) j->xl[i] = train_xent_row(dz, z, V, ls->tokens[p + 1], w, &j->logp[i]);
    if (kw != 0) j->kl[i] = kl_row(dz, z, tm->logits_t + i * V, V, ls->kd_temp, kw);
}

/* The loss head: the positions that carry a loss term (weight or distillation weight non-zero) are
 * gathered, TRAIN_HEAD_CHUNK at a time, into hg; logits = hg Wout^T, the loss and d logits, then
 * dhN (scattered back) and the output matrix's gradient. Positions without a loss cost nothing: the
 * prompt of an sft example needs no output-matrix product. With want_grad false only the
 * cross-entropy terms are computed (no teacher). */
static void head(tmodel *tm, int64_t T, const tmodel_loss *ls, bool want_grad, tmodel_result *res, float *dhN) {
    const int64_t E = tm->E, V = tm->V, C = TRAIN_HEAD_CHUNK;
    if (want_grad) memset(dhN, 0, (size_t)(T * E) * sizeof(float));
    int64_t pos[TRAIN_HEAD_CHUNK];
    for (int64_t t = 0; t < T;) {
        int64_t n = 0;
        bool any_kd = false;
        for (; t < T && n < C; t++) {
            const bool kd = want_grad && ls->kd_weight && ls->kd_weight[t] != 0;
            if (ls->weight[t] != 0 || kd) pos[n++] = t;
            any_kd |= kd;
        }
        if (n == 0) break;
        for (int64_t i = 0; i < n; i++) memcpy(tm->hg + i * E, tm->hN + pos[i] * E, (size_t)E * sizeof(float));
        train_gemm_xwt(tm->gemm, &tm->out, tm->hg, E, n, tm->logits, V);
        if (any_kd && !tm->logits_t) tm->logits_t = herd_xmalloc((size_t)(tm->head_rows * V) * sizeof(float));
        if (any_kd && !tm->dlogits) tm->dlogits = herd_xmalloc((size_t)(tm->head_rows * V) * sizeof(float));
        if (any_kd) ls->teacher(ls->teacher_user, pos, n, tm->logits_t);
        /* the rows' losses and d logits on the pool, their sums in position order below (as one loop) */
        hjob hj = {.tm = tm, .ls = ls, .pos = pos, .any_kd = any_kd};
        pool_for(tm->pool, n, job_head_row, &hj);
        for (int64_t i = 0; i < n; i++) {
            if (ls->weight[pos[i]] != 0) {
                res->loss += hj.xl[i];
                res->sum_logp += hj.logp[i];
                res->n_pos++;
            }
            if (any_kd && ls->kd_weight[pos[i]] != 0) res->loss += hj.kl[i];
        }
        if (!want_grad) continue;
        memset(tm->hg_grad, 0, (size_t)(n * E) * sizeof(float));
        const float *dl = any_kd ? tm->dlogits : tm->logits; /* d logits (see job_head_row) */
        train_gemm_dyw(tm->gemm, &tm->out, dl, V, n, tm->hg_grad, E);
        for (int64_t i = 0; i < n; i++) memcpy(dhN + pos[i] * E, tm->hg_grad + i * E, (size_t)E * sizeof(float));
        if (tm->g_out) train_gemm_dytx(tm->gemm, dl, V, tm->hg, E, n, V, E, tm->g_out);
    }
}

int tmodel_forward_backward(tmodel *tm, int64_t T, const tmodel_loss *ls, tmodel_result *res) {
    memset(res, 0, sizeof *res);
    if (T > tm->max_T) return herd_err(HERD_E_RANGE, "train: a %lld-token sequence exceeds the %lld reserved", (long long)T, (long long)tm->max_T);
    tm->cur_step = ls->step, tm->cur_seq = ls->seq_index;
    const int64_t E = tm->E;
    embed_and_rope(tm, T, ls->tokens);
    forward_layers(tm, T);
    train_mem_note("step: forward done");
    float *dhN = tm->dh, *dx = tm->dx;
    head(tm, T, ls, true, res, tm->dxm);
    train_mem_note("step: loss head done");
    /* grads_ready: each group's update as soon as its gradient is complete (the loss is known by now) */
    const bool fire = tm->p.grads_ready && isfinite(res->loss);
    if (fire && tm->p_out >= 0) tm->p.grads_ready(tm->p.grads_user, tm->p_out, tm->p_out + 1);
    memcpy(dhN, tm->dxm, (size_t)(T * E) * sizeof(float));
    rmsnorm_backward_rows(tm, T, dx, tm->g_out_norm, dhN, tm->xs + tm->L * T * E, tm->out_norm, tm->sN);
    if (fire) tm->p.grads_ready(tm->p.grads_user, tm->p_out_norm, tm->p_out_norm + 1);
    for (int64_t l = tm->L - 1; l >= 0; l--) {
        ltape *tp = &tm->tapes[tm->p.checkpoint ? 0 : l];
        const float *x = tm->xs + l * T * E;
        if (tm->p.checkpoint) layer_forward(tm, l, tp, x, tm->xs + (l + 1) * T * E, T);
        layer_backward(tm, l, tp, x, dx, T);
        if (l == tm->L - 1) train_mem_note("step: last layer's backward");
        if (tm->layer_g) { /* the next layer (below) accumulates into the same buffer */
            const int p0 = tm->layer_p0 + 9 * (int)l;
            if (fire) tm->p.grads_ready(tm->p.grads_user, p0, p0 + 9);
            memset(tm->layer_g, 0, (size_t)tm->layer_g_n * sizeof(float));
        }
    }
    if (tm->g_embd)
        for (int64_t t = 0; t < T; t++) {
            float *g = tm->g_embd + (int64_t)ls->tokens[t] * E;
            for (int64_t i = 0; i < E; i++) g[i] += dx[t * E + i];
        }
    if (fire) tm->p.grads_ready(tm->p.grads_user, 0, 1);
    return HERD_OK;
}

int tmodel_forward_hidden(tmodel *tm, int64_t T, const int32_t *tokens) {
    if (T > tm->max_T) return herd_err(HERD_E_RANGE, "train: a %lld-token sequence exceeds the %lld reserved", (long long)T, (long long)tm->max_T);
    bool ck = tm->p.checkpoint;
    tm->p.checkpoint = true;
    embed_and_rope(tm, T, tokens);
    forward_layers(tm, T);
    tm->p.checkpoint = ck;
    return HERD_OK;
}

void tmodel_head_logits(tmodel *tm, const int64_t *pos, int64_t n, float *out) {
    HERD_ASSERT(n <= TRAIN_HEAD_CHUNK);
    for (int64_t i = 0; i < n; i++) memcpy(tm->hg + i * tm->E, tm->hN + pos[i] * tm->E, (size_t)tm->E * sizeof(float));
    train_gemm_xwt(tm->gemm, &tm->out, tm->hg, tm->E, n, out, tm->V);
}

int64_t tmodel_n_vocab(const tmodel *tm) {
    return tm->V;
}

int tmodel_forward_logp(tmodel *tm, int64_t T, const int32_t *tokens, const float *wt, tmodel_result *res) {
    memset(res, 0, sizeof *res);
    if (T > tm->max_T) return herd_err(HERD_E_RANGE, "train: a %lld-token sequence exceeds the %lld reserved", (long long)T, (long long)tm->max_T);
    bool ck = tm->p.checkpoint;
    tm->p.checkpoint = true; /* one tape is enough without a backward pass */
    embed_and_rope(tm, T, tokens);
    forward_layers(tm, T);
    tm->p.checkpoint = ck;
    tmodel_loss ls = {.tokens = tokens, .weight = wt};
    head(tm, T, &ls, false, res, NULL);
    return HERD_OK;
}
