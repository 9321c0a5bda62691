/* Tensor-parallel shards and pipeline stages of a loaded model (src/dist/ runs them over MPI; docs/SCALING.md).
 *
 * Rank r of n keeps only its rows of every matrix, as views into the same mapping (so it touches, and
 * holds resident, only those pages):
 *   wq, wk, wv      the rows of its heads: KV heads [r n_head_kv/n, (r+1) n_head_kv/n) and the query
 *                   heads that share them (contiguous, since query head h uses KV head h / group)
 *   w_gate, w_up    rows model_shard_range(n_ff)
 *   wo, w_down      rows model_shard_range(n_embd)     (split by OUTPUT rows, not by input columns)
 *   output          rows model_shard_range(n_vocab)
 * and hp becomes the rank's: n_head, n_head_kv and n_ff are its own, so the forward pass and the KV
 * cache run its heads and its ff rows unchanged. Every output row is still one whole dot product over
 * the full input, computed by one rank with the single-process kernel: after the ranks exchange their
 * slices (all-gathers, forward.h's forward_tp) every activation is bit-identical to one process's.
 * Rows are cut at multiples of PK_ROWS when the matrix has a multiple of them, so a slice takes the
 * same kernel (packed or not, kernels/packed.h) as the whole matrix. */
#include <string.h>

#include "../base/log.h"
#include "../kernels/packed.h"
#include "model.h"

void model_shard_range(int64_t n_rows, int rank, int n, int64_t *r0, int64_t *r1) {
    int64_t unit = n_rows % PK_ROWS == 0 ? PK_ROWS : 1, units = n_rows / unit;
    *r0 = units * rank / n * unit;
    *r1 = units * (rank + 1) / n * unit;
}

int model_shard_check(const model_hparams *hp, int n, const char *path) {
    if (n < 1) return herd_err(HERD_E_ARG, "tp: %d ranks", n);
    if (hp->n_head_kv % n != 0)
        return herd_err(HERD_E_ARG, "tp: --tp %d does not divide the %lld KV heads of %s (use a divisor of %lld)", n,
                        (long long)hp->n_head_kv, path, (long long)hp->n_head_kv);
    /* every rank needs at least one row of each split matrix */
    if (hp->n_ff / (hp->n_ff % PK_ROWS ? 1 : PK_ROWS) < n || hp->n_embd / (hp->n_embd % PK_ROWS ? 1 : PK_ROWS) < n ||
        hp->n_vocab / (hp->n_vocab % PK_ROWS ? 1 : PK_ROWS) < n)
        return herd_err(HERD_E_ARG, "tp: %s is too small to split %d ways", path, n);
    return HERD_OK;
}

static int slice(weight *w, int64_t r0, int64_t r1) {
    /* a slice must take the whole matrix's kernel: a packable type cut off the 16-row grid would not */
    if ((w->n_out % PK_ROWS != 0) && pk_gemm_for(w->type, w->n_in, PK_ROWS) && (r1 - r0) % PK_ROWS == 0)
        return herd_err(HERD_E_UNSUPPORTED, "tp: tensor '%s' has %lld rows, not a multiple of %d: its slices would "
                        "take another kernel than the whole", w->name, (long long)w->n_out, PK_ROWS);
    w->data += r0 * w->row_bytes;
    if (w->row_scale) w->row_scale += r0;
    w->n_out = r1 - r0;
    return HERD_OK;
}

int model_shard(herd_model *m, int rank, int n) {
    model_hparams *hp = &m->hp;
    int rc = model_shard_check(hp, n, m->file.path);
    if (rc || n == 1) return rc;
    const int64_t hd = hp->head_dim, kvl = hp->n_head_kv / n, group = hp->n_head / hp->n_head_kv;
    const int64_t k0 = rank * kvl * hd, k1 = k0 + kvl * hd, q0 = k0 * group, q1 = k1 * group;
    int64_t e0, e1, f0, f1, v0, v1;
    model_shard_range(hp->n_embd, rank, n, &e0, &e1);
    model_shard_range(hp->n_ff, rank, n, &f0, &f1);
    model_shard_range(hp->n_vocab, rank, n, &v0, &v1);
    for (int64_t l = 0; l < hp->n_layer; l++) {
        layer_weights *L = &m->layers[l];
        if ((rc = slice(&L->wq, q0, q1)) || (rc = slice(&L->wk, k0, k1)) || (rc = slice(&L->wv, k0, k1)) ||
            (rc = slice(&L->wo, e0, e1)) || (rc = slice(&L->w_gate, f0, f1)) || (rc = slice(&L->w_up, f0, f1)) ||
            (rc = slice(&L->w_down, e0, e1)))
            return rc;
    }
    if ((rc = slice(&m->output, v0, v1))) return rc;
    hp->n_head = kvl * group;
    hp->n_head_kv = kvl;
    hp->n_ff = f1 - f0;
    m->shard_rank = rank;
    m->shard_n = n;
    return HERD_OK;
}

/* ---- pipeline stages ------------------------------------------------------------------------------ */

int model_stage_check(const model_hparams *hp, int n_stages, const char *path) {
    if (n_stages < 1 || n_stages > hp->n_layer)
        return herd_err(HERD_E_ARG, "pp: --pp %d needs at least %d layers; %s has %lld", n_stages, n_stages, path,
                        (long long)hp->n_layer);
    return HERD_OK;
}

int model_stage(herd_model *m, int stage, int n_stages) {
    int rc = model_stage_check(&m->hp, n_stages, m->file.path);
    if (rc || n_stages == 1) return rc;
    const int64_t nl = m->hp.n_layer, l0 = nl * stage / n_stages, l1 = nl * (stage + 1) / n_stages;
    /* the structs are views into the mapping: moving them moves no weight, and the others are never touched */
    memmove(m->layers, m->layers + l0, (size_t)(l1 - l0) * sizeof *m->layers);
    m->hp.n_layer = l1 - l0;
    m->stage = stage;
    m->n_stages = n_stages;
    m->stage_l0 = l0;
    return HERD_OK;
}
