/* herd_quantize_model: a GGUF in, the same GGUF out with its weights quantized by the rules of quant.h.
 *
 * The input is mapped; the output goes through the GGUF writer, which asks for each tensor's bytes in
 * file order (fill()). A tensor is processed in chunks of rows; each chunk is split over the thread
 * pool by row ranges, and every row is independent (converted to f32, quantized, and dequantized again
 * for the error statistics), so the output bytes do not depend on the thread count. Progress is reported
 * from the calling thread between chunks. Memory: one tensor's output (the writer's buffer) plus two rows
 * of floats per thread. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../base/file.h"
#include "../base/log.h"
#include "../gguf/gguf.h"
#include "../kernels/kernels.h"
#include "../thread/cpus.h"
#include "../thread/pool.h"
#include "herd.h"
#include "imatrix.h"
#include "quant.h"

#define CHUNK_ELEMENTS ((int64_t)1 << 21) /* rows per progress report: ~2M weights */

typedef struct q_ctx q_ctx;

typedef struct {
    q_ctx *c;
    int64_t index;
    const gguf_tensor *t;
    int type_out;
    bool copy;                     /* bytes copied unchanged */
    int64_t n_in, rows;
    int64_t in_row_bytes, out_row_bytes;
    const kernel_type_ops *in_ops; /* to f32 */
    const kernel_type_ops *out_ops;
    herd_quantize_tensor *stat;
    const char *warning;
    float *qw;                     /* [n_in] importance weights (imatrix.h), or NULL; owned */
} q_item;

struct q_ctx {
    herd_quantize_params p;
    thread_pool *pool;
    int nth;
    float *scratch;                /* per thread: 2 rows of max_n_in floats */
    int64_t max_n_in;
    double *err, *ref;             /* per thread: sum (x - x')^2, sum x^2 of the current tensor */
    int64_t *bad_row;              /* per thread: first row with a non-finite input, or -1 */
    uint64_t bytes_done, bytes_total;
    int64_t n_tensors;
    double t0;
};

typedef struct {
    q_item *it;
    uint8_t *dst;
    int64_t r0, r1;
} q_job;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void quantize_rows(void *arg, int ith, int nth) {
    q_job *j = arg;
    q_item *it = j->it;
    q_ctx *c = it->c;
    int64_t a, b;
    pool_range(j->r1 - j->r0, ith, nth, &a, &b);
    float *x = c->scratch + (size_t)ith * 2 * (size_t)c->max_n_in, *y = x + c->max_n_in;
    double err = 0, ref = 0;
    for (int64_t r = j->r0 + a; r < j->r0 + b; r++) {
        it->in_ops->to_f32(it->t->data + r * it->in_row_bytes, x, it->n_in);
        bool finite = true;
        for (int64_t i = 0; i < it->n_in; i++) finite &= isfinite(x[i]) != 0;
        if (!finite) {
            if (c->bad_row[ith] < 0) c->bad_row[ith] = r;
            continue;
        }
        uint8_t *q = j->dst + r * it->out_row_bytes;
        if (quant_row_lowbit(it->type_out, x, q, it->n_in, it->qw)) {
        } else if (!it->qw || !quant_row_weighted(it->type_out, x, q, it->n_in, it->qw)) {
            it->out_ops->from_f32(x, q, it->n_in);
        }
        it->out_ops->to_f32(q, y, it->n_in);
        for (int64_t i = 0; i < it->n_in; i++) {
            double d = (double)x[i] - y[i];
            err += d * d;
            ref += (double)x[i] * x[i];
        }
    }
    c->err[ith] += err;
    c->ref[ith] += ref;
}

static void report(q_ctx *c, q_item *it, const char *warning) {
    if (!c->p.progress) return;
    herd_quantize_progress pr = {it->index, c->n_tensors, it->t->name, it->t->type, it->type_out, c->bytes_done,
                                 c->bytes_total, now_s() - c->t0, warning};
    c->p.progress(&pr, c->p.user);
}

static int fill(void *user, const char *name, uint8_t *dst, uint64_t nbytes) {
    q_item *it = user;
    q_ctx *c = it->c;
    (void)name;
    report(c, it, it->warning);
    if (it->copy) {
        HERD_ASSERT(nbytes == it->t->nbytes);
        memcpy(dst, it->t->data, nbytes);
        c->bytes_done += it->t->nbytes;
        report(c, it, NULL);
        return HERD_OK;
    }
    for (int k = 0; k < c->nth; k++) c->err[k] = c->ref[k] = 0, c->bad_row[k] = -1;
    int64_t chunk = CHUNK_ELEMENTS / it->n_in > 0 ? CHUNK_ELEMENTS / it->n_in : 1;
    for (int64_t r0 = 0; r0 < it->rows; r0 += chunk) {
        q_job j = {it, dst, r0, r0 + chunk < it->rows ? r0 + chunk : it->rows};
        pool_run(c->pool, quantize_rows, &j);
        for (int k = 0; k < c->nth; k++)
            if (c->bad_row[k] >= 0)
                return herd_err(HERD_E_FORMAT, "quantize: tensor '%s' has a non-finite value in row %lld",
                                it->t->name, (long long)c->bad_row[k]);
        c->bytes_done += (uint64_t)((j.r1 - j.r0) * it->in_row_bytes);
        report(c, it, NULL);
    }
    double err = 0, ref = 0;
    for (int k = 0; k < c->nth; k++) err += c->err[k], ref += c->ref[k];
    it->stat->nmse = ref > 0 ? err / ref : err > 0 ? INFINITY : NAN;
    return HERD_OK;
}

herd_quantize_params herd_quantize_default_params(void) {
    herd_quantize_params p = {0};
    return p;
}

void herd_quantize_result_free(herd_quantize_result *r) {
    if (!r) return;
    for (int64_t i = 0; i < r->n_tensors; i++) free(r->tensors[i].name);
    free(r->tensors);
    memset(r, 0, sizeof *r);
}

/* llama-quantize's checks of an importance matrix: a GGUF one needs its metadata, every value is finite */
static int load_imatrix(const char *path, imatrix *im) {
    int rc = imatrix_load(path, im);
    if (rc) return rc;
    if (!im->legacy && !im->has_metadata)
        return herd_err(HERD_E_FORMAT, "quantize: %s: missing imatrix metadata (imatrix.datasets, chunk_count, chunk_size)",
                        path);
    for (int64_t i = 0; i < im->n; i++)
        for (int64_t j = 0; j < im->e[i].n_sums; j++)
            if (!isfinite(im->e[i].sums[j]))
                return herd_err(HERD_E_FORMAT, "quantize: %s: entry '%s' holds a non-finite value", path, im->e[i].name);
    return HERD_OK;
}

/* out_path is the input file itself (the writer would truncate the mapping it reads from) */
static bool same_file(const char *a, const char *b) {
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* Decides every tensor's output type and checks that herd can read what it must convert. */
/* The importance weights of tensor t from im (NULL: none or no entry). HERD_E_FORMAT when the entry's size
 * is not the tensor's row length (llama-quantize's error; token_embd is quantized without, as there). */
static int imatrix_for(const imatrix *im, const gguf_tensor *t, float **qw) {
    *qw = NULL;
    const imatrix_entry *e = im ? imatrix_find(im, t->name) : NULL;
    if (!e) return HERD_OK;
    if (e->n_sums != t->ne[0] * t->ne[2]) {
        if (strstr(t->name, "token_embd.weight")) return HERD_OK;
        return herd_err(HERD_E_FORMAT, "quantize: the importance matrix has %lld values for tensor '%s', whose rows "
                        "have %lld", (long long)e->n_sums, t->name, (long long)(t->ne[0] * t->ne[2]));
    }
    *qw = herd_xmalloc((size_t)e->n_sums * sizeof **qw);
    imatrix_weights(im, e, *qw);
    return HERD_OK;
}

static int plan_items(quant_plan *pl, const gguf_file *g, const char *path, q_item *items,
                      herd_quantize_tensor *stats, const imatrix *im) {
    for (int64_t i = 0; i < g->n_tensors; i++) quant_plan_count(pl, g->tensors[i].name);
    int64_t nh = 0, nkv = 0;
    if (gguf_get_int(g, "llama.attention.head_count", &nh) && gguf_get_int(g, "llama.attention.head_count_kv", &nkv) &&
        nh > 0 && nkv > 0)
        pl->n_gqa = nh / nkv;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        const gguf_tensor *t = &g->tensors[i];
        q_item *it = &items[i];
        bool fallback;
        it->index = i;
        it->t = t;
        it->type_out = quant_plan_type(pl, t->name, t->n_dims, t->ne[0], t->type, &fallback);
        it->copy = it->type_out == t->type;
        it->n_in = t->ne[0];
        it->rows = t->ne[1] * t->ne[2] * t->ne[3];
        it->stat = &stats[i];
        stats[i] = (herd_quantize_tensor){herd_xstrndup(t->name, strlen(t->name)), t->type, it->type_out,
                                          it->n_in * it->rows, !it->copy, false, fallback, 0, false};
        if (it->copy) continue;
        it->in_ops = kernels_type(t->type);
        it->out_ops = kernels_type(it->type_out);
        if (!it->in_ops || t->type == HERD_TYPE_FP8_E4M3)
            return herd_err(HERD_E_UNSUPPORTED, "quantize: %s: tensor '%s' has type %s, which herd cannot convert "
                            "to %s", path, t->name, herd_type_name(t->type), herd_type_name(it->type_out));
        HERD_ASSERT(it->out_ops);
        int rc = imatrix_for(im, t, &it->qw);
        if (rc) return rc;
        stats[i].imatrix = it->qw != NULL;
        if (!it->qw && (quant_requires_imatrix(t->name, it->type_out, pl->file_type) || quant_lowbit_needs_weights(it->type_out)))
            return herd_err(HERD_E_ARG, "quantize: tensor '%s' would get type %s, which needs an importance matrix "
                            "(--imatrix FILE with an entry for it)", t->name, herd_type_name(it->type_out));
        it->in_row_bytes = kernels_row_bytes(t->type, it->n_in);
        it->out_row_bytes = kernels_row_bytes(it->type_out, it->n_in);
        bool quantized_in = t->type != HERD_TYPE_F32 && t->type != HERD_TYPE_F16 && t->type != HERD_TYPE_BF16;
        stats[i].requantized = quantized_in;
        it->warning = quantized_in ? "the input is quantized already: dequantized and quantized again (errors add up)"
                      : fallback  ? "row length does not fit the mix's type: fallback type"
                                  : NULL;
    }
    return HERD_OK;
}

int herd_quantize_model(const char *in_path, const char *out_path, const char *type, const herd_quantize_params *p,
                        herd_quantize_result *out) {
    kernels_init();
    if (out) memset(out, 0, sizeof *out);
    herd_quantize_params params = p ? *p : herd_quantize_default_params();
    quant_plan pl;
    if (!type || !quant_plan_init(&pl, type, params.pure))
        return herd_err(HERD_E_ARG, "quantize: unknown type '%s' (one of %s)", type ? type : "", quant_plan_names());
    if (same_file(in_path, out_path))
        return herd_err(HERD_E_ARG, "quantize: the output '%s' is the input file", out_path);
    double t0 = now_s();
    herd_mapped_file f;
    gguf_file g;
    int rc = herd_file_map(in_path, &f);
    if (rc) return rc;
    if ((rc = gguf_parse(f.data, f.size, in_path, &g))) {
        herd_file_unmap(&f);
        return rc;
    }
    q_item *items = herd_xcalloc((size_t)(g.n_tensors ? g.n_tensors : 1), sizeof *items);
    herd_quantize_tensor *stats = herd_xcalloc((size_t)(g.n_tensors ? g.n_tensors : 1), sizeof *stats);
    q_ctx c = {.p = params, .n_tensors = g.n_tensors, .t0 = t0};
    gguf_writer *w = NULL;
    imatrix im = {0};
    if (params.imatrix && !(rc = load_imatrix(params.imatrix, &im))) pl.has_imatrix = im.n > 0;
    if (!rc) rc = plan_items(&pl, &g, in_path, items, stats, params.imatrix ? &im : NULL);

    if (!rc) {
        int nth = params.n_threads > 0 ? params.n_threads : cpus_default_threads();
        c.nth = nth > 0 ? nth : 1;
        for (int64_t i = 0; i < g.n_tensors; i++) {
            items[i].c = &c;
            c.bytes_total += g.tensors[i].nbytes;
            if (!items[i].copy && items[i].n_in > c.max_n_in) c.max_n_in = items[i].n_in;
        }
        c.scratch = malloc((size_t)c.nth * 2 * (size_t)(c.max_n_in ? c.max_n_in : 1) * sizeof(float));
        c.err = herd_xcalloc((size_t)c.nth, sizeof(double));
        c.ref = herd_xcalloc((size_t)c.nth, sizeof(double));
        c.bad_row = herd_xcalloc((size_t)c.nth, sizeof(int64_t));
        if (!c.scratch) rc = herd_err(HERD_E_NOMEM, "quantize: out of memory for row buffers");
        else if (!(c.pool = pool_new(c.nth))) rc = HERD_E_NOMEM;
    }
    if (!rc) {
        w = gguf_writer_new();
        bool ft = false, qv = false;
        for (int64_t i = 0; i < g.n_kv; i++) {
            const char *key = g.kv[i].key;
            if (strcmp(key, "general.file_type") == 0) {
                gguf_writer_set_u32(w, key, (uint32_t)pl.file_type);
                ft = true;
            } else if (strcmp(key, "general.quantization_version") == 0) {
                gguf_writer_set_u32(w, key, 2);
                qv = true;
            } else {
                gguf_writer_copy_kv(w, &g.kv[i]);
            }
        }
        if (!ft) gguf_writer_set_u32(w, "general.file_type", (uint32_t)pl.file_type);
        if (!qv) gguf_writer_set_u32(w, "general.quantization_version", 2);
        if (pl.has_imatrix) { /* the keys llama-quantize records */
            gguf_writer_set_str(w, "quantize.imatrix.file", params.imatrix, strnlen(params.imatrix, 127));
            if (im.n_datasets)
                gguf_writer_set_str(w, "quantize.imatrix.dataset", im.datasets[0], strnlen(im.datasets[0], 127));
            gguf_writer_set_u32(w, "quantize.imatrix.entries_count", (uint32_t)im.n);
            if (im.chunk_count > 0) gguf_writer_set_u32(w, "quantize.imatrix.chunks_count", (uint32_t)im.chunk_count);
        }
        for (int64_t i = 0; i < g.n_tensors && !rc; i++) {
            const gguf_tensor *t = &g.tensors[i];
            rc = gguf_writer_add_tensor(w, t->name, items[i].type_out, t->n_dims, t->ne, NULL, fill, &items[i]);
        }
        if (!rc) rc = gguf_writer_write(w, out_path);
    }
    if (!rc && out) {
        struct stat so;
        out->tensors = stats;
        out->n_tensors = g.n_tensors;
        out->bytes_in = f.size;
        out->bytes_out = stat(out_path, &so) == 0 ? (uint64_t)so.st_size : 0;
        out->seconds = now_s() - t0;
        out->file_type = pl.file_type;
        stats = NULL;
    }
    if (stats) {
        herd_quantize_result tmp = {stats, g.n_tensors, 0, 0, 0, 0};
        herd_quantize_result_free(&tmp);
    }
    gguf_writer_free(w);
    pool_free(c.pool);
    free(c.scratch);
    free(c.err);
    free(c.ref);
    free(c.bad_row);
    for (int64_t i = 0; i < g.n_tensors; i++) free(items[i].qw);
    free(items);
    imatrix_clear(&im);
    gguf_file_clear(&g);
    herd_file_unmap(&f);
    return rc;
}
