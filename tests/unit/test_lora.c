/* LoRA adapters (src/model/lora.h) on small random models:
 *  - llama.cpp's adapter GGUF and PEFT folders round-trip every float exactly; PEFT's lora_B of Q/K is in HF's
 *    row order (checked against the file, index by index), herd's in the base's;
 *  - bad adapters are refused with one line naming the tensor: wrong rank, wrong n_in, lora_a without
 *    lora_b, a layer beyond the base's, general.type not 'adapter'; an adapter of another model is refused
 *    by the context;
 *  - the forward pass with adapters equals the forward pass of a model whose weights were merged here in
 *    double, W + s (alpha / r) B A (the direct computation), and herd_export_lora's merged model;
 *  - two sequences with different adapters in one batch give each token's solo logits bit for bit;
 *  - B = 0, or setting adapters and clearing them, leaves the logits bit-identical to the base. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/file.h"
#include "formats/safetensors.h"
#include "gguf/gguf.h"
#include "herd.h"
#include "model/lora.h"
#include "model/model.h"
#include "testutil.h"
#include "testvocab.h"

static char g_dir[256];

static char *path_in(const char *name) {
    char *p = malloc(512);
    snprintf(p, 512, "%s/%s", g_dir, name);
    return p;
}

/* GQA (4 heads on 2 KV heads), head_dim 16, untied */
static herd_model *make_model(const char *vocab, int type, const char *path) {
    herd_synth_params p = {.vocab_path = vocab, .n_embd = 64, .n_layer = 2, .n_head = 4, .n_head_kv = 2,
                           .head_dim = 16, .n_ff = 96, .n_ctx_train = 256, .rope_theta = 10000, .norm_eps = 1e-5f,
                           .rope_scale = 0, .tied_output = false, .type = type, .output_type = -1,
                           .weight_scale = 0.08f, .seed = 5};
    CHECK(herd_synth_model(&p, path) == 0, "synth: %s", herd_last_error());
    herd_model *m = NULL;
    CHECK(herd_model_load(path, &m) == 0, "load: %s", herd_last_error());
    return m;
}

/* An adapter on `targets` at rank r with entries uniform in [-x, x) (b zero when zero_b) */
static lora_adapter *random_adapter(const herd_model *m, unsigned targets, int64_t r, float alpha, float x, bool zero_b) {
    lora_adapter *a = lora_adapter_new(m, targets, r, alpha);
    for (int64_t k = 0; k < a->n_layer * LORA_N_TARGETS; k++) {
        lora_matrix *mt = &a->m[k];
        if (mt->rank <= 0) continue;
        const weight *w = lora_target_weight(m, k / LORA_N_TARGETS, (int)(k % LORA_N_TARGETS));
        for (int64_t i = 0; i < r * w->n_in; i++) mt->a[i] = x * tu_sym();
        for (int64_t i = 0; i < r * w->n_out; i++) mt->b[i] = zero_b ? 0.0f : x * tu_sym();
    }
    return a;
}

static bool same_adapter(const herd_model *m, const lora_adapter *x, const lora_adapter *y) {
    if (x->alpha != y->alpha || x->n_layer != y->n_layer) return false;
    for (int64_t k = 0; k < x->n_layer * LORA_N_TARGETS; k++) {
        const lora_matrix *p = &x->m[k], *q = &y->m[k];
        if (p->rank != q->rank) return false;
        if (p->rank <= 0) continue;
        const weight *w = lora_target_weight(m, k / LORA_N_TARGETS, (int)(k % LORA_N_TARGETS));
        if (memcmp(p->a, q->a, (size_t)(p->rank * w->n_in) * sizeof(float)) ||
            memcmp(p->b, q->b, (size_t)(p->rank * w->n_out) * sizeof(float)))
            return false;
    }
    return true;
}

/* ---- round trips ------------------------------------------------------------------------------- */

static void check_round_trips(const herd_model *m) {
    lora_adapter *a = random_adapter(m, 0x7f, 4, 8.0f, 0.5f, false);
    char *g = path_in("rt.gguf"), *d = path_in("rt-peft");
    lora_adapter *b = NULL;
    CHECK(lora_adapter_save_gguf(a, m, g) == 0, "save gguf: %s", herd_last_error());
    CHECK(lora_adapter_load(m, g, &b) == 0, "load gguf: %s", herd_last_error());
    CHECK(b && same_adapter(m, a, b), "GGUF round trip: every float identical");
    lora_adapter_free(b);
    b = NULL;
    CHECK(lora_adapter_save_peft(a, m, d) == 0, "save peft: %s", herd_last_error());
    CHECK(lora_adapter_load(m, d, &b) == 0, "load peft: %s", herd_last_error());
    CHECK(b && same_adapter(m, a, b), "PEFT round trip: every float identical (Q/K rows permuted and back)");
    lora_adapter_free(b);

    /* the file's q/k lora_B rows are in HF order: HF row h*hd + j*hd/2 + i is GGUF row h*hd + 2i + j */
    char st_path[600];
    snprintf(st_path, sizeof st_path, "%s/adapter_model.safetensors", d);
    herd_mapped_file f;
    st_file st = {0};
    CHECK(herd_file_map(st_path, &f) == 0 && st_parse(f.data, f.size, st_path, &st) == 0, "parse %s", st_path);
    const int64_t hd = m->hp.head_dim, r = 4;
    const char *names[2] = {"base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight",
                            "base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight"};
    for (int t = 0; t < 2; t++) {
        const st_tensor *tb = st_find(&st, names[t]);
        const lora_matrix *mt = &a->m[1 * LORA_N_TARGETS + t];
        int64_t n_heads = t == 0 ? m->hp.n_head : m->hp.n_head_kv, bad = 0;
        CHECK(tb && tb->shape[0] == n_heads * hd && tb->shape[1] == r, "%s: shape [out, r]", names[t]);
        if (!tb) continue;
        const float *fb = (const float *)tb->data;
        for (int64_t h = 0; h < n_heads; h++)
            for (int64_t i = 0; i < hd / 2; i++)
                for (int64_t j = 0; j < 2; j++)
                    bad += memcmp(fb + (h * hd + j * hd / 2 + i) * r, mt->b + (h * hd + 2 * i + j) * r, (size_t)r * 4) != 0;
        CHECK(bad == 0, "%s: %lld rows not in HF order", names[t], (long long)bad);
    }
    /* v_proj is not permuted */
    const st_tensor *tv = st_find(&st, "base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight");
    CHECK(tv && !memcmp(tv->data, a->m[LORA_V].b, (size_t)(tv->nbytes)), "v_proj lora_B as is");
    st_file_clear(&st);
    herd_file_unmap(&f);
    lora_adapter_free(a);
    free(g), free(d);
}

/* ---- refusals ------------------------------------------------------------------------------------ */

/* Writes an adapter GGUF with tensors {name, ne0, ne1} (F32, filled with 0.01) and the given general.type. */
static void write_bad(const char *path, const char *gtype, const char *const *names, const int64_t (*ne)[2], int n) {
    gguf_writer *w = gguf_writer_new();
    gguf_writer_set_str(w, "general.architecture", "llama", 5);
    gguf_writer_set_str(w, "general.type", gtype, strlen(gtype));
    gguf_writer_set_str(w, "adapter.type", "lora", 4);
    gguf_writer_set_f32(w, "adapter.lora.alpha", 8);
    static float data[64 * 256];
    for (size_t i = 0; i < sizeof data / sizeof data[0]; i++) data[i] = 0.01f;
    for (int i = 0; i < n; i++) gguf_writer_add_tensor(w, names[i], HERD_TYPE_F32, 2, ne[i], data, NULL, NULL);
    CHECK(gguf_writer_write(w, path) == 0, "write %s", path);
    gguf_writer_free(w);
}

static void expect_refused(const herd_model *m, const char *path, const char *what, const char *needle) {
    lora_adapter *a = (lora_adapter *)1;
    int rc = lora_adapter_load(m, path, &a);
    CHECK(rc < 0 && a == NULL, "%s: refused (rc %d)", what, rc);
    CHECK(strstr(herd_last_error(), needle) != NULL, "%s: the message names '%s': %s", what, needle, herd_last_error());
    CHECK(strchr(herd_last_error(), '\n') == NULL, "%s: one line", what);
}

static void check_refusals(const herd_model *m) {
    char *p = path_in("bad.gguf");
    const char *qa = "blk.0.attn_q.weight.lora_a", *qb = "blk.0.attn_q.weight.lora_b";
    const int64_t n_q = m->hp.n_head * m->hp.head_dim, E = m->hp.n_embd;
    {   /* rank 4 in a, 3 in b */
        const char *n[2] = {qa, qb};
        const int64_t ne[2][2] = {{E, 4}, {3, n_q}};
        write_bad(p, "adapter", n, ne, 2);
        expect_refused(m, p, "rank mismatch", qb);
        expect_refused(m, p, "rank mismatch", "{4, 64}"); /* expected shape */
    }
    {   /* n_in 32 where the base has 64 */
        const char *n[2] = {qa, qb};
        const int64_t ne[2][2] = {{32, 4}, {4, n_q}};
        write_bad(p, "adapter", n, ne, 2);
        expect_refused(m, p, "wrong n_in", qa);
        expect_refused(m, p, "wrong n_in", "{32, 4}");
    }
    {   /* n_out of b wrong */
        const char *n[2] = {"blk.1.ffn_down.weight.lora_a", "blk.1.ffn_down.weight.lora_b"};
        const int64_t ne[2][2] = {{m->hp.n_ff, 2}, {2, E + 1}};
        write_bad(p, "adapter", n, ne, 2);
        expect_refused(m, p, "wrong n_out", "blk.1.ffn_down.weight.lora_b");
    }
    {   /* lora_a without lora_b */
        const char *n[1] = {qa};
        const int64_t ne[1][2] = {{E, 4}};
        write_bad(p, "adapter", n, ne, 1);
        expect_refused(m, p, "missing lora_b", qb);
    }
    {   /* layer 2 of a 2-layer model */
        const char *n[2] = {"blk.2.attn_v.weight.lora_a", "blk.2.attn_v.weight.lora_b"};
        const int64_t ne[2][2] = {{E, 4}, {4, 32}};
        write_bad(p, "adapter", n, ne, 2);
        expect_refused(m, p, "layer beyond the base", "blk.2.attn_v.weight.lora_a");
    }
    {   /* a model, not an adapter */
        const char *n[2] = {qa, qb};
        const int64_t ne[2][2] = {{E, 4}, {4, n_q}};
        write_bad(p, "model", n, ne, 2);
        expect_refused(m, p, "general.type", "general.type is 'model'");
    }
    {   /* an output adapter: herd adapts the layer matrices only */
        const char *n[2] = {"output.weight.lora_a", "output.weight.lora_b"};
        const int64_t ne[2][2] = {{E, 4}, {4, 299}};
        write_bad(p, "adapter", n, ne, 2);
        expect_refused(m, p, "output adapter", "output.weight.lora_a");
    }
    unlink(p);
    free(p);
}

/* ---- the forward pass ------------------------------------------------------------------------------ */

static herd_context *make_ctx(herd_model *m, int n_seq, int threads) {
    herd_context_params cp = herd_context_default_params();
    cp.n_ctx = 32;
    cp.n_seq = n_seq;
    cp.n_threads = threads;
    cp.kv_type = HERD_KV_F32;
    herd_context *c = NULL;
    CHECK(herd_context_new(m, &cp, &c) == 0, "context: %s", herd_last_error());
    return c;
}

#define NT 12

static float *logits_of(herd_model *m, herd_lora *const *ad, const float *sc, int n, const int32_t *toks, int threads) {
    int nv = herd_vocab_n_tokens(m);
    float *out = malloc(sizeof(float) * NT * (size_t)nv);
    herd_context *c = make_ctx(m, 1, threads);
    CHECK(herd_context_set_lora(c, ad, sc, n) == 0, "set lora: %s", herd_last_error());
    CHECK(herd_decode(c, toks, NT, HERD_LOGITS_ALL, out) == 0, "decode: %s", herd_last_error());
    herd_context_free(c);
    return out;
}

static float max_diff(const float *a, const float *b, size_t n) {
    float d = 0;
    for (size_t i = 0; i < n; i++) d = isnan(a[i] - b[i]) ? INFINITY : fmaxf(d, fabsf(a[i] - b[i]));
    return d;
}

/* The base GGUF at base_path rewritten with W' = W + sum_i s_i (alpha_i / r) B_i A_i (in double) in every
 * adapted matrix: the F32 base's weights are plain floats, the adapters herd's in-memory ones. */
static void write_merged(const herd_model *m, const char *base_path, const lora_adapter *const *ad, const float *sc,
                         int n, const char *out_path) {
    herd_mapped_file f;
    gguf_file g;
    CHECK(herd_file_map(base_path, &f) == 0 && gguf_parse(f.data, f.size, base_path, &g) == 0, "parse base");
    gguf_writer *w = gguf_writer_new();
    for (int64_t i = 0; i < g.n_kv; i++) gguf_writer_copy_kv(w, &g.kv[i]);
    float **bufs = calloc((size_t)g.n_tensors, sizeof *bufs);
    for (int64_t i = 0; i < g.n_tensors; i++) {
        const gguf_tensor *t = &g.tensors[i];
        const void *data = t->data;
        for (int64_t l = 0; l < m->hp.n_layer; l++)
            for (int tg = 0; tg < LORA_N_TARGETS; tg++) {
                const weight *wt = lora_target_weight(m, l, tg);
                if (strcmp(wt->name, t->name) != 0) continue;
                CHECK(t->type == HERD_TYPE_F32, "an f32 base");
                float *nw = malloc((size_t)(wt->n_in * wt->n_out) * sizeof(float));
                const float *w0 = (const float *)t->data;
                for (int64_t r = 0; r < wt->n_out; r++)
                    for (int64_t c = 0; c < wt->n_in; c++) {
                        double acc = w0[r * wt->n_in + c];
                        for (int a = 0; a < n; a++) {
                            const lora_matrix *mt = &ad[a]->m[l * LORA_N_TARGETS + tg];
                            if (mt->rank <= 0) continue;
                            double s = ad[a]->alpha != 0 ? (double)sc[a] * ad[a]->alpha / (double)mt->rank : sc[a], d = 0;
                            for (int64_t k = 0; k < mt->rank; k++)
                                d += (double)mt->b[r * mt->rank + k] * mt->a[k * wt->n_in + c];
                            acc += s * d;
                        }
                        nw[r * wt->n_in + c] = (float)acc;
                    }
                data = bufs[i] = nw;
            }
        gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, data, NULL, NULL);
    }
    CHECK(gguf_writer_write(w, out_path) == 0, "write merged: %s", herd_last_error());
    gguf_writer_free(w);
    for (int64_t i = 0; i < g.n_tensors; i++) free(bufs[i]);
    free(bufs);
    gguf_file_clear(&g);
    herd_file_unmap(&f);
}

static herd_lora *to_handle(herd_model *m, const lora_adapter *a, const char *name) {
    char *p = path_in(name);
    herd_lora *h = NULL;
    CHECK(lora_adapter_save_gguf(a, m, p) == 0, "save %s: %s", name, herd_last_error());
    CHECK(herd_lora_load(m, p, &h) == 0, "load %s: %s", name, herd_last_error());
    free(p);
    return h;
}

static void check_forward_f32(herd_model *m, const char *base_path, const char *vocab) {
    int nv = herd_vocab_n_tokens(m);
    int32_t toks[NT];
    for (int i = 0; i < NT; i++) toks[i] = (int32_t)((i * 53 + 7) % nv);
    toks[0] = 1;
    lora_adapter *a1 = random_adapter(m, 0x7f, 4, 8.0f, 0.3f, false);
    lora_adapter *a2 = random_adapter(m, 1u << LORA_Q | 1u << LORA_V | 1u << LORA_DOWN, 2, 0.0f, 0.3f, false);
    herd_lora *h[2] = {to_handle(m, a1, "f1.gguf"), to_handle(m, a2, "f2.gguf")};
    const float sc[2] = {0.7f, -1.5f};
    float *base = logits_of(m, NULL, NULL, 0, toks, 2);
    float *with = logits_of(m, h, sc, 2, toks, 2);
    size_t N = (size_t)NT * nv;
    CHECK(max_diff(base, with, N) > 0.05f, "the adapters change the logits (max |d| %g)", (double)max_diff(base, with, N));

    /* the direct computation: a model with W + s B A merged in double */
    char *mp = path_in("merged.gguf");
    const lora_adapter *ads[2] = {a1, a2};
    write_merged(m, base_path, ads, sc, 2, mp);
    herd_model *mm = NULL;
    CHECK(herd_model_load(mp, &mm) == 0, "load merged: %s", herd_last_error());
    if (mm) {
        float *ref = logits_of(mm, NULL, NULL, 0, toks, 1);
        float d = max_diff(ref, with, N);
        CHECK(d < 1e-4f, "forward with two adapters = forward of W + s (alpha/r) B A: max |d| %g", (double)d);
        free(ref);
        herd_model_free(mm);
    }
    /* herd_export_lora's merge (f32) */
    char *p1 = path_in("f1.gguf"), *p2 = path_in("f2.gguf"), *ep = path_in("export.gguf");
    const char *paths[2] = {p1, p2};
    CHECK(herd_export_lora(base_path, paths, sc, 2, ep, "f32") == 0, "export: %s", herd_last_error());
    CHECK(herd_model_load(ep, &mm) == 0, "load export: %s", herd_last_error());
    if (mm) {
        float *ex = logits_of(mm, NULL, NULL, 0, toks, 2);
        float d = max_diff(ex, with, N);
        CHECK(d < 1e-4f, "herd export's merged model gives the adapters' logits: max |d| %g", (double)d);
        free(ex);
        herd_model_free(mm);
    }
    CHECK(herd_export_lora(base_path, paths, sc, 2, base_path, NULL) == HERD_E_ARG, "export over its base refused");
    CHECK(herd_export_lora(base_path, paths, sc, 2, ep, "mxfp4") == HERD_E_ARG && strstr(herd_last_error(), "mxfp4"),
          "unknown export type refused: %s", herd_last_error());

    /* set then cleared: the base, bit for bit */
    herd_context *c = make_ctx(m, 1, 2);
    float *again = malloc(sizeof(float) * N);
    CHECK(herd_context_set_lora(c, h, sc, 2) == 0 && herd_context_set_lora(c, NULL, NULL, 0) == 0, "set and clear");
    CHECK(herd_decode(c, toks, NT, HERD_LOGITS_ALL, again) == 0, "decode");
    CHECK(memcmp(again, base, sizeof(float) * N) == 0, "adapters set then cleared: logits bit-identical to the base");
    herd_context_free(c);

    /* an adapter loaded for another model is refused */
    char *op = path_in("other.gguf");
    herd_synth_params sp = {.vocab_path = vocab, .n_embd = 64, .n_layer = 2, .n_head = 4, .n_head_kv = 2, .head_dim = 16,
                            .n_ff = 96, .n_ctx_train = 256, .rope_theta = 10000, .norm_eps = 1e-5f, .type = HERD_TYPE_F32,
                            .output_type = -1, .seed = 9};
    herd_model *other = NULL;
    CHECK(herd_synth_model(&sp, op) == 0 && herd_model_load(op, &other) == 0, "other model");
    if (other) {
        herd_context *oc = make_ctx(other, 1, 1);
        CHECK(herd_context_set_lora(oc, h, sc, 1) == HERD_E_ARG, "an adapter of another model refused");
        herd_context_free(oc);
        herd_model_free(other);
    }
    unlink(op), unlink(mp), unlink(ep), unlink(p1), unlink(p2);
    free(op), free(mp), free(ep), free(p1), free(p2);
    free(again), free(base), free(with);
    herd_lora_free(h[0]), herd_lora_free(h[1]);
    lora_adapter_free(a1), lora_adapter_free(a2);
}

/* Sequences 0 and 1 with different adapters (and 2 with none) in one batch, interleaved: every token's logits
 * equal its solo run's; a zero B leaves the base's logits bit for bit. */
static void check_batch(herd_model *m, const char *name) {
    int nv = herd_vocab_n_tokens(m);
    enum { NS = 3 };
    int32_t toks[NS][NT];
    for (int s = 0; s < NS; s++)
        for (int i = 0; i < NT; i++) toks[s][i] = (int32_t)((s * 97 + i * 41 + 3) % nv);
    lora_adapter *a1 = random_adapter(m, 0x7f, 4, 8.0f, 0.3f, false), *a2 = random_adapter(m, 0x55, 3, 6.0f, 0.3f, false);
    lora_adapter *z = random_adapter(m, 0x7f, 4, 8.0f, 0.3f, true);
    herd_lora *h1 = to_handle(m, a1, "b1.gguf"), *h2 = to_handle(m, a2, "b2.gguf"), *hz = to_handle(m, z, "bz.gguf");
    herd_lora *set[NS] = {h1, h2, NULL};
    const float sc[NS] = {1.0f, 2.5f, 0};
    float *solo[NS];
    for (int s = 0; s < NS; s++) solo[s] = logits_of(m, &set[s], &sc[s], set[s] ? 1 : 0, toks[s], 1);
    herd_context *c = make_ctx(m, NS, 2);
    for (int s = 0; s < NS; s++)
        CHECK(herd_seq_set_lora(c, s, &set[s], &sc[s], set[s] ? 1 : 0) == 0, "seq set: %s", herd_last_error());
    CHECK(herd_seq_set_lora(c, NS, &set[0], &sc[0], 1) == HERD_E_ARG, "unknown sequence refused");
    int32_t bt[NS * NT], bs[NS * NT];
    bool want[NS * NT];
    int idx[NS * NT][2], n = 0, done[NS] = {0}, same = 1;
    float *out = malloc(sizeof(float) * NS * NT * (size_t)nv);
    for (int round = 0; round < 2; round++) { /* ragged: 5, 2, 7 tokens first, then the rest */
        const int first[NS] = {5, 2, 7};
        n = 0;
        for (int step = 0; step < NT; step++)
            for (int s = 0; s < NS; s++)
                if (done[s] < (round ? NT : first[s])) {
                    bt[n] = toks[s][done[s]], bs[n] = s, want[n] = true;
                    idx[n][0] = s, idx[n][1] = done[s]++;
                    n++;
                }
        CHECK(herd_decode_batch(c, bt, bs, n, want, out) == 0, "batch: %s", herd_last_error());
        for (int r = 0; r < n; r++)
            same &= !memcmp(out + (size_t)r * nv, solo[idx[r][0]] + (size_t)idx[r][1] * nv, sizeof(float) * nv);
    }
    CHECK(same, "%s: tokens of sequences with different adapters in one batch = their solo runs, bit for bit", name);
    herd_context_free(c);
    /* B = 0: no change at all */
    float *zl = logits_of(m, &hz, &sc[0], 1, toks[2], 2);
    CHECK(!memcmp(zl, solo[2], sizeof(float) * NT * (size_t)nv), "%s: an adapter with B = 0 leaves the logits bit-identical", name);
    free(zl), free(out);
    for (int s = 0; s < NS; s++) free(solo[s]);
    herd_lora_free(h1), herd_lora_free(h2), herd_lora_free(hz);
    lora_adapter_free(a1), lora_adapter_free(a2), lora_adapter_free(z);
    const char *files[3] = {"b1.gguf", "b2.gguf", "bz.gguf"};
    for (int i = 0; i < 3; i++) {
        char *p = path_in(files[i]);
        unlink(p);
        free(p);
    }
}

static void rm_peft(const char *name) {
    char p[700];
    const char *files[2] = {"adapter_config.json", "adapter_model.safetensors"};
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/%s/%s", g_dir, name, files[i]);
        unlink(p);
    }
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    rmdir(p);
}

int main(void) {
    tu_rng = 0x10ea10ea;
    snprintf(g_dir, sizeof g_dir, "%s/herd-test-lora-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(g_dir)) return 1;
    char *vocab = path_in("vocab.gguf"), *mf = path_in("f32.gguf"), *mq = path_in("q8.gguf");
    write_vocab(vocab);
    herd_model *m = make_model(vocab, HERD_TYPE_F32, mf);
    if (m) {
        check_round_trips(m);
        check_refusals(m);
        check_forward_f32(m, mf, vocab);
        check_batch(m, "f32");
        herd_model_free(m);
    }
    m = make_model(vocab, HERD_TYPE_Q8_0, mq);
    if (m) {
        check_batch(m, "q8_0");
        herd_model_free(m);
    }
    rm_peft("rt-peft");
    char *rt = path_in("rt.gguf");
    unlink(rt), unlink(vocab), unlink(mf), unlink(mq);
    free(rt), free(vocab), free(mf), free(mq);
    rmdir(g_dir);
    return TU_DONE("test_lora");
}
