/* Loading the llama architecture from GGUF: hyperparameters, tokenizer, weight views. */
#include "model.h"

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

/* Looks up a 2-D weight and checks its shape and that herd can compute with its type. */
static int get_weight(herd_model *m, const char *name, int64_t n_in, int64_t n_out, weight *w, bool optional) {
    const gguf_tensor *t = gguf_find_tensor(&m->gguf, name);
    memset(w, 0, sizeof *w);
    if (!t) {
        if (optional) return HERD_OK;
        return herd_err(HERD_E_FORMAT, "model: %s: tensor '%s' is missing", m->file.path, name);
    }
    if (t->n_dims > 2 || t->ne[0] != n_in || t->ne[1] != n_out)
        return herd_err(HERD_E_FORMAT, "model: %s: tensor '%s' has shape [%lld, %lld], expected [%lld, %lld]",
                        m->file.path, name, (long long)t->ne[0], (long long)t->ne[1], (long long)n_in,
                        (long long)n_out);
    if (!kernels_type(t->type))
        return herd_err(HERD_E_UNSUPPORTED, "model: %s: tensor '%s' has type %s, which herd does not support yet",
                        m->file.path, name, herd_type_name(t->type));
    w->type = t->type;
    w->n_in = n_in;
    w->n_out = n_out;
    w->row_bytes = kernels_row_bytes(t->type, n_in);
    w->data = t->data;
    w->name = t->name;
    return HERD_OK;
}

/* Copies a 1-D tensor of n elements (f32, f16 or bf16) into dst as f32. */
static int get_vector(herd_model *m, const char *name, int64_t n, float *dst, bool optional, bool *found) {
    const gguf_tensor *t = gguf_find_tensor(&m->gguf, name);
    if (found) *found = t != NULL;
    if (!t) {
        if (optional) return HERD_OK;
        return herd_err(HERD_E_FORMAT, "model: %s: tensor '%s' is missing", m->file.path, name);
    }
    if (t->ne[0] != n || t->ne[1] != 1 || t->ne[2] != 1 || t->ne[3] != 1)
        return herd_err(HERD_E_FORMAT, "model: %s: tensor '%s' has %lld x %lld elements, expected a vector of %lld",
                        m->file.path, name, (long long)t->ne[0], (long long)t->ne[1], (long long)n);
    if (t->type == HERD_TYPE_F32) memcpy(dst, t->data, (size_t)n * sizeof(float));
    else if (t->type == HERD_TYPE_F16) row_f16_to_f32_ref(t->data, dst, n);
    else if (t->type == HERD_TYPE_BF16) row_bf16_to_f32_ref(t->data, dst, n);
    else
        return herd_err(HERD_E_UNSUPPORTED, "model: %s: tensor '%s' has type %s; vectors must be f32, f16 or bf16",
                        m->file.path, name, herd_type_name(t->type));
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
    if ((rc = get_vector(m, "output_norm.weight", hp->n_embd, fp, false, NULL))) return rc;
    m->output_norm = fp;
    fp += hp->n_embd;
    if ((rc = get_weight(m, "output.weight", hp->n_embd, hp->n_vocab, &m->output, true))) return rc;
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
    int64_t count[64] = {0};
    for (int64_t i = 0; i < m->gguf.n_tensors; i++) {
        const gguf_tensor *t = &m->gguf.tensors[i];
        m->n_params += t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
        if (t->n_dims >= 2 && t->type >= 0 && t->type < 64) count[t->type] += t->ne[0] * t->ne[1];
    }
    m->weight_type = m->tok_embd.type;
    for (int t = 0; t < 64; t++)
        if (count[t] > count[m->weight_type]) m->weight_type = t;
    return HERD_OK;
}

int model_load(const char *path, int flags, herd_model **out) {
    *out = NULL;
    kernels_init();
    herd_model *m = herd_xcalloc(1, sizeof *m);
    int rc = herd_file_map(path, &m->file);
    if (rc) goto fail;
    if ((rc = gguf_parse(m->file.data, m->file.size, path, &m->gguf))) goto fail;
    if ((rc = load_hparams(m))) goto fail;
    if ((rc = vocab_load(&m->gguf, path, &m->vocab))) goto fail;
    m->hp.n_vocab = vocab_n_tokens(m->vocab);
    int64_t nv;
    if (gguf_get_int(&m->gguf, "llama.vocab_size", &nv) && nv != m->hp.n_vocab) {
        rc = herd_err(HERD_E_FORMAT, "model: %s: llama.vocab_size %lld differs from the %lld tokenizer tokens", path,
                      (long long)nv, (long long)m->hp.n_vocab);
        goto fail;
    }
    gguf_str tmpl;
    if (gguf_get_str(&m->gguf, "tokenizer.chat_template", &tmpl)) m->chat_template = herd_xstrndup(tmpl.ptr, tmpl.len);
    m->vocab_only = (flags & MODEL_LOAD_VOCAB_ONLY) != 0;
    if (!m->vocab_only && (rc = load_weights(m))) goto fail;
    *out = m;
    return HERD_OK;
fail:
    model_free(m);
    return rc;
}

void model_free(herd_model *m) {
    if (!m) return;
    vocab_free(m->vocab);
    free(m->layers);
    free(m->f32_owned);
    free(m->chat_template);
    gguf_file_clear(&m->gguf);
    herd_file_unmap(&m->file);
    free(m);
}
