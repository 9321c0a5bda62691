/* Tensor parallelism: the forward_tp hooks over MPI, rank 0's side (api_tp.h) and the followers' loop.
 *
 * Messages from rank 0 (comm.h, tag CTRL), int64 words then bytes:
 *   CTX_NEW  n_seq n_ctx n_batch kv_type n_threads       a context was made: make the same forward state
 *   STEP     n hidden has_seq has_want n_seq | n_past[n_seq] (int64) tokens[n] seq[n] (int32) want[n] (u8)
 *            one forward pass; n_past are rank 0's positions before it (they carry truncations along)
 *   SEQ_COPY src dst n                                    herd_seq_copy: copy the cache's first n positions
 *   KV_READ  seq pos n                                    herd_seq_kv_read: send rank 0 these positions' bytes
 *   KV_WRITE seq pos n                                    herd_seq_kv_write: receive them from rank 0 (tag KV)
 *   CTX_FREE                                              the context went away
 *   EXIT     rc                                           the command ended
 * Gathers (tag GATHER): every rank sends its slice to every other (to rank 0 only for the logits) and
 * receives theirs: a linear all-gather of point-to-point messages, so that a wait knows which rank it
 * waits for. Only copies: the values do not depend on the exchange (no reduction). */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "../api/api_tp.h"
#include "../base/log.h"
#include "../kernels/kernels.h"
#include "../model/forward.h"
#include "../model/model.h"
#include "comm.h"
#include "dist.h"
#include "herd.h"

enum { MSG_CTX_NEW = 1, MSG_STEP, MSG_CTX_FREE, MSG_EXIT, MSG_SEQ_COPY, MSG_KV_READ, MSG_KV_WRITE };
enum { N_WHAT = 4 };
static const char *k_what[N_WHAT] = {"all-gather of the attention output", "all-gather of a layer's output",
                                     "all-gather of the feed-forward activations", "gather of the logits"};

typedef struct {
    int rank, n;          /* this rank of n (all of them) */
    int tp, pp, stage;    /* tensor-parallel ranks per stage, pipeline stages, this rank's stage */
    const herd_model *m;
    int64_t *off[N_WHAT]; /* [n + 1] column offsets of each rank's slice, per FORWARD_TP_* */
    int64_t n_batch;
    float *send, *recv;   /* [n_batch * widest] */
    MPI_Request *req;     /* [2n] */
    int *peer;            /* [2n] */
    MPI_Request *pipe_req; /* rank 0 of a pipeline: the receives of a pass's outputs */
    int *pipe_peer, n_pipe_req;
    int64_t step;
    forward_tp hooks;
} tp_state;

static tp_state g_tp;
static bool g_exit_sent;
static double g_idle_s, g_idle_cpu; /* followers: wall and CPU seconds spent waiting for rank 0 */

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

static double g_gather_s, g_gather_bytes; /* time in the exchanges (copies and waits), bytes this rank received */
static int64_t g_n_gather;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Among the tp ranks of this rank's pipeline stage: local rank p is world rank stage * tp + p. */
static void tp_gather(void *ctx, float *buf, int64_t n, int what) {
    tp_state *t = ctx;
    const double t0 = now_s();
    const int64_t *off = t->off[what], full = off[t->tp];
    const int me = t->rank % t->tp, base = t->stage * t->tp;
    const int64_t wl = off[me + 1] - off[me];
    const bool to_root = what == FORWARD_TP_VOCAB; /* to the stage's local rank 0 */
    memcpy(t->send, buf, (size_t)(n * wl) * sizeof(float));
    int k = 0;
    for (int p = 0; p < t->tp; p++) {
        if (p == me) continue;
        const int64_t wp = off[p + 1] - off[p];
        if (!to_root || me == 0) {
            if (MPI_Irecv(t->recv + n * off[p], (int)(n * wp), MPI_FLOAT, base + p, COMM_TAG_GATHER, MPI_COMM_WORLD, &t->req[k]) != MPI_SUCCESS)
                comm_fail("%s: cannot receive from rank %d", k_what[what], base + p);
            t->peer[k++] = base + p;
        }
        if (!to_root || p == 0) {
            if (MPI_Isend(t->send, (int)(n * wl), MPI_FLOAT, base + p, COMM_TAG_GATHER, MPI_COMM_WORLD, &t->req[k]) != MPI_SUCCESS)
                comm_fail("%s: cannot send to rank %d", k_what[what], base + p);
            t->peer[k++] = base + p;
        }
    }
    char what_s[160];
    snprintf(what_s, sizeof what_s, "%s, step %lld", k_what[what], (long long)t->step);
    comm_wait(t->req, k, t->peer, what_s, comm_timeout(), 200);
    g_n_gather++;
    if (to_root && me != 0) {
        g_gather_s += now_s() - t0;
        return;
    }
    g_gather_bytes += (double)(n * (full - wl)) * sizeof(float);
    /* [rank p's block of n rows of its width] -> [n][full], p's columns at off[p] */
    for (int64_t r = 0; r < n; r++)
        for (int p = 0; p < t->tp; p++) {
            const int64_t wp = off[p + 1] - off[p];
            const float *src = p == me ? t->send + r * wp : t->recv + n * off[p] + r * wp;
            memcpy(buf + r * full + off[p], src, (size_t)wp * sizeof(float));
        }
    g_gather_s += now_s() - t0;
}

/* rank 0: the pass it is about to run, for the followers */
static void tp_begin(void *ctx, forward_state *s, const int32_t *tokens, const int32_t *seq, int64_t n, const bool *want,
                     bool hidden) {
    tp_state *t = ctx;
    const kv_cache *kv = forward_kv(s);
    int64_t hdr[6] = {MSG_STEP, n, hidden, seq != NULL, want != NULL, kv->n_seq};
    size_t bytes = sizeof hdr + (size_t)kv->n_seq * 8 + (size_t)n * 9;
    uint8_t *msg = herd_xmalloc(bytes), *p = msg;
    memcpy(p, hdr, sizeof hdr), p += sizeof hdr;
    memcpy(p, kv->n_past, (size_t)kv->n_seq * 8), p += kv->n_seq * 8;
    memcpy(p, tokens, (size_t)n * 4), p += n * 4;
    if (seq) memcpy(p, seq, (size_t)n * 4);
    p += n * 4;
    for (int64_t i = 0; i < n; i++) p[i] = want ? want[i] : 0;
    t->step++;
    comm_send_ctrl(msg, (int64_t)bytes, "sending a step");
    free(msg);
}

/* ---- pipeline stages (--pp; one rank per stage): point-to-point hand-offs of whole rows ---- */

static void pipe_xfer(tp_state *t, float *buf, int64_t count, int peer, bool send, const char *what) {
    MPI_Request r;
    int rc = send ? MPI_Isend(buf, (int)count, MPI_FLOAT, peer, COMM_TAG_PIPE, MPI_COMM_WORLD, &r)
                  : MPI_Irecv(buf, (int)count, MPI_FLOAT, peer, COMM_TAG_PIPE, MPI_COMM_WORLD, &r);
    if (rc != MPI_SUCCESS) comm_fail("%s: cannot %s rank %d", what, send ? "send to" : "receive from", peer);
    char what_s[160];
    snprintf(what_s, sizeof what_s, "%s, step %lld", what, (long long)t->step);
    const double t0 = now_s();
    comm_wait(&r, 1, &peer, what_s, comm_timeout(), 200);
    g_gather_s += now_s() - t0;
    if (!send) g_gather_bytes += (double)count * sizeof(float);
}

static void pp_recv_x(void *ctx, float *x, int64_t n) {
    tp_state *t = ctx;
    pipe_xfer(t, x, n * t->m->hp.n_embd, t->rank - t->tp, false, "the residual stream from the previous stage");
}

static void pp_send_x(void *ctx, const float *x, int64_t n) {
    tp_state *t = ctx;
    pipe_xfer(t, (float *)x, n * t->m->hp.n_embd, t->rank + t->tp, true, "the residual stream to the next stage");
}

static void pp_out_send(void *ctx, const float *out, int64_t n_rows, int64_t width) {
    tp_state *t = ctx;
    if (t->rank % t->tp != 0) return; /* the stage's logits were gathered to its local rank 0 */
    pipe_xfer(t, (float *)out, n_rows * width, 0, true, "the outputs to rank 0");
}

/* rank 0: the outputs of the micro-batches of one pass, received in order (MPI keeps the order of
 * messages between two ranks with one tag) */
static void pp_out_post(void *ctx, float *out, int64_t n_rows, int64_t width) {
    tp_state *t = ctx;
    t->pipe_req = herd_xrealloc(t->pipe_req, (size_t)(t->n_pipe_req + 1) * sizeof *t->pipe_req);
    t->pipe_peer = herd_xrealloc(t->pipe_peer, (size_t)(t->n_pipe_req + 1) * sizeof *t->pipe_peer);
    const int last = (t->pp - 1) * t->tp; /* the last stage's local rank 0 */
    t->pipe_peer[t->n_pipe_req] = last;
    if (MPI_Irecv(out, (int)(n_rows * width), MPI_FLOAT, last, COMM_TAG_PIPE, MPI_COMM_WORLD,
                  &t->pipe_req[t->n_pipe_req]) != MPI_SUCCESS)
        comm_fail("the outputs from the last stage: cannot receive from rank %d", last);
    t->n_pipe_req++;
    g_gather_bytes += (double)(n_rows * width) * sizeof(float);
}

static void pp_out_wait(void *ctx) {
    tp_state *t = ctx;
    char what_s[160];
    snprintf(what_s, sizeof what_s, "the outputs from the last stage, step %lld", (long long)t->step);
    const double t0 = now_s();
    comm_wait(t->pipe_req, t->n_pipe_req, t->pipe_peer, what_s, comm_timeout(), 200);
    g_gather_s += now_s() - t0;
    t->n_pipe_req = 0;
}

/* the slices of every exchanged width, and buffers for n_batch rows of the widest */
static void tp_setup(tp_state *t, const herd_model *m, int64_t n_batch) {
    const int64_t full[N_WHAT] = {m->layers[0].wo.n_in, m->hp.n_embd, m->layers[0].w_down.n_in, m->hp.n_vocab};
    int64_t widest = 0;
    for (int w = 0; w < N_WHAT; w++) {
        free(t->off[w]);
        t->off[w] = herd_xcalloc((size_t)t->tp + 1, sizeof(int64_t));
        for (int r = 0; r < t->tp; r++) {
            int64_t r0, r1;
            if (w == FORWARD_TP_ATT) r0 = full[w] / t->tp * r, r1 = full[w] / t->tp * (r + 1); /* whole heads, tp | n_head_kv */
            else model_shard_range(full[w], r, t->tp, &r0, &r1);
            t->off[w][r + 1] = r1;
        }
        if (full[w] > widest) widest = full[w];
    }
    free(t->send);
    free(t->recv);
    t->send = herd_xmalloc((size_t)(n_batch * widest) * sizeof(float));
    t->recv = herd_xmalloc((size_t)(n_batch * widest) * sizeof(float));
    t->req = herd_xrealloc(t->req, (size_t)(2 * t->tp) * sizeof *t->req);
    t->peer = herd_xrealloc(t->peer, (size_t)(2 * t->tp) * sizeof *t->peer);
    t->n_batch = n_batch;
    t->m = m;
    t->hooks = (forward_tp){.ctx = t, .begin = t->rank == 0 ? tp_begin : NULL, .gather = t->tp > 1 ? tp_gather : NULL,
                            .first_stage = t->stage == 0, .last_stage = t->stage == t->pp - 1, .lead = t->rank == 0,
                            .n_stages = t->pp, .recv_x = pp_recv_x, .send_x = pp_send_x, .out_send = pp_out_send,
                            .out_post = pp_out_post, .out_wait = pp_out_wait};
}

/* ---- rank 0: the API's side (api_tp.h) -------------------------------------------------------------- */

static bool g_ctx_live;

static int lead_context_new(const herd_model *m, forward_state *fs, int64_t n_seq, int64_t n_ctx, int64_t n_batch,
                            int kv_type, int n_threads) {
    if (g_ctx_live) return herd_err(HERD_E_UNSUPPORTED, "tp: one context at a time under --tp");
    int64_t msg[6] = {MSG_CTX_NEW, n_seq, n_ctx, n_batch, kv_type, n_threads};
    comm_send_ctrl(msg, sizeof msg, "announcing a context");
    tp_setup(&g_tp, m, n_batch);
    forward_set_tp(fs, &g_tp.hooks);
    g_ctx_live = true;
    return HERD_OK;
}

static void report(const herd_model *m);

static void lead_context_free(forward_state *fs) {
    forward_set_tp(fs, NULL);
    report(g_tp.m); /* the model is still loaded: rank 0's resident shard */
    int64_t msg[1] = {MSG_CTX_FREE};
    comm_send_ctrl(msg, sizeof msg, "ending a context");
    g_ctx_live = false;
}

static void lead_seq_copy(int32_t src, int32_t dst, int64_t n) {
    int64_t msg[4] = {MSG_SEQ_COPY, src, dst, n};
    comm_send_ctrl(msg, sizeof msg, "sending a cache copy");
}

/* ---- a sequence's KV as bytes (prefix cache, slot files) -------------------------------------------
 * In one process's layout, so that prefix-cache blocks and slot files are the same bytes whatever the
 * split: [layer][K rows n][V rows n] with whole rows. Rank r (stage r / tp, local rank r % tp) holds its
 * stage's layers and, of each row, its heads' part: rows of every format herd's cache has are runs of
 * heads (f32/f16/bf16 elements, or q8_0/q4_0 blocks of 32 when a rank's part is whole blocks), so a
 * whole row is the stage's parts side by side in local-rank order. Rank 0 gathers or scatters them. */

/* the first layer of stage s of the file's n_layer (model_stage) */
static int64_t stage_l0(int64_t nl, int s) {
    return nl * s / g_tp.pp;
}

/* 0 when a rank's part of a row is not whole blocks (the layout above would not hold) */
static uint64_t lead_kv_bytes_per_pos(const forward_state *fs) {
    const kv_cache *kv = forward_kv((forward_state *)fs);
    const int64_t kv_dim = g_tp.m->hp.n_head_kv * g_tp.m->hp.head_dim; /* rank 0's part */
    if (kernels_row_bytes(kv->type_k, kv_dim) != kv->row_bytes_k || kernels_row_bytes(kv->type_v, kv_dim) != kv->row_bytes_v)
        return 0;
    return (uint64_t)g_tp.m->n_layer_file * (uint64_t)g_tp.tp * (uint64_t)(kv->row_bytes_k + kv->row_bytes_v);
}

/* Rank r's block [its layers][K rows n][V rows n] <-> its parts of buf (one process's layout). */
static void kv_relayout(const kv_cache *kv, int r, int64_t n, uint8_t *buf, uint8_t *blk, bool to_buf) {
    const int64_t nl = g_tp.m->n_layer_file, s = r / g_tp.tp, t = r % g_tp.tp;
    const int64_t rk = kv->row_bytes_k, rv = kv->row_bytes_v, RK = rk * g_tp.tp, RV = rv * g_tp.tp;
    for (int64_t l = stage_l0(nl, (int)s); l < stage_l0(nl, (int)s + 1); l++) {
        uint8_t *L = buf + l * n * (RK + RV);
        for (int64_t i = 0; i < n; i++, blk += rk)
            to_buf ? memcpy(L + i * RK + t * rk, blk, (size_t)rk) : memcpy(blk, L + i * RK + t * rk, (size_t)rk);
        for (int64_t i = 0; i < n; i++, blk += rv)
            to_buf ? memcpy(L + n * RK + i * RV + t * rv, blk, (size_t)rv) : memcpy(blk, L + n * RK + i * RV + t * rv, (size_t)rv);
    }
}

/* rank 0: the KV_READ / KV_WRITE message, then each rank's block from or to the followers */
static int lead_kv_io(forward_state *fs, int32_t seq, int64_t pos, int64_t n, uint8_t *buf, bool write) {
    kv_cache *kv = forward_kv(fs);
    if (lead_kv_bytes_per_pos(fs) == 0)
        return herd_err(HERD_E_UNSUPPORTED, "kv %s: a rank's part of a cache row is not whole blocks under --tp",
                        write ? "write" : "read");
    /* rank r's block: its stage's layers x its parts of the K and V rows */
    const int64_t nl = g_tp.m->n_layer_file;
    int64_t most = 0; /* layers of the largest stage */
    for (int st = 0; st < g_tp.pp; st++)
        if (stage_l0(nl, st + 1) - stage_l0(nl, st) > most) most = stage_l0(nl, st + 1) - stage_l0(nl, st);
    if ((uint64_t)n * (uint64_t)most * (uint64_t)(kv->row_bytes_k + kv->row_bytes_v) > INT_MAX) /* one MPI message per rank */
        return herd_err(HERD_E_UNSUPPORTED, "kv %s: %lld positions are more than one message takes under --tp/--pp",
                        write ? "write" : "read", (long long)n);
    int64_t msg[4] = {write ? MSG_KV_WRITE : MSG_KV_READ, seq, pos, n};
    comm_send_ctrl(msg, sizeof msg, write ? "announcing a KV write" : "announcing a KV read");
    const int nr = g_tp.n;
    MPI_Request *req = herd_xmalloc((size_t)nr * sizeof *req);
    int *peer = herd_xmalloc((size_t)nr * sizeof *peer), k = 0;
    uint8_t **blk = herd_xcalloc((size_t)nr, sizeof *blk);
    for (int r = 0; r < nr; r++) {
        const int64_t s = r / g_tp.tp, layers = stage_l0(nl, (int)s + 1) - stage_l0(nl, (int)s);
        const uint64_t bytes = (uint64_t)n * (uint64_t)layers * (uint64_t)(kv->row_bytes_k + kv->row_bytes_v);
        blk[r] = herd_xmalloc((size_t)(bytes > 0 ? bytes : 1));
        if (write) kv_relayout(kv, r, n, buf, blk[r], false);
        if (r == 0) continue;
        int rc = write ? MPI_Isend(blk[r], (int)bytes, MPI_BYTE, r, COMM_TAG_KV, MPI_COMM_WORLD, &req[k])
                       : MPI_Irecv(blk[r], (int)bytes, MPI_BYTE, r, COMM_TAG_KV, MPI_COMM_WORLD, &req[k]);
        if (rc != MPI_SUCCESS) comm_fail("KV bytes: cannot %s rank %d", write ? "send to" : "receive from", r);
        peer[k++] = r;
    }
    if (write) kv_seq_write(kv, seq, pos, n, blk[0]);
    else kv_seq_read(kv, seq, pos, n, blk[0]);
    comm_wait(req, k, peer, write ? "the KV bytes to the followers" : "the KV bytes from the followers", comm_timeout(), 200);
    for (int r = 0; r < nr; r++) {
        if (!write) kv_relayout(kv, r, n, buf, blk[r], true);
        free(blk[r]);
    }
    free(blk);
    free(req);
    free(peer);
    return HERD_OK;
}

static int lead_kv_read(forward_state *fs, int32_t seq, int64_t pos, int64_t n, void *buf) {
    return lead_kv_io(fs, seq, pos, n, buf, false);
}

static int lead_kv_write(forward_state *fs, int32_t seq, int64_t pos, int64_t n, const void *buf) {
    return lead_kv_io(fs, seq, pos, n, (uint8_t *)buf, true);
}

static api_tp_hooks g_lead = {.context_new = lead_context_new, .context_free = lead_context_free, .seq_copy = lead_seq_copy,
                              .kv_bytes_per_pos = lead_kv_bytes_per_pos, .kv_read = lead_kv_read, .kv_write = lead_kv_write};

/* ---- what every rank reports at the end (HERD_TP_DEBUG=1) -------------------------------------------- */

/* Bytes of [p, p + n) this process has resident: the present bit of each page in /proc/self/pagemap
 * (the pages it touched, not the page cache that the ranks share) */
static uint64_t resident_bytes(const uint8_t *p, uint64_t n) {
    long page = sysconf(_SC_PAGESIZE);
    FILE *fp = fopen("/proc/self/pagemap", "rb");
    if (!fp || page <= 0) {
        if (fp) fclose(fp);
        return 0;
    }
    uint64_t first = (uintptr_t)p / (uint64_t)page, last = ((uintptr_t)p + n + (uint64_t)page - 1) / (uint64_t)page, sum = 0;
    uint64_t buf[4096];
    if (fseeko(fp, (off_t)(first * 8), SEEK_SET) == 0)
        for (uint64_t pg = first; pg < last;) {
            size_t want = last - pg < 4096 ? (size_t)(last - pg) : 4096, got = fread(buf, 8, want, fp);
            for (size_t i = 0; i < got; i++) sum += (buf[i] >> 63) & 1;
            if (got < want) break;
            pg += got;
        }
    fclose(fp);
    return sum * (uint64_t)page;
}

static void report(const herd_model *m) {
    const char *dbg = getenv("HERD_TP_DEBUG");
    if (!dbg || strcmp(dbg, "1") != 0 || !m) return;
    double cpu = cpu_s();
    /* every tensor but the token embedding (its rows are read by token, on every rank alike) */
    uint64_t rss = 0, total = 0, emb_rss = 0, emb = 0, packed = (uint64_t)m->packed_bytes;
    for (int64_t i = 0; i < m->tensors.n; i++) {
        const tensor_ref *t = &m->tensors.t[i];
        uint64_t r = resident_bytes(t->data, t->nbytes);
        if (strcmp(t->name, "token_embd.weight") == 0) emb_rss += r, emb += t->nbytes;
        else rss += r, total += t->nbytes;
    }
    fprintf(stderr, "tp: rank %d of %d: weights resident %llu bytes (mapped %llu + packed copies %llu) of %llu in the "
            "file; token embedding %llu of %llu; cpu %.3f s; idle %.3f s using %.3f s cpu; %lld steps, %lld exchanges "
            "took %.3f s, received %.0f bytes\n", g_tp.rank, g_tp.n,
            (unsigned long long)(rss + packed), (unsigned long long)rss, (unsigned long long)packed, (unsigned long long)total,
            (unsigned long long)emb_rss, (unsigned long long)emb, cpu, g_idle_s, g_idle_cpu, (long long)g_tp.step,
            (long long)g_n_gather, g_gather_s, g_gather_bytes);
}

/* ---- the followers ------------------------------------------------------------------------------- */

static int follow(herd_model *m) {
    forward_state *fs = NULL;
    float *out = NULL;
    for (;;) {
        int64_t len;
        double c0 = cpu_s();
        uint8_t *msg = comm_recv_ctrl(&len, &g_idle_s);
        g_idle_cpu += cpu_s() - c0;
        int64_t h[6] = {0};
        memcpy(h, msg, (size_t)(len < (int64_t)sizeof h ? len : (int64_t)sizeof h));
        switch (h[0]) {
        case MSG_CTX_NEW: {
            int rc = forward_state_new(m, h[1], h[2], h[3], (int)h[4], (int)h[5], &fs);
            if (rc) comm_fail("cannot make the context: %s", herd_last_error());
            tp_setup(&g_tp, m, h[3]);
            forward_set_tp(fs, &g_tp.hooks);
            /* the last stage's first rank gathers whole logits rows; the others hold their shard's */
            int64_t w = g_tp.stage == g_tp.pp - 1 && g_tp.rank % g_tp.tp == 0 ? m->hp.n_vocab : m->output.n_out;
            if (w < m->hp.n_embd) w = m->hp.n_embd;
            out = herd_xmalloc((size_t)(h[3] * w) * sizeof(float));
            break;
        }
        case MSG_STEP: {
            if (!fs) comm_fail("a step came before a context");
            const int64_t n = h[1], n_seq = h[5];
            const uint8_t *p = msg + sizeof h;
            kv_cache *kv = forward_kv(fs);
            HERD_ASSERT(n_seq == kv->n_seq && len == (int64_t)sizeof h + n_seq * 8 + n * 9);
            memcpy(kv->n_past, p, (size_t)n_seq * 8), p += n_seq * 8;
            const int32_t *tokens = (const int32_t *)p;
            const int32_t *seq = h[3] ? (const int32_t *)(p + n * 4) : NULL;
            bool *want = NULL;
            if (h[4]) {
                want = herd_xmalloc((size_t)n);
                for (int64_t i = 0; i < n; i++) want[i] = p[n * 8 + i] != 0;
            }
            g_tp.step++;
            if (h[2]) forward_batch_hidden(fs, tokens, seq, n, want, out);
            else forward_batch(fs, tokens, seq, n, want, out);
            free(want);
            break;
        }
        case MSG_SEQ_COPY: {
            if (!fs) comm_fail("a cache copy came before a context");
            kv_cache *kv = forward_kv(fs);
            HERD_ASSERT(h[1] >= 0 && h[1] < kv->n_seq && h[2] >= 0 && h[2] < kv->n_seq && h[3] >= 0 && h[3] <= kv->n_ctx);
            kv_seq_copy(kv, h[1], h[2], h[3]);
            break;
        }
        case MSG_KV_READ:
        case MSG_KV_WRITE: {
            if (!fs) comm_fail("a KV transfer came before a context");
            kv_cache *kv = forward_kv(fs);
            const bool write = h[0] == MSG_KV_WRITE;
            HERD_ASSERT(h[1] >= 0 && h[1] < kv->n_seq && h[2] >= 0 && h[3] >= 0 && h[2] + h[3] <= kv->n_ctx);
            const int64_t bytes = h[3] * (int64_t)kv_seq_bytes_per_pos(kv);
            uint8_t *b = herd_xmalloc((size_t)(bytes > 0 ? bytes : 1));
            if (!write) kv_seq_read(kv, h[1], h[2], h[3], b);
            MPI_Request r;
            int peer = 0;
            int rc = write ? MPI_Irecv(b, (int)bytes, MPI_BYTE, 0, COMM_TAG_KV, MPI_COMM_WORLD, &r)
                           : MPI_Isend(b, (int)bytes, MPI_BYTE, 0, COMM_TAG_KV, MPI_COMM_WORLD, &r);
            if (rc != MPI_SUCCESS) comm_fail("KV bytes: cannot %s rank 0", write ? "receive from" : "send to");
            comm_wait(&r, 1, &peer, write ? "the KV bytes from rank 0" : "the KV bytes to rank 0", comm_timeout(), 200);
            if (write) kv_seq_write(kv, h[1], h[2], h[3], b);
            free(b);
            break;
        }
        case MSG_CTX_FREE:
            forward_state_free(fs);
            fs = NULL;
            free(out);
            out = NULL;
            break;
        case MSG_EXIT:
            free(msg);
            forward_state_free(fs);
            free(out);
            return 0;
        default: comm_fail("unknown message %lld from rank 0", (long long)h[0]);
        }
        free(msg);
    }
}

/* ---- the entry point ------------------------------------------------------------------------------- */

static void lead_exit(void) {
    if (g_exit_sent) return;
    g_exit_sent = true;
    int64_t msg[2] = {MSG_EXIT, 0};
    comm_send_ctrl(msg, sizeof msg, "ending the run");
    MPI_Finalize();
}

int dist_main(int argc, char **argv, int (*cli_main)(int, char **)) {
    int tp = 0, pp = 0;
    const char *model = NULL;
    char **args = herd_xcalloc((size_t)argc + 1, sizeof *args);
    int n_args = 0;
    for (int i = 0; i < argc; i++) {
        if ((!strcmp(argv[i], "--tp") || !strcmp(argv[i], "--pp")) && i + 1 < argc) {
            char *end;
            long v = strtol(argv[i + 1], &end, 10);
            if (*end || v < 1 || v > 4096) {
                fprintf(stderr, "herd: error: %s needs a rank count, not '%s'\n", argv[i], argv[i + 1]);
                free(args);
                return 2;
            }
            *(argv[i][2] == 't' ? &tp : &pp) = (int)v;
            i++;
            continue;
        }
        if ((!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) && i + 1 < argc) model = argv[i + 1];
        args[n_args++] = argv[i];
    }
    if (tp == 0 && pp == 0) { /* a single process: no MPI at all */
        int rc = cli_main(argc, argv);
        free(args);
        return rc;
    }
    int rank, n;
    tp = tp ? tp : 1, pp = pp ? pp : 1;
    if (comm_init(&argc, &argv, &rank, &n) != 0) {
        fprintf(stderr, "herd: error: --tp %d --pp %d: MPI_Init failed (start herd-mpi with mpirun -np %d)\n", tp, pp, tp * pp);
        free(args);
        return 1;
    }
    /* a bad split is refused on every rank before any weight is read; rank 0 says why */
    int rc = 0;
    static const char *k_tp_cmds[] = {"run", "logits", "chat", "perplexity", "bench", "serve"};
    /* options that bring a second model or an adapter: the followers load and follow -m alone */
    static const char *k_tp_refused[] = {"--lora", "--draft", "--guard-model", "--prompt-guard"};
    bool cmd_ok = false;
    const char *refused = NULL;
    for (size_t i = 0; i < sizeof k_tp_cmds / sizeof *k_tp_cmds; i++) cmd_ok |= argc > 1 && !strcmp(argv[1], k_tp_cmds[i]);
    for (int i = 2; i < n_args && !refused; i++)
        for (size_t k = 0; k < sizeof k_tp_refused / sizeof *k_tp_refused; k++)
            if (!strcmp(args[i], k_tp_refused[k])) refused = k_tp_refused[k];
    if (!cmd_ok) { /* the others would see one rank's shard as the model (convert, export, info) */
        if (rank == 0)
            fprintf(stderr, "herd: error: --tp works with run, logits, chat, perplexity, bench and serve, not '%s'\n",
                    argc > 1 ? argv[1] : "");
        rc = 1;
    } else if (refused) {
        if (rank == 0) fprintf(stderr, "herd: error: %s does not work with --tp yet (the ranks follow -m alone)\n", refused);
        rc = 1;
    } else if (n != tp * pp) {
        if (rank == 0) {
            if (pp == 1)
                fprintf(stderr, "herd: error: --tp %d but mpirun started %d rank%s (run mpirun -np %d)\n", tp, n, n == 1 ? "" : "s", tp);
            else if (tp == 1)
                fprintf(stderr, "herd: error: --pp %d but mpirun started %d rank%s (run mpirun -np %d)\n", pp, n, n == 1 ? "" : "s", pp);
            else
                fprintf(stderr, "herd: error: --tp %d --pp %d but mpirun started %d rank%s (run mpirun -np %d)\n", tp, pp, n,
                        n == 1 ? "" : "s", tp * pp);
        }
        rc = 1;
    } else if (!model) {
        if (rank == 0) fprintf(stderr, "herd: error: %s needs the model (-m MODEL) on the command line\n", pp > 1 ? "--pp" : "--tp");
        rc = 1;
    } else {
        herd_model *probe = NULL;
        if (model_load_part(model, MODEL_LOAD_VOCAB_ONLY, rank % tp, tp, rank / tp, pp, &probe) != HERD_OK) {
            if (rank == 0) fprintf(stderr, "herd: error: %s\n", herd_last_error());
            rc = 1;
        }
        model_free(probe);
    }
    if (rc) {
        MPI_Finalize();
        free(args);
        return rc;
    }
    g_tp.rank = rank;
    g_tp.n = n;
    g_tp.tp = tp, g_tp.pp = pp, g_tp.stage = rank / tp;
    if (rank == 0) {
        g_lead.rank = rank;
        g_lead.n = n;
        g_lead.tp = tp;
        g_lead.pp = pp;
        api_tp = &g_lead;
        atexit(lead_exit); /* followers are told to end however the command ends */
        rc = cli_main(n_args, args);
        api_tp = NULL;
        free(args);
        lead_exit();
        return rc;
    }
    herd_model *m = NULL;
    if (model_load_part(model, 0, rank % tp, tp, rank / tp, pp, &m) != HERD_OK) comm_fail("cannot load %s: %s", model, herd_last_error());
    rc = follow(m);
    report(m);
    model_free(m);
    free(args);
    MPI_Finalize();
    return rc;
}
