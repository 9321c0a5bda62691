/* herd convert: any model herd loads (a HF directory or a GGUF) written as a llama GGUF.
 *
 * Metadata: general.*, llama.* (as llama.cpp's converter writes them), the tokenizer.* keys of the
 * source (for a HF directory the ones hf_vocab.c built), and for FP8 herd's extension keys.
 * Tensors: token_embd, output_norm, output (untied only), rope_freqs (Llama 3 scaling), then per
 * layer the norms (F32) and the seven matrices. Each matrix row is copied as is when the type does
 * not change, else converted through f32 with the reference kernels (so the bytes do not depend on
 * the machine). Q and K rows of a HF source are permuted to GGUF's order (LLAMA31.md, RoPE):
 *     GGUF row h*hd + 2i + j  =  HF row h*hd + j*hd/2 + i      (i < hd/2, j < 2)
 * which, with adjacent-pair RoPE, gives bit for bit what the HF directory gives with half-split
 * RoPE (forward.c). FP8 output uses fbgemm's rowwise quantization (kernels/fp8.h) for the FFN
 * matrices of layers 1 .. n_layer-2, as Meta's 405B FP8 checkpoint does; each gets a companion
 * tensor NAME_scale (F32, [n_out]). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/log.h"
#include "../kernels/fp8.h"
#include "../kernels/kernels.h"
#include "../kernels/types.h"
#include "herd.h"
#include "lora.h"
#include "model.h"

typedef struct {
    const herd_model *m;
    const weight *w; /* source matrix, or NULL for a ready f32 vector */
    int out_type;
    int64_t perm_heads; /* > 0: permute HF Q/K rows of this many heads into GGUF order */
    float *scales;      /* FP8 output: [n_out] row scales, filled with the matrix, written after it */
    bool is_scale;      /* this item writes `scales` of the item before it */
    const model_merge *merge; /* adapters to merge into this matrix (m_layer, m_target), or NULL */
    int64_t m_layer;
    int m_target;       /* LORA_Q .. LORA_DOWN; -1 for the embeddings and output */
} conv_item;

/* llama.cpp's general.file_type (llama_ftype) for the weight type; -1 for herd's own types */
int model_gguf_file_type(int type) {
    switch (type) {
    case HERD_TYPE_F32:
        return 0;
    case HERD_TYPE_F16:
        return 1;
    case HERD_TYPE_Q4_0:
        return 2;
    case HERD_TYPE_Q8_0:
        return 7;
    case HERD_TYPE_Q4_1:
        return 3;
    case HERD_TYPE_Q5_0:
        return 8;
    case HERD_TYPE_Q5_1:
        return 9;
    case HERD_TYPE_IQ4_NL:
        return 25;
    case HERD_TYPE_IQ4_XS:
        return 30;
    case HERD_TYPE_Q2_K:
        return 10;
    case HERD_TYPE_Q3_K:
        return 11; /* Q3_K_S: llama.cpp names no all-Q3_K file; "S" is the plain mix */
    case HERD_TYPE_Q4_K:
        return 14; /* Q4_K_S, likewise */
    case HERD_TYPE_Q5_K:
        return 16; /* Q5_K_S */
    case HERD_TYPE_Q6_K:
        return 18;
    case HERD_TYPE_BF16:
        return 32;
    default:
        return -1;
    }
}

/* the source row that lands at row r of the output */
static int64_t src_row(const conv_item *it, int64_t r) {
    if (it->perm_heads <= 0) return r;
    int64_t hd = it->w->n_out / it->perm_heads, h = r / hd, k = r % hd, i = k / 2, j = k % 2;
    return h * hd + j * (hd / 2) + i;
}

/* delta[0..n_in) = sum over adapters of scale * (B row sr) A, the update of base row sr (the base's row order,
 * which the adapters' b rows follow), accumulated in f32 adapter by adapter, rank row by rank row. */
static void merge_delta(const conv_item *it, int64_t sr, float *delta) {
    const model_merge *mg = it->merge;
    const kernel_vec_ops *vo = kernels_vec();
    const int64_t n_in = it->w->n_in;
    memset(delta, 0, (size_t)n_in * sizeof(float));
    for (int a = 0; a < mg->n; a++) {
        const lora_matrix *mt = &mg->ad[a]->m[it->m_layer * LORA_N_TARGETS + it->m_target];
        if (mt->rank <= 0) continue;
        float s = lora_matrix_scale(mg->ad[a], mt, mg->scales[a]);
        for (int64_t k = 0; k < mt->rank; k++) vo->axpy_f32(n_in, s * mt->b[sr * mt->rank + k], mt->a + k * n_in, delta);
    }
}

static bool merged(const conv_item *it) {
    if (!it->merge || it->m_target < 0) return false;
    for (int a = 0; a < it->merge->n; a++)
        if (it->merge->ad[a]->m[it->m_layer * LORA_N_TARGETS + it->m_target].rank > 0) return true;
    return false;
}

static int fill(void *user, const char *name, uint8_t *dst, uint64_t nbytes) {
    conv_item *it = user;
    if (it->is_scale) {
        const conv_item *mat = it - 1;
        HERD_ASSERT(mat->scales && nbytes == (uint64_t)mat->w->n_out * sizeof(float));
        memcpy(dst, mat->scales, nbytes);
        return HERD_OK;
    }
    const weight *w = it->w;
    const kernel_type_ops *in = kernels_type_isa(w->type, KERNEL_ISA_REF);
    const kernel_type_ops *out =
        it->out_type == HERD_TYPE_FP8_E4M3 ? NULL : kernels_type_isa(it->out_type, KERNEL_ISA_REF);
    int64_t out_row = it->out_type == HERD_TYPE_FP8_E4M3 ? w->n_in : kernels_row_bytes(it->out_type, w->n_in);
    HERD_ASSERT(nbytes == (uint64_t)(out_row * w->n_out));
    const bool merge = merged(it), copy = it->out_type == w->type && !w->row_scale && !merge;
    float *row = copy ? NULL : malloc((size_t)w->n_in * 2 * sizeof(float)), *delta = row ? row + w->n_in : NULL;
    if (!copy && !row) return herd_err(HERD_E_NOMEM, "convert: out of memory for a row of '%s'", name);
    for (int64_t r = 0; r < w->n_out; r++) {
        int64_t sr = src_row(it, r);
        const uint8_t *src = w->data + sr * w->row_bytes;
        uint8_t *d = dst + r * out_row;
        if (copy) {
            memcpy(d, src, (size_t)out_row);
            if (it->scales) it->scales[r] = w->row_scale[sr];
            continue;
        }
        in->to_f32(src, row, w->n_in);
        if (w->row_scale)
            for (int64_t i = 0; i < w->n_in; i++) row[i] *= w->row_scale[sr];
        if (merge) { /* W' = W + sum scale * B A, in f32 */
            merge_delta(it, sr, delta);
            for (int64_t i = 0; i < w->n_in; i++) row[i] += delta[i];
        }
        if (it->out_type == HERD_TYPE_FP8_E4M3)
            it->scales[r] = fp8_quantize_row_ref(row, d, w->n_in, INFINITY);
        else
            out->from_f32(row, d, w->n_in);
    }
    free(row);
    return HERD_OK;
}

/* The output type of matrix w of layer l (-1 for the embeddings and output) */
static int out_type_of(const herd_model *m, const herd_convert_params *p, const weight *w, int64_t l,
                       bool ffn) {
    if (p->type == HERD_TYPE_FP8_E4M3) {
        if (ffn && l > 0 && l < m->hp.n_layer - 1) return HERD_TYPE_FP8_E4M3;
        return w->type == HERD_TYPE_FP8_E4M3 ? HERD_TYPE_BF16 : w->type;
    }
    return p->type >= 0 ? p->type : w->type;
}

static int check_type(const herd_convert_params *p) {
    if (p->type >= 0 && p->type != HERD_TYPE_FP8_E4M3 && p->type != HERD_TYPE_F32 &&
        p->type != HERD_TYPE_F16 && p->type != HERD_TYPE_BF16 && p->type != HERD_TYPE_Q8_0 &&
        p->type != HERD_TYPE_Q4_0)
        return herd_err(HERD_E_ARG,
                        "convert: cannot write weights of type %s (f32, f16, bf16, q8_0, q4_0, fp8)",
                        herd_type_name(p->type));
    return HERD_OK;
}

int herd_convert(const char *in_path, const char *out_path, const herd_convert_params *p) {
    herd_convert_params dflt = {.type = -1};
    if (!p) p = &dflt;
    int rc = check_type(p);
    if (rc) return rc;
    herd_model *m;
    rc = model_load(in_path, MODEL_LOAD_NO_REPACK, &m); /* it copies rows: no packed copy needed */
    if (rc) return rc;
    rc = model_convert(m, in_path, out_path, p, NULL);
    model_free(m);
    return rc;
}

int model_convert(const herd_model *m, const char *in_path, const char *out_path, const herd_convert_params *p,
                  const model_merge *merge) {
    int rc = check_type(p);
    if (rc) return rc;
    const model_hparams *hp = &m->hp;

    /* items: 3 globals + rope_freqs + per layer 2 norms + 7 matrices + 3 FP8 scales */
    int64_t cap = 4 + hp->n_layer * 12, n = 0;
    conv_item *items = herd_xcalloc((size_t)cap, sizeof *items);
    gguf_writer *w = gguf_writer_new();
    char tn[96];
    bool fp8_out = false;
    int main_type = -1;

    /* tensors first: whether FP8 is written decides the metadata */
#define VEC(nm, ptr, len)                                                                                    \
    do {                                                                                                     \
        int64_t ne_[1] = {(len)};                                                                            \
        if (!rc) rc = gguf_writer_add_tensor(w, (nm), HERD_TYPE_F32, 1, ne_, (ptr), NULL, NULL);             \
    } while (0)
#define MAT(nm, wt, layer, ffn, heads, tgt)                                                                  \
    do {                                                                                                     \
        conv_item *it_ = &items[n++];                                                                        \
        it_->m = m;                                                                                          \
        it_->w = (wt);                                                                                       \
        it_->merge = merge;                                                                                  \
        it_->m_layer = (layer);                                                                              \
        it_->m_target = (tgt);                                                                               \
        it_->out_type = out_type_of(m, p, (wt), (layer), (ffn));                                             \
        it_->perm_heads = m->rope_half_split ? (heads) : 0;                                                  \
        int64_t ne_[2] = {(wt)->n_in, (wt)->n_out};                                                          \
        const kernel_type_ops *o_ = kernels_type_isa(it_->out_type, KERNEL_ISA_REF);                         \
        if (!rc && (!o_ || (wt)->n_in % o_->block))                                                          \
            rc = herd_err(HERD_E_ARG,                                                                        \
                          "convert: tensor '%s' has rows of %lld, not a multiple of the %s block", (nm),     \
                          (long long)(wt)->n_in, herd_type_name(it_->out_type));                             \
        if (!rc) rc = gguf_writer_add_tensor(w, (nm), it_->out_type, 2, ne_, NULL, fill, it_);               \
        if (main_type < 0 && (ffn)) main_type = it_->out_type;                                               \
        if (it_->out_type == HERD_TYPE_FP8_E4M3 || (wt)->row_scale) {                                        \
            if (it_->out_type == HERD_TYPE_FP8_E4M3) fp8_out = true;                                         \
            if (it_->out_type == HERD_TYPE_FP8_E4M3)                                                         \
                it_->scales = malloc((size_t)(wt)->n_out * sizeof(float));                                   \
        }                                                                                                    \
        if (it_->out_type == HERD_TYPE_FP8_E4M3) {                                                           \
            char sn_[128];                                                                                   \
            snprintf(sn_, sizeof sn_, "%s" MODEL_FP8_SCALE_SUFFIX, (nm));                                    \
            conv_item *sc_ = &items[n++];                                                                    \
            sc_->is_scale = true;                                                                            \
            int64_t sne_[1] = {(wt)->n_out};                                                                 \
            if (!it_->scales) rc = herd_err(HERD_E_NOMEM, "convert: out of memory");                         \
            if (!rc) rc = gguf_writer_add_tensor(w, sn_, HERD_TYPE_F32, 1, sne_, NULL, fill, sc_);           \
        }                                                                                                    \
    } while (0)

    MAT("token_embd.weight", &m->tok_embd, -1, false, 0, -1);
    VEC("output_norm.weight", m->output_norm, hp->n_embd);
    if (!m->tied_output) MAT("output.weight", &m->output, -1, false, 0, -1);
    if (m->rope_freqs) VEC("rope_freqs.weight", m->rope_freqs, hp->head_dim / 2);
    for (int64_t l = 0; l < hp->n_layer && !rc; l++) {
        const layer_weights *L = &m->layers[l];
#define NAME(suffix) (snprintf(tn, sizeof tn, "blk.%lld." suffix, (long long)l), tn)
        VEC(NAME("attn_norm.weight"), L->attn_norm, hp->n_embd);
        MAT(NAME("attn_q.weight"), &L->wq, l, false, hp->n_head, LORA_Q);
        MAT(NAME("attn_k.weight"), &L->wk, l, false, hp->n_head_kv, LORA_K);
        MAT(NAME("attn_v.weight"), &L->wv, l, false, 0, LORA_V);
        MAT(NAME("attn_output.weight"), &L->wo, l, false, 0, LORA_O);
        VEC(NAME("ffn_norm.weight"), L->ffn_norm, hp->n_embd);
        MAT(NAME("ffn_gate.weight"), &L->w_gate, l, true, 0, LORA_GATE);
        MAT(NAME("ffn_down.weight"), &L->w_down, l, true, 0, LORA_DOWN);
        MAT(NAME("ffn_up.weight"), &L->w_up, l, true, 0, LORA_UP);
#undef NAME
    }
#undef MAT
#undef VEC
    HERD_ASSERT(n <= cap);

    const char *name = m->hf ? m->hf->cfg.name : "";
    gguf_str gname;
    if (!m->hf && gguf_get_str(&m->gguf, "general.name", &gname)) {
        gguf_writer_set_str(w, "general.name", gname.ptr, gname.len);
    } else {
        if (!*name) name = strrchr(in_path, '/') ? strrchr(in_path, '/') + 1 : in_path;
        gguf_writer_set_str(w, "general.name", name, strlen(name));
    }
    gguf_writer_set_str(w, "general.architecture", "llama", 5);
    if (model_gguf_file_type(main_type) >= 0)
        gguf_writer_set_u32(w, "general.file_type", (uint32_t)model_gguf_file_type(main_type));
    gguf_writer_set_u32(w, "llama.context_length", (uint32_t)hp->n_ctx_train);
    gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t)hp->n_embd);
    gguf_writer_set_u32(w, "llama.block_count", (uint32_t)hp->n_layer);
    gguf_writer_set_u32(w, "llama.feed_forward_length", (uint32_t)hp->n_ff);
    gguf_writer_set_u32(w, "llama.attention.head_count", (uint32_t)hp->n_head);
    gguf_writer_set_u32(w, "llama.attention.head_count_kv", (uint32_t)hp->n_head_kv);
    gguf_writer_set_u32(w, "llama.attention.key_length", (uint32_t)hp->head_dim);
    gguf_writer_set_u32(w, "llama.attention.value_length", (uint32_t)hp->head_dim);
    gguf_writer_set_u32(w, "llama.rope.dimension_count", (uint32_t)hp->head_dim);
    gguf_writer_set_f32(w, "llama.rope.freq_base", hp->rope_theta);
    gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", hp->norm_eps);
    gguf_writer_set_u32(w, "llama.vocab_size", (uint32_t)hp->n_vocab);
    if (hp->rope_freq_scale != 1.0f) {
        gguf_writer_set_str(w, "llama.rope.scaling.type", "linear", 6);
        gguf_writer_set_f32(w, "llama.rope.scaling.factor", 1.0f / hp->rope_freq_scale);
    }
    const gguf_file *tok = m->hf_vocab ? hf_vocab_meta(m->hf_vocab) : &m->gguf;
    for (int64_t i = 0; i < tok->n_kv; i++)
        if (strncmp(tok->kv[i].key, "tokenizer.", 10) == 0) gguf_writer_copy_kv(w, &tok->kv[i]);
    if (fp8_out) {
        /* llama.cpp refuses the tensor type id; this key tells any reader what the file needs */
        gguf_str ext = {MODEL_EXT_FP8, strlen(MODEL_EXT_FP8)};
        gguf_writer_set_arr_str(w, MODEL_KEY_EXTENSIONS, &ext, 1);
        float ub = p->fp8_act_ub > 0 ? p->fp8_act_ub : m->fp8_act_ub > 0 ? m->fp8_act_ub : 1200.0f;
        gguf_writer_set_f32(w, MODEL_KEY_FP8_UB, ub);
    }
    if (!rc) rc = gguf_writer_write(w, out_path);
    gguf_writer_free(w);
    for (int64_t i = 0; i < n; i++) free(items[i].scales);
    free(items);
    return rc;
}
