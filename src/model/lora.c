/* LoRA adapters: names, shape checks against the base, llama.cpp's adapter GGUF (read and write).
 * PEFT folders are in lora_peft.c; applying adapters in the forward pass is in forward.c.
 *
 * llama.cpp's adapter GGUF (convert_lora_to_gguf.py writes it, src/llama-adapter.cpp reads it):
 *   general.architecture = "llama", general.type = "adapter", adapter.type = "lora",
 *   adapter.lora.alpha (f32; absent or 0: scale = user scale, else user scale * alpha / rank)
 *   blk.N.<attn_q|attn_k|attn_v|attn_output|ffn_gate|ffn_up|ffn_down>.weight.lora_a   ne = {n_in, rank}
 *   blk.N.<...>.weight.lora_b                                                         ne = {rank, n_out}
 * with Q/K rows of lora_b in GGUF's order, as the base GGUF's. llama.cpp skips *_norm.weight tensors and
 * refuses any other name; so does herd (token_embd / output adapters are refused by name: herd adapts the
 * seven layer matrices only). */
#include "lora.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/file.h"
#include "../base/log.h"
#include "../kernels/kernels.h"

static const char *const k_short[LORA_N_TARGETS] = {"q", "k", "v", "o", "gate", "up", "down"};
static const char *const k_gguf[LORA_N_TARGETS] = {"attn_q", "attn_k", "attn_v", "attn_output",
                                                   "ffn_gate", "ffn_up", "ffn_down"};
static const char *const k_hf[LORA_N_TARGETS] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                                 "gate_proj", "up_proj", "down_proj"};

const char *lora_target_name(int target) {
    return target >= 0 && target < LORA_N_TARGETS ? k_short[target] : "?";
}
const char *lora_target_gguf(int target) {
    return target >= 0 && target < LORA_N_TARGETS ? k_gguf[target] : "?";
}
const char *lora_target_hf(int target) {
    return target >= 0 && target < LORA_N_TARGETS ? k_hf[target] : "?";
}

const weight *lora_target_weight(const herd_model *base, int64_t layer, int target) {
    weight *w[MODEL_LAYER_MATRICES];
    model_layer_matrices(&base->layers[layer], w); /* the same order as LORA_Q .. LORA_DOWN */
    return w[target];
}

float lora_matrix_scale(const lora_adapter *a, const lora_matrix *mt, float user_scale) {
    return a->alpha != 0.0f ? user_scale * a->alpha / (float)mt->rank : user_scale;
}

int64_t lora_qk_row(int64_t r, int64_t hd, bool to_gguf) {
    int64_t h = r / hd, k = r % hd;
    if (to_gguf) return h * hd + (k % 2) * (hd / 2) + k / 2; /* GGUF row k = 2i + j  <-  HF row j*hd/2 + i */
    return h * hd + 2 * (k % (hd / 2)) + k / (hd / 2);      /* HF row k = j*hd/2 + i  <-  GGUF row 2i + j */
}

/* ---- memory: one block of floats for every a and b -------------------------------------------- */

typedef struct {
    int64_t used, cap; /* floats */
    float data[];
} lora_arena;

lora_adapter *lora_adapter_alloc(const herd_model *base, float alpha, int64_t floats) {
    lora_adapter *a = herd_xcalloc(1, sizeof *a);
    a->alpha = alpha;
    a->n_layer = base->hp.n_layer;
    a->m = herd_xcalloc((size_t)(a->n_layer * LORA_N_TARGETS), sizeof *a->m);
    lora_arena *ar = malloc(sizeof *ar + (size_t)floats * sizeof(float));
    if (!ar) {
        free(a->m);
        free(a);
        return NULL;
    }
    ar->used = 0;
    ar->cap = floats;
    a->owned = ar;
    return a;
}

static float *arena_take(lora_adapter *a, int64_t n) {
    lora_arena *ar = a->owned;
    HERD_ASSERT(ar && ar->used + n <= ar->cap);
    float *p = ar->data + ar->used;
    ar->used += n;
    return p;
}

lora_adapter *lora_adapter_new(const herd_model *base, unsigned targets, int64_t rank, float alpha) {
    int64_t floats = 0;
    for (int64_t l = 0; l < base->hp.n_layer; l++)
        for (int t = 0; t < LORA_N_TARGETS; t++)
            if (targets & (1u << t)) {
                const weight *w = lora_target_weight(base, l, t);
                floats += rank * (w->n_in + w->n_out);
            }
    lora_adapter *a = lora_adapter_alloc(base, alpha, floats);
    if (!a) return NULL;
    memset(((lora_arena *)a->owned)->data, 0, (size_t)floats * sizeof(float));
    for (int64_t l = 0; l < base->hp.n_layer; l++)
        for (int t = 0; t < LORA_N_TARGETS; t++)
            if (targets & (1u << t)) {
                const weight *w = lora_target_weight(base, l, t);
                lora_matrix *mt = &a->m[l * LORA_N_TARGETS + t];
                mt->rank = rank;
                mt->a = arena_take(a, rank * w->n_in);
                mt->b = arena_take(a, rank * w->n_out);
            }
    return a;
}

void lora_adapter_free(lora_adapter *a) {
    if (!a) return;
    free(a->owned);
    free(a->m);
    free(a);
}

/* ---- checking and storing a pair ---------------------------------------------------------------- */

static bool float_type(int t) {
    return t == HERD_TYPE_F32 || t == HERD_TYPE_F16 || t == HERD_TYPE_BF16;
}

/* A [rows][cols] matrix's shape the way its file writes it: GGUF {cols, rows}, safetensors [rows, cols] */
static const char *shape_str(char *buf, size_t cap, bool gguf, int64_t rows, int64_t cols) {
    if (gguf) snprintf(buf, cap, "{%lld, %lld}", (long long)cols, (long long)rows);
    else snprintf(buf, cap, "[%lld, %lld]", (long long)rows, (long long)cols);
    return buf;
}

int lora_pair_check(const herd_model *base, int64_t layer, int target, const lora_pair_src *s) {
    bool gguf = !s->b_hf_order; /* GGUF files hold GGUF order, PEFT files HF order: the same flag */
    char want[64], got[64];
    if (layer < 0 || layer >= base->hp.n_layer)
        return herd_err(HERD_E_FORMAT, "lora: %s: tensor '%s' is for layer %lld, but the base model has %lld layers",
                        s->file, s->a_name, (long long)layer, (long long)base->hp.n_layer);
    if (!float_type(s->a_type) || !float_type(s->b_type))
        return herd_err(HERD_E_UNSUPPORTED, "lora: %s: tensor '%s' has type %s; adapters must be f32, f16 or bf16",
                        s->file, float_type(s->a_type) ? s->b_name : s->a_name,
                        herd_type_name(float_type(s->a_type) ? s->b_type : s->a_type));
    const weight *w = lora_target_weight(base, layer, target);
    if (s->a_rows < 1)
        return herd_err(HERD_E_FORMAT, "lora: %s: tensor '%s' has shape %s: rank 0", s->file, s->a_name,
                        shape_str(got, sizeof got, gguf, s->a_rows, s->a_cols));
    if (s->a_cols != w->n_in)
        return herd_err(HERD_E_FORMAT, "lora: %s: tensor '%s' has shape %s, expected %s (the base's %s has rows of %lld)",
                        s->file, s->a_name, shape_str(got, sizeof got, gguf, s->a_rows, s->a_cols),
                        shape_str(want, sizeof want, gguf, s->a_rows, w->n_in), w->name, (long long)w->n_in);
    if (s->b_cols != s->a_rows)
        return herd_err(HERD_E_FORMAT, "lora: %s: tensor '%s' has shape %s, expected %s (rank %lld of '%s')", s->file,
                        s->b_name, shape_str(got, sizeof got, gguf, s->b_rows, s->b_cols),
                        shape_str(want, sizeof want, gguf, s->b_rows, s->a_rows), (long long)s->a_rows, s->a_name);
    if (s->b_rows != w->n_out)
        return herd_err(HERD_E_FORMAT, "lora: %s: tensor '%s' has shape %s, expected %s (the base's %s has %lld rows)",
                        s->file, s->b_name, shape_str(got, sizeof got, gguf, s->b_rows, s->b_cols),
                        shape_str(want, sizeof want, gguf, w->n_out, s->b_cols), w->name, (long long)w->n_out);
    return HERD_OK;
}

void lora_pair_store(lora_adapter *a, const herd_model *base, int64_t layer, int target, const lora_pair_src *s) {
    const weight *w = lora_target_weight(base, layer, target);
    lora_matrix *mt = &a->m[layer * LORA_N_TARGETS + target];
    const int64_t r = s->a_rows, hd = base->hp.head_dim;
    const kernel_type_ops *ta = kernels_type_isa(s->a_type, KERNEL_ISA_REF), *tb = kernels_type_isa(s->b_type, KERNEL_ISA_REF);
    const int64_t esb = s->b_type == HERD_TYPE_F32 ? 4 : 2;
    mt->rank = r;
    mt->a = arena_take(a, r * w->n_in);
    mt->b = arena_take(a, r * w->n_out);
    ta->to_f32(s->a_data, mt->a, r * w->n_in);
    /* b: row by row, Q/K rows moved when the file's order is not the base's */
    bool perm = (target == LORA_Q || target == LORA_K) && s->b_hf_order != base->rope_half_split;
    for (int64_t row = 0; row < w->n_out; row++) {
        int64_t src = perm ? lora_qk_row(row, hd, !base->rope_half_split) : row;
        tb->to_f32(s->b_data + src * r * esb, mt->b + row * r, r);
    }
}

/* ---- llama.cpp's adapter GGUF: read ----------------------------------------------------------- */

/* "blk.N.<gguf>.weight.lora_a|b" -> layer, target, is_b; false for any other name */
static bool parse_gguf_name(const char *name, int64_t *layer, int *target, bool *is_b) {
    if (strncmp(name, "blk.", 4) != 0) return false;
    char *end;
    errno = 0;
    long long l = strtoll(name + 4, &end, 10);
    if (errno || end == name + 4 || *end != '.' || l < 0) return false;
    for (int t = 0; t < LORA_N_TARGETS; t++) {
        size_t n = strlen(k_gguf[t]);
        if (strncmp(end + 1, k_gguf[t], n) != 0) continue;
        const char *rest = end + 1 + n;
        if (strcmp(rest, ".weight.lora_a") && strcmp(rest, ".weight.lora_b")) continue;
        *layer = l, *target = t, *is_b = rest[13] == 'b';
        return true;
    }
    return false;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static int load_gguf(const herd_model *base, const char *path, lora_adapter **out) {
    herd_mapped_file f;
    int rc = herd_file_map(path, &f);
    if (rc) return herd_err(rc, "lora: %s", herd_last_error());
    gguf_file g;
    if ((rc = gguf_parse(f.data, f.size, path, &g))) {
        herd_file_unmap(&f);
        return herd_err(rc, "lora: %s", herd_last_error());
    }
    const int64_t nl = base->hp.n_layer, n_slots = nl * LORA_N_TARGETS;
    const gguf_tensor **ta = NULL, **tb = NULL;
    lora_adapter *a = NULL;
    gguf_str s;
    if (!gguf_get_str(&g, "general.type", &s)) {
        rc = herd_err(HERD_E_FORMAT, "lora: %s: no general.type = 'adapter': not a LoRA adapter (a model?)", path);
        goto done;
    }
    if (s.len != 7 || memcmp(s.ptr, "adapter", 7)) {
        rc = herd_err(HERD_E_FORMAT, "lora: %s: general.type is '%.*s', expected 'adapter' (is this a LoRA adapter?)",
                      path, (int)s.len, s.ptr);
        goto done;
    }
    if (!gguf_get_str(&g, "adapter.type", &s) || s.len != 4 || memcmp(s.ptr, "lora", 4)) {
        bool has = gguf_get_str(&g, "adapter.type", &s);
        rc = herd_err(HERD_E_UNSUPPORTED, "lora: %s: adapter.type is '%.*s', expected 'lora'", path, has ? (int)s.len : 0,
                      has ? s.ptr : "");
        goto done;
    }
    if (gguf_get_str(&g, "general.architecture", &s) && (s.len != 5 || memcmp(s.ptr, "llama", 5))) {
        rc = herd_err(HERD_E_UNSUPPORTED, "lora: %s: general.architecture is '%.*s', the base model is 'llama'", path,
                      (int)s.len, s.ptr);
        goto done;
    }
    double alpha = 0;
    if (gguf_find_key(&g, "adapter.lora.alpha") >= 0 && !gguf_get_float(&g, "adapter.lora.alpha", &alpha)) {
        rc = herd_err(HERD_E_FORMAT, "lora: %s: adapter.lora.alpha is not a number", path);
        goto done;
    }
    ta = herd_xcalloc((size_t)n_slots, sizeof *ta);
    tb = herd_xcalloc((size_t)n_slots, sizeof *tb);
    for (int64_t i = 0; i < g.n_tensors; i++) {
        const gguf_tensor *t = &g.tensors[i];
        int64_t l;
        int tg;
        bool is_b;
        if (ends_with(t->name, "_norm.weight")) continue; /* as llama.cpp: norm adapters are ignored */
        if (!parse_gguf_name(t->name, &l, &tg, &is_b)) {
            bool known = ends_with(t->name, ".lora_a") || ends_with(t->name, ".lora_b");
            rc = herd_err(known ? HERD_E_UNSUPPORTED : HERD_E_FORMAT,
                          known ? "lora: %s: tensor '%s' adapts a matrix herd does not adapt (only attn_q, attn_k, "
                                  "attn_v, attn_output, ffn_gate, ffn_up, ffn_down of each layer)"
                                : "lora: %s: tensor '%s' is not a LoRA tensor (blk.N.<matrix>.weight.lora_a / .lora_b)",
                          path, t->name);
            goto done;
        }
        if (l >= nl) {
            rc = herd_err(HERD_E_FORMAT, "lora: %s: tensor '%s' is for layer %lld, but the base model has %lld layers",
                          path, t->name, (long long)l, (long long)nl);
            goto done;
        }
        if (t->n_dims != 2) {
            rc = herd_err(HERD_E_FORMAT, "lora: %s: tensor '%s' has %d dimensions, expected 2", path, t->name, t->n_dims);
            goto done;
        }
        const gguf_tensor **slot = is_b ? &tb[l * LORA_N_TARGETS + tg] : &ta[l * LORA_N_TARGETS + tg];
        if (*slot) {
            rc = herd_err(HERD_E_FORMAT, "lora: %s: tensor '%s' appears twice", path, t->name);
            goto done;
        }
        *slot = t;
    }
    /* every pair complete and fitting the base, then one block for all of them */
    int64_t floats = 0;
    for (int64_t k = 0; k < n_slots && !rc; k++) {
        if (!ta[k] && !tb[k]) continue;
        if (!ta[k] || !tb[k]) {
            const char *have = (ta[k] ? ta[k] : tb[k])->name;
            size_t n = strlen(have);
            rc = herd_err(HERD_E_FORMAT, "lora: %s: tensor '%s' has no matching '%.*s%s'", path, have, (int)(n - 1), have,
                          ta[k] ? "b" : "a");
            break;
        }
        lora_pair_src src = {.file = path, .a_name = ta[k]->name, .b_name = tb[k]->name, .a_type = ta[k]->type,
                             .b_type = tb[k]->type, .a_data = ta[k]->data, .b_data = tb[k]->data,
                             .a_rows = ta[k]->ne[1], .a_cols = ta[k]->ne[0], .b_rows = tb[k]->ne[1],
                             .b_cols = tb[k]->ne[0], .b_hf_order = false};
        rc = lora_pair_check(base, k / LORA_N_TARGETS, (int)(k % LORA_N_TARGETS), &src);
        floats += src.a_rows * (src.a_cols + src.b_rows);
    }
    if (rc) goto done;
    if (floats == 0) {
        rc = herd_err(HERD_E_FORMAT, "lora: %s: the adapter holds no lora_a / lora_b tensors", path);
        goto done;
    }
    a = lora_adapter_alloc(base, (float)alpha, floats);
    if (!a) {
        rc = herd_err(HERD_E_NOMEM, "lora: %s: out of memory for %lld floats", path, (long long)floats);
        goto done;
    }
    for (int64_t k = 0; k < n_slots; k++) {
        if (!ta[k]) continue;
        lora_pair_src src = {.file = path, .a_type = ta[k]->type, .b_type = tb[k]->type, .a_data = ta[k]->data,
                             .b_data = tb[k]->data, .a_rows = ta[k]->ne[1], .a_cols = ta[k]->ne[0],
                             .b_rows = tb[k]->ne[1], .b_cols = tb[k]->ne[0], .b_hf_order = false};
        lora_pair_store(a, base, k / LORA_N_TARGETS, (int)(k % LORA_N_TARGETS), &src);
    }
    *out = a;
done:
    free(ta);
    free(tb);
    gguf_file_clear(&g);
    herd_file_unmap(&f);
    return rc;
}

int lora_adapter_load(const herd_model *base, const char *path, lora_adapter **out) {
    *out = NULL;
    if (base->vocab_only) return herd_err(HERD_E_ARG, "lora: the base model holds no weights to adapt");
    struct stat st;
    if (stat(path, &st) != 0) return herd_err(HERD_E_IO, "lora: cannot open '%s': %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) return lora_adapter_load_peft(base, path, out);
    return load_gguf(base, path, out);
}

/* ---- writing ------------------------------------------------------------------------------------ */

/* path + ".tmp.PID" (caller frees) */
/* A b matrix written with its Q/K rows moved into GGUF order (HF-order base) */
typedef struct {
    const lora_matrix *mt;
    int64_t n_out, head_dim;
} b_perm;

static int fill_b_gguf(void *user, const char *name, uint8_t *dst, uint64_t nbytes) {
    (void)name;
    const b_perm *p = user;
    const int64_t r = p->mt->rank;
    HERD_ASSERT(nbytes == (uint64_t)(p->n_out * r) * sizeof(float));
    for (int64_t row = 0; row < p->n_out; row++) /* GGUF row `row` is HF (the base's) row lora_qk_row(row, hd, true) */
        memcpy(dst + row * r * (int64_t)sizeof(float), p->mt->b + lora_qk_row(row, p->head_dim, true) * r,
               (size_t)r * sizeof(float));
    return HERD_OK;
}

int lora_adapter_save_gguf(const lora_adapter *a, const herd_model *base, const char *path) {
    if (a->n_layer != base->hp.n_layer)
        return herd_err(HERD_E_ARG, "lora: the adapter has %lld layers, the base model %lld", (long long)a->n_layer,
                        (long long)base->hp.n_layer);
    gguf_writer *w = gguf_writer_new();
    gguf_writer_set_str(w, "general.architecture", "llama", 5);
    gguf_writer_set_str(w, "general.type", "adapter", 7);
    gguf_writer_set_str(w, "adapter.type", "lora", 4);
    gguf_writer_set_f32(w, "adapter.lora.alpha", a->alpha);
    b_perm *perms = herd_xcalloc((size_t)(a->n_layer * 2 + 1), sizeof *perms);
    int64_t n_perm = 0, n_pairs = 0;
    int rc = HERD_OK;
    char name[96];
    for (int64_t l = 0; l < a->n_layer && !rc; l++)
        for (int t = 0; t < LORA_N_TARGETS && !rc; t++) {
            const lora_matrix *mt = &a->m[l * LORA_N_TARGETS + t];
            if (mt->rank <= 0) continue;
            const weight *bw = lora_target_weight(base, l, t);
            int64_t ne_a[2] = {bw->n_in, mt->rank}, ne_b[2] = {mt->rank, bw->n_out};
            snprintf(name, sizeof name, "blk.%lld.%s.weight.lora_a", (long long)l, k_gguf[t]);
            rc = gguf_writer_add_tensor(w, name, HERD_TYPE_F32, 2, ne_a, mt->a, NULL, NULL);
            snprintf(name, sizeof name, "blk.%lld.%s.weight.lora_b", (long long)l, k_gguf[t]);
            if (!rc && (t == LORA_Q || t == LORA_K) && base->rope_half_split) {
                perms[n_perm] = (b_perm){mt, bw->n_out, base->hp.head_dim};
                rc = gguf_writer_add_tensor(w, name, HERD_TYPE_F32, 2, ne_b, NULL, fill_b_gguf, &perms[n_perm++]);
            } else if (!rc) {
                rc = gguf_writer_add_tensor(w, name, HERD_TYPE_F32, 2, ne_b, mt->b, NULL, NULL);
            }
            n_pairs++;
        }
    if (!rc && n_pairs == 0) rc = herd_err(HERD_E_ARG, "lora: the adapter holds no matrices to write to '%s'", path);
    if (!rc) {
        char *tmp = herd_file_temp_name(path);
        rc = herd_file_commit(tmp, path, gguf_writer_write(w, tmp));
        free(tmp);
    }
    gguf_writer_free(w);
    free(perms);
    return rc;
}
