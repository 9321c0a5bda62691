/* Repacking at load: every matmul weight that the packed kernels take (kernels/packed.h: q8_0, q4_0, q5_0,
 * iq4_nl, q4_1, q5_1, q4_K, q5_K, q6_K, iq4_xs, iq3_s, iq3_xxs, iq2_s) gets an interleaved copy, made once,
 * so that decode and prompt processing both run the packed kernel on it. The copy is about the size of
 * the original (16 rows side by side; iq3_s 1.25x, iq3_xxs 1.41x and iq2_s 1.78x, expanded to 4-bit
 * codes); the
 * original rows stay mapped for what reads rows directly (the token embedding, herd convert), but their
 * pages are released after packing. Where the copies would not fit in the memory available (less a tenth),
 * the types that grow when packed keep the file's layout (slower decode, but the model loads), with a
 * line saying so.
 * Weights are packed by a thread pool (a 1B Q8_0 model is 1.3 GB of weights). */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../base/log.h"
#include "../base/meminfo.h"
#include "../kernels/packed.h"
#include "../thread/cpus.h"
#include "../thread/pool.h"
#include "model.h"

#define HUGE_PAGE (2 << 20)

typedef struct {
    weight **w;       /* the weights to pack */
    uint8_t **dst;    /* their packed copies (the model's packed_owned) */
    int64_t n;
    atomic_llong next; /* the next (weight, chunk) to take: chunks of 64 groups */
    int64_t *chunk0;  /* [n + 1]: the first chunk of each weight */
    const uint8_t *keep; /* rows still read after packing (the token embedding) */
    uintptr_t page;
} repack_job;

/* Each thread takes chunks from the shared counter until none is left (weights differ in size). */
static void repack_worker(void *arg, int ith, int nth) {
    repack_job *j = arg;
    for (;;) {
        int64_t c = atomic_fetch_add(&j->next, 1);
        if (c >= j->chunk0[j->n]) return;
        int64_t i = 0;
        while (j->chunk0[i + 1] <= c) i++;
        const weight *w = j->w[i];
        int64_t gb = pk_group_bytes(w->type, w->n_in), ng = w->n_out / PK_ROWS;
        int64_t g0 = (c - j->chunk0[i]) * 64, g1 = g0 + 64 < ng ? g0 + 64 : ng;
        for (int64_t g = g0; g < g1; g++)
            pk_pack_w(w->type, w->n_in, w->data + g * PK_ROWS * w->row_bytes, w->row_bytes, j->dst[i] + g * gb);
        /* these rows are not read again (but the token embedding's, which a tied output shares): the
         * kernel may drop their pages from the mapping, so that resident memory stays about one copy of
         * the weights, not two (they come back from the file if ever touched) */
        if (w->data != j->keep && j->page > 0) {
            uintptr_t a = (uintptr_t)(w->data + g0 * PK_ROWS * w->row_bytes), e = (uintptr_t)(w->data + g1 * PK_ROWS * w->row_bytes);
            a = (a + j->page - 1) / j->page * j->page;
            e = e / j->page * j->page;
            if (e > a) madvise((void *)a, e - a, MADV_DONTNEED);
        }
    }
}

/* whether w's packed copy is larger than its rows (the lattice i-quants, expanded to 4-bit codes) */
static bool grows(const weight *w) {
    return (uint64_t)pk_weight_bytes(w->type, w->n_in, w->n_out) > (uint64_t)(w->n_out * w->row_bytes) * 9 / 8;
}

int model_repack(herd_model *m) {
    const char *env = getenv("HERD_REPACK");
    if (env && strcmp(env, "0") == 0) return HERD_OK;
    int64_t nmax = m->hp.n_layer * MODEL_LAYER_MATRICES + 1, n = 0;
    weight **ws = herd_xcalloc((size_t)nmax, sizeof *ws);
    for (int64_t l = 0; l < m->hp.n_layer; l++, n += MODEL_LAYER_MATRICES) model_layer_matrices(&m->layers[l], ws + n);
    if (m->stage == m->n_stages - 1) ws[n++] = &m->output; /* a pipeline stage before the last never reads it */
    int64_t k = 0;
    uint64_t need = 0, grow = 0; /* bytes of all the copies; of those that are larger than their rows */
    for (int64_t i = 0; i < n; i++) /* keep those the packed kernels take */
        if (ws[i]->data && !ws[i]->row_scale && pk_gemm_for(ws[i]->type, ws[i]->n_in, ws[i]->n_out)) {
            uint64_t b = (uint64_t)pk_weight_bytes(ws[i]->type, ws[i]->n_in, ws[i]->n_out);
            need += b;
            if (grows(ws[i])) grow += b;
            ws[k++] = ws[i];
        }
    n = k;
    const uint64_t avail = base_mem_available();
    if (grow && avail && need > avail / 10 * 9) { /* (the rows' pages are released as they are packed) */
        herd_log(0, "model: %s: the expanded copies of its lattice i-quant weights (%.1f of %.1f MiB repacked) would "
                 "not fit in the %.1f MiB available: they keep the file's layout (slower decode)", m->file.path,
                 (double)grow / (1 << 20), (double)need / (1 << 20), (double)avail / (1 << 20));
        k = 0;
        for (int64_t i = 0; i < n; i++)
            if (!grows(ws[i])) ws[k++] = ws[i];
        n = k;
    }
    if (n == 0) {
        free(ws);
        return HERD_OK;
    }
    long page = sysconf(_SC_PAGESIZE);
    m->packed_owned = herd_xcalloc((size_t)n, sizeof *m->packed_owned);
    repack_job j = {.w = ws, .dst = m->packed_owned, .n = n, .keep = m->tok_embd.data,
                    .page = page > 0 ? (uintptr_t)page : 0};
    j.chunk0 = herd_xcalloc((size_t)n + 1, sizeof *j.chunk0);
    for (int64_t i = 0; i < n; i++) {
        int64_t ng = ws[i]->n_out / PK_ROWS, bytes = pk_weight_bytes(ws[i]->type, ws[i]->n_in, ws[i]->n_out);
        void *p = NULL;
        /* 2 MiB-aligned and backed by huge pages where the kernel allows (THP "madvise"): decode
         * streams all of it every token, and 4 KiB pages would cost a TLB miss each */
        if (posix_memalign(&p, HUGE_PAGE, (size_t)bytes)) {
            int rc = herd_err(HERD_E_NOMEM, "model: %s: out of memory repacking '%s' (%lld bytes; HERD_REPACK=0 "
                              "runs without the copy)", m->file.path, ws[i]->name, (long long)bytes);
            free(ws), free(j.chunk0);
            return rc; /* the copies made so far are freed with the model */
        }
        madvise(p, (size_t)bytes, MADV_HUGEPAGE);
        m->packed_owned[m->n_packed_owned++] = p;
        m->packed_bytes += bytes;
        j.chunk0[i + 1] = j.chunk0[i] + (ng + 63) / 64;
    }
    int ncpu = cpus_default_threads();
    thread_pool *pool = pool_new(ncpu > 16 ? 16 : ncpu);
    if (pool) {
        pool_run(pool, repack_worker, &j);
        pool_free(pool);
    } else repack_worker(&j, 0, 1); /* no threads: pack on this one */
    /* the tied output shares tok_embd's rows but has its own packed copy; tok_embd keeps the rows */
    for (int64_t i = 0; i < n; i++) ws[i]->packed = j.dst[i];
    free(ws), free(j.chunk0);
    return HERD_OK;
}
