/* Writing random-weight llama GGUFs of any shape with herd's own GGUF writer: test fixtures,
 * the demo model and benchmark models. The tokenizer metadata is copied from a vocabulary GGUF,
 * so the model tokenizes exactly like the real one; only the weights are random.
 *
 * Weights: approximately normal (Irwin-Hall sum of four uniforms), std weight_scale, from a
 * generator seeded by (seed, tensor name), so any tensor can be regenerated on its own and the
 * file is the same on every machine. Norm weights are 1 + 0.2·u with u uniform in [-1, 1). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/file.h"
#include "../base/log.h"
#include "../gguf/gguf.h"
#include "../kernels/kernels.h"
#include "herd.h"
#include "model.h"
#include "synth_blocks.h"

typedef struct {
    const herd_synth_params *p;
    const float *rope_freqs; /* [head_dim/2] */
} synth_ctx;

static uint64_t fnv1a(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h;
}

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* approximately N(0, 1): four 16-bit uniforms summed have variance 4/12 */
static float approx_normal(uint64_t *st) {
    uint64_t r = splitmix(st);
    float s = (float)(r & 0xffff) + (float)((r >> 16) & 0xffff) + (float)((r >> 32) & 0xffff) + (float)(r >> 48);
    return (s / 65536.0f - 2.0f) * 1.7320508f;
}

static int fill(void *user, const char *name, uint8_t *dst, uint64_t nbytes) {
    synth_ctx *c = user;
    const herd_synth_params *p = c->p;
    uint64_t st = p->seed ^ fnv1a(name);
    if (strcmp(name, "rope_freqs.weight") == 0) {
        memcpy(dst, c->rope_freqs, nbytes);
        return HERD_OK;
    }
    bool is_norm = strstr(name, "norm") != NULL;
    bool is_out = strcmp(name, "output.weight") == 0 || strcmp(name, "token_embd.weight") == 0;
    int type = is_norm ? HERD_TYPE_F32 : (is_out && p->output_type >= 0 ? p->output_type : p->type);
    int64_t n_in = strstr(name, "ffn_down") ? p->n_ff
                   : strstr(name, "attn_output") ? p->n_head * p->head_dim
                                                 : p->n_embd;
    const kernel_type_ops *o = kernels_type_isa(type, KERNEL_ISA_REF);
    int64_t row_bytes = kernels_row_bytes(type, n_in);
    HERD_ASSERT(nbytes % (uint64_t)row_bytes == 0);
    float *row = malloc((size_t)n_in * sizeof(float));
    if (!row) return herd_err(HERD_E_NOMEM, "synth: out of memory");
    float scale = p->weight_scale > 0 ? p->weight_scale : 0.02f;
    if (!is_norm && p->random_blocks) { /* K-quant rows of random valid blocks, no quantizer involved */
        synth_random_blocks(type, dst, (int64_t)(nbytes / (uint64_t)row_bytes) * n_in, scale, st);
        free(row);
        return HERD_OK;
    }
    for (uint64_t r = 0; r < nbytes / (uint64_t)row_bytes; r++) {
        for (int64_t i = 0; i < n_in; i++) {
            if (is_norm) row[i] = 1.0f + 0.2f * ((float)(splitmix(&st) >> 40) / 8388608.0f - 1.0f);
            else row[i] = scale * approx_normal(&st);
        }
        o->from_f32(row, dst + r * (uint64_t)row_bytes, n_in);
    }
    free(row);
    return HERD_OK;
}

int herd_synth_model(const herd_synth_params *p, const char *out_path) {
    kernels_init();
    if (p->n_embd <= 0 || p->n_layer <= 0 || p->n_head <= 0 || p->n_head_kv <= 0 || p->head_dim <= 0 ||
        p->n_ff <= 0 || p->head_dim % 2 || p->n_head % p->n_head_kv)
        return herd_err(HERD_E_ARG, "synth: invalid shape (n_embd %lld, n_layer %lld, n_head %lld, n_head_kv %lld, "
                        "head_dim %lld, n_ff %lld)", (long long)p->n_embd, (long long)p->n_layer,
                        (long long)p->n_head, (long long)p->n_head_kv, (long long)p->head_dim, (long long)p->n_ff);
    int out_type = p->output_type >= 0 ? p->output_type : p->type;
    const int types[2] = {p->type, out_type};
    for (int i = 0; i < 2; i++) {
        const kernel_type_ops *o = kernels_type_isa(types[i], KERNEL_ISA_REF);
        if (!o || !o->from_f32 || types[i] == HERD_TYPE_Q8_K)
            return herd_err(HERD_E_ARG, "synth: cannot write weights of type %s", herd_type_name(types[i]));
        if (p->random_blocks && !synth_random_blocks_type(types[i]))
            return herd_err(HERD_E_ARG, "synth: random blocks need a K-quant type (q2_k .. q6_k), not %s",
                            herd_type_name(types[i]));
        int64_t dims[] = {p->n_embd, p->n_ff, p->n_head * p->head_dim};
        for (int d = 0; d < 3; d++)
            if (dims[d] % o->block)
                return herd_err(HERD_E_ARG, "synth: a row of %lld is not a multiple of the %s block of %lld",
                                (long long)dims[d], herd_type_name(types[i]), (long long)o->block);
    }
    herd_mapped_file vf;
    gguf_file vg;
    int rc = herd_file_map(p->vocab_path, &vf);
    if (rc) return rc;
    if ((rc = gguf_parse(vf.data, vf.size, p->vocab_path, &vg))) {
        herd_file_unmap(&vf);
        return rc;
    }
    const gguf_kv *toks = gguf_get_arr(&vg, "tokenizer.ggml.tokens", GGUF_T_STRING);
    if (!toks) {
        gguf_file_clear(&vg);
        herd_file_unmap(&vf);
        return herd_err(HERD_E_FORMAT, "synth: '%s' has no tokenizer.ggml.tokens", p->vocab_path);
    }
    int64_t n_vocab = (int64_t)toks->arr_n;

    gguf_writer *w = gguf_writer_new();
    gguf_writer_set_str(w, "general.architecture", "llama", 5);
    const char *name = p->name ? p->name : "herd-random";
    gguf_writer_set_str(w, "general.name", name, strlen(name));
    gguf_writer_set_u32(w, "general.file_type", (uint32_t)model_gguf_file_type(p->type));
    gguf_writer_set_u32(w, "llama.context_length", (uint32_t)(p->n_ctx_train > 0 ? p->n_ctx_train : 8192));
    gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t)p->n_embd);
    gguf_writer_set_u32(w, "llama.block_count", (uint32_t)p->n_layer);
    gguf_writer_set_u32(w, "llama.feed_forward_length", (uint32_t)p->n_ff);
    gguf_writer_set_u32(w, "llama.attention.head_count", (uint32_t)p->n_head);
    gguf_writer_set_u32(w, "llama.attention.head_count_kv", (uint32_t)p->n_head_kv);
    gguf_writer_set_u32(w, "llama.attention.key_length", (uint32_t)p->head_dim);
    gguf_writer_set_u32(w, "llama.attention.value_length", (uint32_t)p->head_dim);
    gguf_writer_set_u32(w, "llama.rope.dimension_count", (uint32_t)p->head_dim);
    gguf_writer_set_f32(w, "llama.rope.freq_base", p->rope_theta > 0 ? p->rope_theta : 500000.0f);
    gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", p->norm_eps > 0 ? p->norm_eps : 1e-5f);
    gguf_writer_set_u32(w, "llama.vocab_size", (uint32_t)n_vocab);
    for (int64_t i = 0; i < vg.n_kv; i++)
        if (strncmp(vg.kv[i].key, "tokenizer.", 10) == 0) gguf_writer_copy_kv(w, &vg.kv[i]);

    float *freqs = herd_xcalloc((size_t)(p->head_dim / 2), sizeof(float));
    synth_ctx sc = {p, freqs};
    int64_t q_dim = p->n_head * p->head_dim, kv_dim = p->n_head_kv * p->head_dim;
    char tn[96];
#define ADD(nm, type, nd, ...)                                                                                 \
    do {                                                                                                       \
        int64_t ne_[] = {__VA_ARGS__};                                                                         \
        if (!rc) rc = gguf_writer_add_tensor(w, nm, type, nd, ne_, NULL, fill, &sc);                           \
    } while (0)
    ADD("token_embd.weight", out_type, 2, p->n_embd, n_vocab);
    ADD("output_norm.weight", HERD_TYPE_F32, 1, p->n_embd);
    if (!p->tied_output) ADD("output.weight", out_type, 2, p->n_embd, n_vocab);
    if (p->rope_scale > 0) {
        /* LLAMA31.md, RoPE: low_freq_factor 1, high_freq_factor 4, original context 8192 */
        model_llama3_rope_freqs(freqs, p->head_dim, p->rope_theta > 0 ? p->rope_theta : 500000.0f, p->rope_scale,
                                1.0f, 4.0f, 8192.0f);
        ADD("rope_freqs.weight", HERD_TYPE_F32, 1, p->head_dim / 2);
    }
    for (int64_t l = 0; l < p->n_layer && !rc; l++) {
#define T(suffix, type, nd, ...)                                                                               \
    snprintf(tn, sizeof tn, "blk.%lld." suffix, (long long)l);                                                 \
    ADD(tn, type, nd, __VA_ARGS__);
        T("attn_norm.weight", HERD_TYPE_F32, 1, p->n_embd)
        T("attn_q.weight", p->type, 2, p->n_embd, q_dim)
        T("attn_k.weight", p->type, 2, p->n_embd, kv_dim)
        T("attn_v.weight", p->type, 2, p->n_embd, kv_dim)
        T("attn_output.weight", p->type, 2, q_dim, p->n_embd)
        T("ffn_norm.weight", HERD_TYPE_F32, 1, p->n_embd)
        T("ffn_gate.weight", p->type, 2, p->n_embd, p->n_ff)
        T("ffn_down.weight", p->type, 2, p->n_ff, p->n_embd)
        T("ffn_up.weight", p->type, 2, p->n_embd, p->n_ff)
#undef T
    }
#undef ADD
    if (!rc) rc = gguf_writer_write(w, out_path);
    gguf_writer_free(w);
    free(freqs);
    gguf_file_clear(&vg);
    herd_file_unmap(&vf);
    return rc;
}
