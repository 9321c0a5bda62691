/* Public API: models and tokenizer (thin wrappers over src/model and src/tokenizer). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "../base/log.h"
#include "../chat/chat.h"
#include "../chat/chat_tokens.h"
#include "../model/model.h"
#include "api_tp.h"
#include "herd.h"

int herd_model_load(const char *path, herd_model **out) {
    if (api_tp) return model_load_part(path, 0, 0, api_tp->tp, 0, api_tp->pp, out); /* rank 0's part (api_tp.h) */
    return model_load(path, 0, out);
}

int herd_model_load_vocab(const char *path, herd_model **out) {
    return model_load(path, MODEL_LOAD_VOCAB_ONLY, out);
}

void herd_model_free(herd_model *m) {
    model_free(m);
}

static void copy_str(char *dst, size_t cap, const gguf_file *g, const char *key) {
    gguf_str s;
    dst[0] = 0;
    if (!gguf_get_str(g, key, &s)) return;
    size_t n = s.len < cap - 1 ? s.len : cap - 1;
    memcpy(dst, s.ptr, n);
    dst[n] = 0;
}

void herd_model_get_info(const herd_model *m, herd_model_info *o) {
    memset(o, 0, sizeof *o);
    const model_hparams *hp = &m->hp;
    copy_str(o->arch, sizeof o->arch, &m->gguf, "general.architecture");
    copy_str(o->name, sizeof o->name, &m->gguf, "general.name");
    if (m->hf) { /* config.json said LlamaForCausalLM */
        snprintf(o->arch, sizeof o->arch, "llama");
        snprintf(o->name, sizeof o->name, "%s", m->hf->cfg.name);
    }
    o->n_vocab = hp->n_vocab;
    o->n_ctx_train = hp->n_ctx_train;
    o->n_embd = hp->n_embd;
    const model_hparams *hf = &m->hp_file; /* the model's, not a tensor-parallel shard's or a pipeline stage's */
    o->n_layer = hf->n_layer;
    o->n_head = hf->n_head;
    o->n_head_kv = hf->n_head_kv;
    o->head_dim = hf->head_dim;
    o->n_ff = hf->n_ff;
    o->rope_theta = hp->rope_theta;
    o->norm_eps = hp->norm_eps;
    o->tied_output = m->tied_output;
    o->has_rope_freqs = m->rope_freqs != NULL;
    o->weight_type = m->weight_type;
    o->n_params = m->n_params;
    o->file_bytes = m->file.size;
    o->packed_bytes = (uint64_t)m->packed_bytes;
    snprintf(o->tokenizer, sizeof o->tokenizer, "%s", vocab_model_name(m->vocab));
    snprintf(o->tokenizer_pre, sizeof o->tokenizer_pre, "%s", vocab_pre_name(m->vocab));
    o->has_chat_template = m->chat_template != NULL;
    o->n_tensors = m->tensors.n;
    if (!m->vocab_only) {
        uint64_t b = (uint64_t)m->output.row_bytes * (uint64_t)m->output.n_out;
        for (int64_t l = 0; l < m->hp.n_layer; l++) {
            weight *w[MODEL_LAYER_MATRICES];
            model_layer_matrices(&m->layers[l], w);
            for (int i = 0; i < MODEL_LAYER_MATRICES; i++) b += (uint64_t)w[i]->row_bytes * (uint64_t)w[i]->n_out;
        }
        o->decode_bytes = b;
    }
    o->vocab_only = m->vocab_only;
}

const char *herd_model_chat_template(const herd_model *m) {
    return m->chat_template;
}

static void human_bytes(char *buf, size_t cap, uint64_t b) {
    if (b >= (1ull << 30)) snprintf(buf, cap, "%.2f GiB", (double)b / (1ull << 30));
    else if (b >= (1ull << 20)) snprintf(buf, cap, "%.2f MiB", (double)b / (1ull << 20));
    else snprintf(buf, cap, "%.1f KiB", (double)b / 1024);
}

void herd_model_print_info(const herd_model *m, FILE *fp, bool list_tensors) {
    herd_model_info in;
    herd_model_get_info(m, &in);
    char sz[32];
    human_bytes(sz, sizeof sz, in.file_bytes);
    if (m->hf)
        fprintf(fp, "file:            %s (Hugging Face directory: %d safetensors file%s, %s; tokenizer %s)\n",
                m->file.path, m->hf->n_shards, m->hf->n_shards == 1 ? "" : "s", sz, hf_vocab_source(m->hf_vocab));
    else
        fprintf(fp, "file:            %s (%s, GGUF v%u)\n", m->file.path, sz, m->gguf.version);
    fprintf(fp, "architecture:    %s%s%s%s\n", in.arch, in.name[0] ? " (" : "", in.name, in.name[0] ? ")" : "");
    fprintf(fp, "vocabulary:      %lld tokens, tokenizer %s (pre %s), bos %d, eos %d, add_bos %s\n",
            (long long)in.n_vocab, in.tokenizer, in.tokenizer_pre[0] ? in.tokenizer_pre : "-", vocab_bos(m->vocab),
            vocab_eos(m->vocab), vocab_add_bos(m->vocab) ? "yes" : "no");
    fprintf(fp, "chat template:   %s\n", in.has_chat_template ? "present" : "absent");
    fprintf(fp, "context length:  %lld (trained)\n", (long long)in.n_ctx_train);
    fprintf(fp, "shape:           n_embd %lld, n_layer %lld, n_head %lld, n_head_kv %lld, head_dim %lld, n_ff %lld\n",
            (long long)in.n_embd, (long long)in.n_layer, (long long)in.n_head, (long long)in.n_head_kv,
            (long long)in.head_dim, (long long)in.n_ff);
    fprintf(fp, "rope:            theta %g, %s\n", in.rope_theta,
            in.has_rope_freqs ? (m->hf ? "Llama 3 frequency scaling (config.json rope_scaling)"
                                       : "Llama 3 frequency scaling (rope_freqs.weight)")
                              : (m->hp.rope_freq_scale != 1.0f ? "linear scaling" : "no scaling"));
    fprintf(fp, "rms norm eps:    %g\n", in.norm_eps);
    if (m->vocab_only) {
        fprintf(fp, "weights:         none (vocabulary-only file, %lld tensors)\n", (long long)m->tensors.n);
        return;
    }
    fprintf(fp, "output:          %s\n", in.tied_output ? "tied to token_embd.weight" : "output.weight");
    if (m->fp8_act_ub > 0)
        fprintf(fp, "fp8:             FFN weights FP8 E4M3 with per-row scales, activations per token, scale bound "
                    "%g (herd extension '%s' in GGUF)\n", m->fp8_act_ub, MODEL_EXT_FP8);
    fprintf(fp, "parameters:      %.3f M\n", (double)in.n_params / 1e6);
    /* type histogram over all tensors, in order of first appearance */
    struct {
        const char *name;
        int type;
        uint64_t bytes;
        int64_t count;
    } hist[32];
    int nh = 0;
    for (int64_t i = 0; i < m->tensors.n; i++) {
        const tensor_ref *t = &m->tensors.t[i];
        int h = 0;
        while (h < nh && strcmp(hist[h].name, t->dtype) != 0) h++;
        if (h == nh) {
            if (nh == 32) continue;
            hist[nh].name = t->dtype;
            hist[nh].type = t->type;
            hist[nh].bytes = 0;
            hist[nh++].count = 0;
        }
        hist[h].bytes += t->nbytes;
        hist[h].count++;
    }
    fprintf(fp, "tensor types:   ");
    for (int h = 0; h < nh; h++) {
        human_bytes(sz, sizeof sz, hist[h].bytes);
        fprintf(fp, " %s%s x%lld (%s)", hist[h].name, hist[h].type >= 4096 ? " (herd extension)" : "",
                (long long)hist[h].count, sz);
    }
    fprintf(fp, "\n");
    fprintf(fp, "weight type:     %s (most common)\n", herd_type_name(in.weight_type));
    if (!list_tensors) return;
    for (int64_t i = 0; i < m->tensors.n; i++) {
        const tensor_ref *t = &m->tensors.t[i];
        char shape[96];
        tensor_ref_shape(t, shape, sizeof shape);
        fprintf(fp, "  %-32s %-8s %s%s%s\n", t->src_name, t->dtype, shape, t->src_name != t->name ? "  -> " : "",
                t->src_name != t->name ? t->name : "");
    }
}

int32_t herd_vocab_n_tokens(const herd_model *m) { return vocab_n_tokens(m->vocab); }
bool herd_vocab_add_bos(const herd_model *m) { return vocab_add_bos(m->vocab); }
int32_t herd_vocab_bos(const herd_model *m) { return vocab_bos(m->vocab); }
int32_t herd_vocab_eos(const herd_model *m) { return vocab_eos(m->vocab); }
bool herd_vocab_is_eog(const herd_model *m, int32_t id) { return vocab_is_eog(m->vocab, id); }

int32_t herd_vocab_find(const herd_model *m, const char *text) {
    return vocab_find(m->vocab, text, strlen(text));
}

int herd_tokenize(const herd_model *m, const char *text, size_t len, int flags, int32_t **ids, int64_t *n_ids) {
    return vocab_tokenize(m->vocab, text, len, (flags & HERD_TOKENIZE_ADD_BOS) != 0,
                          (flags & HERD_TOKENIZE_PARSE_SPECIAL) != 0, ids, n_ids);
}

int64_t herd_token_to_piece(const herd_model *m, int32_t id, bool render_special, char *buf, size_t cap) {
    return vocab_token_to_piece(m->vocab, id, render_special, buf, cap);
}

int herd_detokenize(const herd_model *m, const int32_t *ids, int64_t n, bool render_special, char **text,
                    size_t *len) {
    return vocab_detokenize(m->vocab, ids, n, render_special, text, len);
}

int herd_chat_tokenize(const herd_model *m, const herd_chat_message *msgs, size_t n, const herd_chat_params *p,
                       int32_t **ids, int64_t *n_ids) {
    chat_tokens t;
    *ids = NULL;
    *n_ids = 0;
    int rc = chat_tokenize(m->vocab, msgs, n, p, &t);
    if (rc) return rc;
    *ids = t.ids;
    *n_ids = t.n_ids;
    t.ids = NULL;
    chat_tokens_free(&t);
    return HERD_OK;
}
