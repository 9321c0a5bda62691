/* Loading the llama architecture: hyperparameters and tokenizer from a GGUF (here) or a Hugging Face
 * directory (model_hf.c), then the weight views from the tensor table, whichever filled it. */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/log.h"
#include "../kernels/kernels.h"
#include "../kernels/types.h"

static int get_req_int(const herd_model *m, const char *key, int64_t *out) {
    if (!gguf_get_int(&m->gguf, key, out))
        return herd_err(HERD_E_FORMAT, "model: %s: required metadata key '%s' is missing or not an integer",
                        m->file.path, key);
    return HERD_OK;
}

static int load_hparams(herd_model *m) {
    const gguf_file *g = &m->gguf;
    model_hparams *hp = &m->hp;
    gguf_str arch;
    if (!gguf_get_str(g, "general.architecture", &arch))
        return herd_err(HERD_E_FORMAT, "model: %s: general.architecture is missing", m->file.path);
    if (arch.len != 5 || memcmp(arch.ptr, "llama", 5) != 0)
        return herd_err(HERD_E_UNSUPPORTED, "model: %s: architecture '%.*s' is not supported (herd runs 'llama')",
                        m->file.path, (int)(arch.len > 64 ? 64 : arch.len), arch.ptr);
    int rc;
    if ((rc = get_req_int(m, "llama.embedding_length", &hp->n_embd)) ||
        (rc = get_req_int(m, "llama.block_count", &hp->n_layer)) ||
        (rc = get_req_int(m, "llama.feed_forward_length", &hp->n_ff)) ||
        (rc = get_req_int(m, "llama.attention.head_count", &hp->n_head)))
        return rc;
    if (!gguf_get_int(g, "llama.context_length", &hp->n_ctx_train)) hp->n_ctx_train = 2048;
    if (!gguf_get_int(g, "llama.attention.head_count_kv", &hp->n_head_kv)) hp->n_head_kv = hp->n_head;
    const int64_t lim = (int64_t)1 << 24;
    if (hp->n_embd <= 0 || hp->n_embd > lim || hp->n_layer <= 0 || hp->n_layer > 4096 || hp->n_ff <= 0 ||
        hp->n_ff > lim || hp->n_head <= 0 || hp->n_head > 4096 || hp->n_head_kv <= 0 || hp->n_ctx_train <= 0)
        return herd_err(HERD_E_FORMAT,
                        "model: %s: implausible hyperparameters (n_embd %lld, n_layer %lld, n_ff %lld, n_head %lld, "
                        "n_head_kv %lld, context %lld)",
                        m->file.path, (long long)hp->n_embd, (long long)hp->n_layer, (long long)hp->n_ff,
                        (long long)hp->n_head, (long long)hp->n_head_kv, (long long)hp->n_ctx_train);
    if (hp->n_head % hp->n_head_kv != 0)
        return herd_err(HERD_E_FORMAT, "model: %s: n_head %lld is not a multiple of n_head_kv %lld", m->file.path,
                        (long long)hp->n_head, (long long)hp->n_head_kv);
    int64_t kl, vl, rot;
    hp->head_dim = hp->n_embd / hp->n_head;
    if (gguf_get_int(g, "llama.attention.key_length", &kl)) hp->head_dim = kl;
    if (gguf_get_int(g, "llama.attention.value_length", &vl) && vl != hp->head_dim)
        return herd_err(HERD_E_UNSUPPORTED, "model: %s: value_length %lld differs from key_length %lld", m->file.path,
                        (long long)vl, (long long)hp->head_dim);
    if (hp->head_dim <= 0 || hp->head_dim % 2 != 0 || hp->head_dim > 4096)
        return herd_err(HERD_E_FORMAT, "model: %s: head dimension %lld must be even and positive", m->file.path,
                        (long long)hp->head_dim);
    if (gguf_get_int(g, "llama.rope.dimension_count", &rot) && rot != hp->head_dim)
        return herd_err(HERD_E_UNSUPPORTED,
                        "model: %s: partial rotary embedding (rope.dimension_count %lld of head_dim %lld) is not "
                        "supported",
                        m->file.path, (long long)rot, (long long)hp->head_dim);
    double f;
    hp->rope_theta = gguf_get_float(g, "llama.rope.freq_base", &f) ? (float)f : 10000.0f;
    hp->norm_eps = gguf_get_float(g, "llama.attention.layer_norm_rms_epsilon", &f) ? (float)f : 1e-5f;
    hp->rope_freq_scale = 1.0f;
    gguf_str st;
    if (gguf_get_str(g, "llama.rope.scaling.type", &st) && !(st.len == 4 && memcmp(st.ptr, "none", 4) == 0)) {
        if (st.len == 6 && memcmp(st.ptr, "linear", 6) == 0) {
            if (gguf_get_float(g, "llama.rope.scaling.factor", &f) && f > 0) hp->rope_freq_scale = (float)(1.0 / f);
        } else {
            return herd_err(HERD_E_UNSUPPORTED, "model: %s: rope scaling type '%.*s' is not supported", m->file.path,
                            (int)(st.len > 32 ? 32 : st.len), st.ptr);
        }
    }
    if (!(hp->rope_theta > 0) || !(hp->norm_eps > 0))
        return herd_err(HERD_E_FORMAT, "model: %s: rope freq_base and rms epsilon must be positive", m->file.path);
    return HERD_OK;
}

/* Where the error messages point: the file holding tensor t (or the model path) and the name the
 * user finds there (for a HF directory, name translated back). */
static const char *where(const herd_model *m, const tensor_ref *t) {
    return t ? t->file : m->file.path;
}

static const char *src_name(const herd_model *m, const char *name, char *buf, size_t cap) {
    if (m->hf && hf_name_from_gguf(name, buf, cap)) return buf;
    return name;
}

static int missing(const herd_model *m, const char *name) {
    char buf[256];
    return herd_err(HERD_E_FORMAT, "model: %s: tensor '%s' is missing", m->file.path, src_name(m, name, buf, sizeof buf));
}

/* A tensor holding n values as a vector: [n], or [n, 1] in safetensors' order ([1, n] in GGUF's). */
static bool is_vector_of(const tensor_ref *t, int64_t n) {
    if (t->ne[2] != 1 || t->ne[3] != 1) return false;
    return (t->ne[0] == n && t->ne[1] == 1) || (t->row_major && t->n_dims == 2 && t->ne[0] == 1 && t->ne[1] == n);
}

/* Copies a vector tensor of n elements (f32, f16 or bf16) into dst as f32. */
static int get_vector(herd_model *m, const char *name, int64_t n, float *dst, bool optional, bool *found) {
    const tensor_ref *t = tensor_table_find(&m->tensors, name);
    if (found) *found = t != NULL;
    if (!t) return optional ? HERD_OK : missing(m, name);
    if (!is_vector_of(t, n)) {
        char have[96];
        tensor_ref_shape(t, have, sizeof have);
        return herd_err(HERD_E_FORMAT, "model: %s: tensor '%s' has shape %s, expected a vector of %lld", where(m, t),
                        t->src_name, have, (long long)n);
    }
    if (t->type == HERD_TYPE_F32) memcpy(dst, t->data, (size_t)n * sizeof(float));
    else if (t->type == HERD_TYPE_F16) row_f16_to_f32_ref(t->data, dst, n);
    else if (t->type == HERD_TYPE_BF16) row_bf16_to_f32_ref(t->data, dst, n);
    else
        return herd_err(HERD_E_UNSUPPORTED, "model: %s: tensor '%s' has type %s; vectors must be f32, f16 or bf16",
                        where(m, t), t->src_name, t->dtype);
    return HERD_OK;
}

/* The per-row scales of an FP8 weight: tensor NAME_scale, n_out values, finite and >= 0. */
static int get_row_scale(herd_model *m, const char *name, int64_t n_out, weight *w) {
    char sname[128];
    snprintf(sname, sizeof sname, "%s" MODEL_FP8_SCALE_SUFFIX, name);
    float *sc = malloc((size_t)n_out * sizeof(float));
    if (!sc) return herd_err(HERD_E_NOMEM, "model: out of memory for the scales of '%s'", name);
    m->scales_owned = herd_xrealloc(m->scales_owned, (size_t)(m->n_scales_owned + 1) * sizeof *m->scales_owned);
    m->scales_owned[m->n_scales_owned++] = sc;
    int rc = get_vector(m, sname, n_out, sc, false, NULL);
    if (rc) return rc;
    for (int64_t r = 0; r < n_out; r++)
        if (!(sc[r] >= 0 && sc[r] < INFINITY)) {
            char buf[256];
            return herd_err(HERD_E_FORMAT, "model: %s: tensor '%s' row %lld has scale %g", m->file.path,
                            src_name(m, sname, buf, sizeof buf), (long long)r, sc[r]);
        }
    if (!(m->fp8_act_ub > 0))
        return herd_err(HERD_E_FORMAT, "model: %s: tensor '%s' is FP8, but no activation_scale_ub is given",
                        m->file.path, w->name);
    w->row_scale = sc;
    w->act_ub = m->fp8_act_ub;
    return HERD_OK;
}

/* Looks up a 2-D weight and checks its shape and that herd can compute with its type. */
static int get_weight(herd_model *m, const char *name, int64_t n_in, int64_t n_out, weight *w, bool optional) {
    const tensor_ref *t = tensor_table_find(&m->tensors, name);
    memset(w, 0, sizeof *w);
    if (!t) return optional ? HERD_OK : missing(m, name);
    if (t->n_dims > 2 || t->ne[0] != n_in || t->ne[1] != n_out) {
        char have[96], want[96];
        tensor_ref_shape(t, have, sizeof have);
        tensor_ref_shape_of(t, n_in, n_out, want, sizeof want);
        return herd_err(HERD_E_FORMAT, "model: %s: tensor '%s' has shape %s, expected %s%s", where(m, t), t->src_name,
                        have, want, m->hf ? " (from config.json)" : "");
    }
    if (t->type < 0 || !kernels_type(t->type))
        return herd_err(HERD_E_UNSUPPORTED, "model: %s: tensor '%s' has type %s, which herd does not support yet",
                        where(m, t), t->src_name, t->type < 0 ? t->dtype : herd_type_name(t->type));
    w->type = t->type;
    w->n_in = n_in;
    w->n_out = n_out;
    w->row_bytes = kernels_row_bytes(t->type, n_in);
    w->data = t->data;
    w->name = t->name;
    if (t->type == HERD_TYPE_FP8_E4M3) return get_row_scale(m, name, n_out, w);
    return HERD_OK;
}

static int load_weights(herd_model *m) {
    const model_hparams *hp = &m->hp;
    int64_t q_dim = hp->n_head * hp->head_dim, kv_dim = hp->n_head_kv * hp->head_dim;
    char name[96];
    int rc;
    /* f32 store for the vectors: output_norm + 2 norms per layer + rope_freqs */
    int64_t n_f32 = hp->n_embd * (1 + 2 * hp->n_layer) + hp->head_dim / 2;
    m->f32_owned = malloc((size_t)n_f32 * sizeof(float));
    if (!m->f32_owned) return herd_err(HERD_E_NOMEM, "model: out of memory for norm weights");
    float *fp = m->f32_owned;
    m->layers = herd_xcalloc((size_t)hp->n_layer, sizeof *m->layers);

    if ((rc = get_weight(m, "token_embd.weight", hp->n_embd, hp->n_vocab, &m->tok_embd, false))) return rc;
    if (m->tok_embd.row_scale) /* rows are looked up, not multiplied: they must convert on their own */
        return herd_err(HERD_E_UNSUPPORTED, "model: %s: token embeddings in FP8 are not supported", m->file.path);
    if ((rc = get_vector(m, "output_norm.weight", hp->n_embd, fp, false, NULL))) return rc;
    m->output_norm = fp;
    fp += hp->n_embd;
    /* a HF directory says whether the output is tied (lm_head.weight then is absent or ignored) */
    bool hf_tied = m->hf && m->hf->cfg.tie_word_embeddings;
    if (!hf_tied && (rc = get_weight(m, "output.weight", hp->n_embd, hp->n_vocab, &m->output, m->hf == NULL)))
        return rc;
    m->tied_output = m->output.data == NULL;
    if (m->tied_output) m->output = m->tok_embd;
    bool has_freqs;
    if ((rc = get_vector(m, "rope_freqs.weight", hp->head_dim / 2, fp, true, &has_freqs))) return rc;
    if (has_freqs) {
        for (int64_t i = 0; i < hp->head_dim / 2; i++)
            if (!(fp[i] > 0))
                return herd_err(HERD_E_FORMAT, "model: %s: rope_freqs.weight[%lld] = %g is not a positive divisor",
                                m->file.path, (long long)i, fp[i]);
        m->rope_freqs = fp;
        fp += hp->head_dim / 2;
    } else if (hp->rope_l3_factor > 0) { /* HF directory: the same divisors from config.json */
        model_llama3_rope_freqs(fp, hp->head_dim, hp->rope_theta, hp->rope_l3_factor, hp->rope_l3_low,
                                hp->rope_l3_high, hp->rope_l3_orig_ctx);
        m->rope_freqs = fp;
        fp += hp->head_dim / 2;
    }
    for (int64_t l = 0; l < hp->n_layer; l++) {
        layer_weights *L = &m->layers[l];
#define W(field, suffix, nin, nout)                                                                           \
    snprintf(name, sizeof name, "blk.%lld." suffix, (long long)l);                                            \
    if ((rc = get_weight(m, name, nin, nout, &L->field, false))) return rc;
#define V(field, suffix)                                                                                      \
    snprintf(name, sizeof name, "blk.%lld." suffix, (long long)l);                                            \
    if ((rc = get_vector(m, name, hp->n_embd, fp, false, NULL))) return rc;                                   \
    L->field = fp;                                                                                            \
    fp += hp->n_embd;
        V(attn_norm, "attn_norm.weight")
        W(wq, "attn_q.weight", hp->n_embd, q_dim)
        W(wk, "attn_k.weight", hp->n_embd, kv_dim)
        W(wv, "attn_v.weight", hp->n_embd, kv_dim)
        W(wo, "attn_output.weight", q_dim, hp->n_embd)
        V(ffn_norm, "ffn_norm.weight")
        W(w_gate, "ffn_gate.weight", hp->n_embd, hp->n_ff)
        W(w_up, "ffn_up.weight", hp->n_embd, hp->n_ff)
        W(w_down, "ffn_down.weight", hp->n_ff, hp->n_embd)
#undef W
#undef V
    }
    /* the most common 2-D type, and the parameter count */
    int64_t count[65] = {0}; /* ggml types; [64]: FP8 */
    for (int64_t i = 0; i < m->tensors.n; i++) {
        const tensor_ref *t = &m->tensors.t[i];
        m->n_params += t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
        int slot = t->type == HERD_TYPE_FP8_E4M3 ? 64 : t->type;
        if (t->n_dims >= 2 && slot >= 0 && slot <= 64) count[slot] += t->ne[0] * t->ne[1];
    }
    m->weight_type = m->tok_embd.type;
    for (int t = 0; t <= 64; t++)
        if (count[t] > count[m->weight_type == HERD_TYPE_FP8_E4M3 ? 64 : m->weight_type])
            m->weight_type = t == 64 ? HERD_TYPE_FP8_E4M3 : t;
    return HERD_OK;
}

/* herd.required_extensions: every listed extension must be one herd has, and herd's extension
 * tensor types may only appear in a file that lists theirs. */
static int check_extensions(herd_model *m) {
    const gguf_kv *ext = gguf_get_arr(&m->gguf, MODEL_KEY_EXTENSIONS, GGUF_T_STRING);
    bool fp8 = false;
    if (!ext && gguf_find_key(&m->gguf, MODEL_KEY_EXTENSIONS) >= 0)
        return herd_err(HERD_E_FORMAT, "model: %s: %s is not a string array", m->file.path, MODEL_KEY_EXTENSIONS);
    for (uint64_t i = 0; ext && i < ext->arr_n; i++) {
        const gguf_str *e = &ext->strs[i];
        if (e->len == strlen(MODEL_EXT_FP8) && memcmp(e->ptr, MODEL_EXT_FP8, e->len) == 0) fp8 = true;
        else
            return herd_err(HERD_E_UNSUPPORTED, "model: %s: requires the herd extension '%.*s', which this herd does not know",
                            m->file.path, (int)(e->len > 64 ? 64 : e->len), e->ptr);
    }
    for (int64_t i = 0; i < m->gguf.n_tensors; i++)
        if (m->gguf.tensors[i].type == HERD_TYPE_FP8_E4M3 && !fp8)
            return herd_err(HERD_E_FORMAT, "model: %s: tensor '%s' has herd's extension type fp8_e4m3, but the file "
                            "does not list '%s' in %s", m->file.path, m->gguf.tensors[i].name, MODEL_EXT_FP8,
                            MODEL_KEY_EXTENSIONS);
    double ub;
    if (fp8) {
        if (!gguf_get_float(&m->gguf, MODEL_KEY_FP8_UB, &ub) || !(ub > 0))
            return herd_err(HERD_E_FORMAT, "model: %s: %s must be a positive number", m->file.path, MODEL_KEY_FP8_UB);
        m->fp8_act_ub = (float)ub;
    }
    return HERD_OK;
}

static int load_gguf(herd_model *m, const char *path) {
    int rc;
    if ((rc = herd_file_map(path, &m->file))) return rc;
    if ((rc = gguf_parse(m->file.data, m->file.size, path, &m->gguf))) return rc;
    if ((rc = load_hparams(m))) return rc;
    if ((rc = check_extensions(m))) return rc;
    if ((rc = vocab_load(&m->gguf, path, &m->vocab))) return rc;
    m->hp.n_vocab = vocab_n_tokens(m->vocab);
    int64_t nv;
    if (gguf_get_int(&m->gguf, "llama.vocab_size", &nv) && nv != m->hp.n_vocab)
        return herd_err(HERD_E_FORMAT, "model: %s: llama.vocab_size %lld differs from the %lld tokenizer tokens", path,
                        (long long)nv, (long long)m->hp.n_vocab);
    gguf_str tmpl;
    if (gguf_get_str(&m->gguf, "tokenizer.chat_template", &tmpl)) m->chat_template = herd_xstrndup(tmpl.ptr, tmpl.len);
    tensor_table_from_gguf(&m->tensors, &m->gguf, m->file.path);
    return HERD_OK;
}

int model_load(const char *path, int flags, herd_model **out) {
    return model_load_shard(path, flags, 0, 1, out);
}

int model_load_shard(const char *path, int flags, int rank, int n, herd_model **out) {
    return model_load_part(path, flags, rank, n, 0, 1, out);
}

int model_load_part(const char *path, int flags, int rank, int n, int stage, int n_stages, herd_model **out) {
    *out = NULL;
    kernels_init();
    herd_model *m = herd_xcalloc(1, sizeof *m);
    m->vocab_only = (flags & MODEL_LOAD_VOCAB_ONLY) != 0;
    m->shard_n = 1;
    m->n_stages = 1;
    int rc = hf_is_dir(path) ? model_load_hf(m, path) : load_gguf(m, path);
    m->n_layer_file = m->hp.n_layer;
    m->hp_file = m->hp;
    if (!rc && n > 1) rc = model_shard_check(&m->hp, n, path); /* refused before any weight is read */
    if (!rc && n_stages > 1) rc = model_stage_check(&m->hp, n_stages, path);
    if (!rc && !m->vocab_only) rc = load_weights(m);
    if (!rc && !m->vocab_only && n > 1) rc = model_shard(m, rank, n);
    if (!rc && !m->vocab_only && n_stages > 1) rc = model_stage(m, stage, n_stages);
    if (!rc && !m->vocab_only && !(flags & MODEL_LOAD_NO_REPACK)) rc = model_repack(m);
    if (rc) {
        model_free(m);
        return rc;
    }
    *out = m;
    return HERD_OK;
}

void model_free(herd_model *m) {
    if (!m) return;
    vocab_free(m->vocab);
    free(m->layers);
    free(m->f32_owned);
    for (int64_t i = 0; i < m->n_scales_owned; i++) free(m->scales_owned[i]);
    free(m->scales_owned);
    for (int64_t i = 0; i < m->n_packed_owned; i++) free(m->packed_owned[i]);
    free(m->packed_owned);
    free(m->chat_template);
    tensor_table_clear(&m->tensors);
    hf_vocab_free(m->hf_vocab);
    hf_dir_free(m->hf);
    gguf_file_clear(&m->gguf);
    herd_file_unmap(&m->file);
    free(m);
}
