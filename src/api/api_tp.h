/* The seam between the public API and tensor parallelism (src/dist/, built into herd-mpi only).
 * In a single process api_tp is NULL and the API runs exactly as without it. Under mpirun with --tp,
 * src/dist/ sets it on rank 0 before any model loads: herd_model_load then loads rank 0's shard, and a
 * context announces itself to the followers (which build the same forward state over their shards and
 * follow its passes) and tells them when it goes away. */
#ifndef HERD_API_TP_H
#define HERD_API_TP_H

#include "../model/forward.h"

typedef struct {
    int rank, n;  /* rank 0 of n = tp * pp */
    int tp, pp;   /* tensor-parallel ranks per pipeline stage, stages (--pp) */
    /* after forward_state_new on rank 0: tell the followers, and install the forward_tp hooks on fs */
    int (*context_new)(const herd_model *m, forward_state *fs, int64_t n_seq, int64_t n_ctx, int64_t n_batch, int kv_type, int n_threads);
    /* before forward_state_free on rank 0 */
    void (*context_free)(forward_state *fs);
    /* after kv_seq_copy on rank 0 (herd_seq_copy): the followers copy their heads' cache too */
    void (*seq_copy)(int32_t src, int32_t dst, int64_t n);
    /* herd_seq_kv_*: every rank's bytes of the positions (kv_seq_read's layout of its own layers and heads),
     * rank after rank; the ranges are checked on rank 0 first */
    uint64_t (*kv_bytes_per_pos)(const forward_state *fs);
    int (*kv_read)(forward_state *fs, int32_t seq, int64_t pos, int64_t n, void *buf);
    int (*kv_write)(forward_state *fs, int32_t seq, int64_t pos, int64_t n, const void *buf);
} api_tp_hooks;

extern const api_tp_hooks *api_tp;

#endif
