/* Loading a Hugging Face directory into the model: hyperparameters from config.json, the tokenizer
 * (tokenizer.json or original/tokenizer.model, as GGUF metadata) and the tensor table of the
 * safetensors shards. The weights themselves are then taken as from a GGUF (model.c). */
#include <stdlib.h>
#include <string.h>

#include "../base/log.h"
#include "model.h"

int model_load_hf(herd_model *m, const char *dir) {
    int rc = hf_dir_open(dir, &m->hf);
    if (rc) return rc;
    const hf_config *c = &m->hf->cfg;
    /* no mapping of its own: path names the directory in messages, size is the shards' */
    m->file.path = herd_xstrndup(m->hf->dir, strlen(m->hf->dir));
    m->file.size = m->hf->total_bytes;
    model_hparams *hp = &m->hp;
    hp->n_ctx_train = c->n_ctx_train;
    hp->n_embd = c->n_embd;
    hp->n_layer = c->n_layer;
    hp->n_head = c->n_head;
    hp->n_head_kv = c->n_head_kv;
    hp->head_dim = c->head_dim;
    hp->n_ff = c->n_ff;
    hp->rope_theta = (float)c->rope_theta;
    hp->norm_eps = (float)c->norm_eps;
    hp->rope_freq_scale = c->rope_kind == HF_ROPE_LINEAR ? (float)(1.0 / c->rope_factor) : 1.0f;
    if (c->rope_kind == HF_ROPE_LLAMA3) {
        hp->rope_l3_factor = (float)c->rope_factor;
        hp->rope_l3_low = (float)c->rope_low_freq_factor;
        hp->rope_l3_high = (float)c->rope_high_freq_factor;
        hp->rope_l3_orig_ctx = (float)c->rope_orig_ctx;
    }
    /* HF rows of Q and K are permuted against Meta's/GGUF's (LLAMA31.md, RoPE); rotating half-split
     * pairs undoes it without copying a weight */
    m->rope_half_split = true;
    if (c->fp8) m->fp8_act_ub = c->fp8_act_ub;

    hf_vocab_hints h = {c->n_vocab, c->bos_id, c->n_eos ? c->eos_ids[0] : -1};
    if ((rc = hf_vocab_load(m->hf->dir, &h, &m->hf_vocab))) return rc;
    const gguf_file *meta = hf_vocab_meta(m->hf_vocab);
    if ((rc = vocab_load(meta, hf_vocab_source(m->hf_vocab), &m->vocab))) return rc;
    hp->n_vocab = vocab_n_tokens(m->vocab);
    if (hp->n_vocab != c->n_vocab)
        return herd_err(HERD_E_FORMAT,
                        "model: %s: config.json vocab_size %lld differs from the %lld tokenizer tokens",
                        m->file.path, (long long)c->n_vocab, (long long)hp->n_vocab);
    gguf_str tmpl;
    if (gguf_get_str(meta, "tokenizer.chat_template", &tmpl))
        m->chat_template = herd_xstrndup(tmpl.ptr, tmpl.len);
    return hf_dir_tensors(m->hf, &m->tensors);
}
