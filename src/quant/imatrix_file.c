/* Importance-matrix files, GGUF and .dat (formats in imatrix.h). Reading mirrors llama.cpp's
 * common_imatrix_load: a file that parses as GGUF is read as one, anything else as a .dat; a GGUF needs
 * an in_sum2 and a counts tensor (F32) for every name, a .dat at least one entry. Writing mirrors
 * llama-imatrix's save_imatrix / save_imatrix_legacy, names in sorted order. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/file.h"
#include "../base/log.h"
#include "../gguf/gguf.h"
#include "herd.h"
#include "imatrix.h"

void imatrix_clear(imatrix *im) {
    if (!im) return;
    for (int64_t i = 0; i < im->n; i++) {
        free(im->e[i].name);
        free(im->e[i].sums);
        free(im->e[i].counts);
    }
    free(im->e);
    for (int64_t i = 0; i < im->n_datasets; i++) free(im->datasets[i]);
    free(im->datasets);
    memset(im, 0, sizeof *im);
}

static int by_name(const void *a, const void *b) {
    return strcmp(((const imatrix_entry *)a)->name, ((const imatrix_entry *)b)->name);
}

const imatrix_entry *imatrix_find(const imatrix *im, const char *name) {
    imatrix_entry key = {.name = (char *)name};
    return im->n ? bsearch(&key, im->e, (size_t)im->n, sizeof *im->e, by_name) : NULL;
}

void imatrix_weights(const imatrix *im, const imatrix_entry *e, float *out) {
    if (im->legacy) { /* llama-quantize: v / ncall, or v itself when ncall is 0 */
        int64_t ncall = e->n_counts ? e->counts[0] : 0;
        for (int64_t i = 0; i < e->n_sums; i++) out[i] = ncall > 0 ? e->sums[i] / (float)ncall : e->sums[i];
        return;
    }
    int64_t ne0 = e->n_sums / e->n_counts;
    for (int64_t j = 0; j < e->n_counts; j++) {
        const float count = (float)e->counts[j];
        for (int64_t i = 0; i < ne0; i++) out[j * ne0 + i] = count > 0.0f ? e->sums[j * ne0 + i] / count : 1;
    }
}

/* ---- reading ---------------------------------------------------------------------------------- */

static char *dup_str(const char *p, uint64_t n) {
    return herd_xstrndup(p, (size_t)n);
}

/* the entry of name (appended when new; the array is sorted at the end) */
static imatrix_entry *entry_for(imatrix *im, const char *name, size_t len, int64_t *cap) {
    for (int64_t i = 0; i < im->n; i++)
        if (strlen(im->e[i].name) == len && memcmp(im->e[i].name, name, len) == 0) return &im->e[i];
    if (im->n == *cap) {
        *cap = *cap ? 2 * *cap : 16;
        imatrix_entry *e = realloc(im->e, (size_t)*cap * sizeof *e);
        if (!e) return NULL;
        im->e = e;
    }
    imatrix_entry *e = &im->e[im->n++];
    memset(e, 0, sizeof *e);
    e->name = dup_str(name, len);
    return e;
}

static bool ends_with(const char *s, size_t n, const char *suffix, size_t *stem) {
    size_t k = strlen(suffix);
    if (n <= k || memcmp(s + n - k, suffix, k) != 0) return false;
    *stem = n - k;
    return true;
}

static int parse_gguf(const uint8_t *buf, uint64_t size, const char *what, imatrix *im) {
    gguf_file g;
    int rc = gguf_parse(buf, size, what, &g);
    if (rc) return rc;
    if (g.n_tensors < 1) {
        gguf_file_clear(&g);
        return herd_err(HERD_E_FORMAT, "imatrix: %s: no data (no tensors)", what);
    }
    const gguf_kv *ds = gguf_get_arr(&g, IMATRIX_KEY_DATASETS, GGUF_T_STRING);
    int64_t cc = 0, cs = 0;
    bool has_cc = gguf_get_int(&g, IMATRIX_KEY_CHUNK_COUNT, &cc), has_cs = gguf_get_int(&g, IMATRIX_KEY_CHUNK_SIZE, &cs);
    im->has_metadata = ds && has_cc && has_cs;
    im->chunk_count = has_cc ? cc : 0;
    im->chunk_size = has_cs ? cs : 0;
    if (ds && ds->arr_n) {
        im->datasets = herd_xcalloc((size_t)ds->arr_n, sizeof *im->datasets);
        for (uint64_t i = 0; i < ds->arr_n; i++) im->datasets[im->n_datasets++] = dup_str(ds->strs[i].ptr, ds->strs[i].len);
    }
    int64_t cap = 0;
    /* pass 1: every NAME.in_sum2 / NAME.counts pair; other tensors are ignored, as llama.cpp does */
    for (int64_t i = 0; i < g.n_tensors && !rc; i++) {
        const gguf_tensor *t = &g.tensors[i];
        size_t n = strlen(t->name), stem;
        bool is_sum = ends_with(t->name, n, ".in_sum2", &stem), is_count = !is_sum && ends_with(t->name, n, ".counts", &stem);
        if (!is_sum && !is_count) continue;
        if (t->type != HERD_TYPE_F32) {
            rc = herd_err(HERD_E_FORMAT, "imatrix: %s: tensor '%s' has type %s; sums and counts must be F32", what, t->name,
                          herd_type_name(t->type));
            break;
        }
        imatrix_entry *e = entry_for(im, t->name, stem, &cap);
        if (!e) { rc = herd_err(HERD_E_NOMEM, "imatrix: out of memory"); break; }
        int64_t ne = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
        const float *v = (const float *)t->data; /* gguf_parse checked ne * 4 bytes are inside the file */
        if (is_sum ? e->sums != NULL : e->counts != NULL) {
            rc = herd_err(HERD_E_FORMAT, "imatrix: %s: tensor '%s' appears twice", what, t->name);
        } else if (is_sum) {
            e->sums = herd_xmalloc((size_t)(ne ? ne : 1) * sizeof *e->sums);
            memcpy(e->sums, v, (size_t)ne * sizeof *e->sums);
            e->n_sums = ne;
        } else {
            e->counts = herd_xmalloc((size_t)(ne ? ne : 1) * sizeof *e->counts);
            e->n_counts = ne;
            for (int64_t j = 0; j < ne && !rc; j++) {
                float c;
                memcpy(&c, v + j, sizeof c);
                if (!(c >= 0 && c < 9.2e18f))
                    rc = herd_err(HERD_E_FORMAT, "imatrix: %s: tensor '%s' holds the count %g", what, t->name, (double)c);
                else e->counts[j] = (int64_t)lroundf(c);
            }
        }
    }
    for (int64_t i = 0; i < im->n && !rc; i++) {
        imatrix_entry *e = &im->e[i];
        if (!e->sums || !e->counts)
            rc = herd_err(HERD_E_FORMAT, "imatrix: %s: '%s' has %s but no %s tensor", what, e->name,
                          e->sums ? "sums" : "counts", e->sums ? "counts" : "in_sum2");
        else if (e->n_counts < 1 || e->n_sums < 1 || e->n_sums % e->n_counts != 0)
            rc = herd_err(HERD_E_FORMAT, "imatrix: %s: '%s' has %lld sums for %lld counts", what, e->name,
                          (long long)e->n_sums, (long long)e->n_counts);
    }
    if (!rc && im->n == 0) rc = herd_err(HERD_E_FORMAT, "imatrix: %s: no .in_sum2 / .counts tensors", what);
    gguf_file_clear(&g);
    return rc;
}

/* a bounded little-endian reader over the .dat bytes */
typedef struct {
    const uint8_t *p;
    uint64_t n, off;
} rd;

static bool rd_i32(rd *r, int32_t *v) {
    if (r->n - r->off < 4) return false;
    memcpy(v, r->p + r->off, 4);
    r->off += 4;
    return true;
}

static int parse_dat(const uint8_t *buf, uint64_t size, const char *what, imatrix *im) {
    rd r = {buf, size, 0};
    int32_t n_entries;
    if (!rd_i32(&r, &n_entries) || n_entries < 1)
        return herd_err(HERD_E_FORMAT, "imatrix: %s: not a GGUF and no entries as a .dat imatrix", what);
    /* each entry takes at least 16 bytes: a count beyond that cannot be real */
    if ((uint64_t)n_entries > size / 16)
        return herd_err(HERD_E_FORMAT, "imatrix: %s: %d entries do not fit in %llu bytes", what, n_entries,
                        (unsigned long long)size);
    im->legacy = true;
    int64_t cap = 0;
    for (int32_t i = 0; i < n_entries; i++) {
        int32_t len, ncall, nval;
        if (!rd_i32(&r, &len) || len < 0 || (uint64_t)len > r.n - r.off)
            return herd_err(HERD_E_FORMAT, "imatrix: %s: entry %d: bad name length", what, i + 1);
        const char *name = (const char *)r.p + r.off;
        r.off += (uint64_t)len;
        if (memchr(name, 0, (size_t)len)) return herd_err(HERD_E_FORMAT, "imatrix: %s: entry %d: NUL in its name", what, i + 1);
        if (!rd_i32(&r, &ncall) || !rd_i32(&r, &nval) || nval < 1 || (uint64_t)nval > (r.n - r.off) / 4)
            return herd_err(HERD_E_FORMAT, "imatrix: %s: entry %d ('%.*s'): truncated or bad value count", what, i + 1,
                            len < 64 ? len : 64, name);
        size_t before = (size_t)im->n;
        imatrix_entry *e = entry_for(im, name, (size_t)len, &cap);
        if (!e) return herd_err(HERD_E_NOMEM, "imatrix: out of memory");
        if ((size_t)im->n == before)
            return herd_err(HERD_E_FORMAT, "imatrix: %s: entry '%s' appears twice", what, e->name);
        e->sums = herd_xmalloc((size_t)nval * sizeof *e->sums);
        memcpy(e->sums, r.p + r.off, (size_t)nval * sizeof *e->sums);
        r.off += (uint64_t)nval * 4;
        e->n_sums = nval;
        e->counts = herd_xmalloc(sizeof *e->counts);
        e->counts[0] = ncall;
        e->n_counts = 1;
    }
    /* the optional tail: chunk count, then the dataset's name */
    int32_t n_calls, len;
    if (rd_i32(&r, &n_calls)) {
        im->chunk_count = n_calls;
        if (rd_i32(&r, &len) && len > 0 && (uint64_t)len <= r.n - r.off) {
            im->datasets = herd_xcalloc(1, sizeof *im->datasets);
            im->datasets[0] = dup_str((const char *)r.p + r.off, (uint64_t)len);
            im->datasets[0][strnlen(im->datasets[0], (size_t)len)] = 0; /* as llama.cpp: up to a NUL */
            im->n_datasets = 1;
        }
    }
    return HERD_OK;
}

int imatrix_parse(const uint8_t *buf, uint64_t size, const char *what, imatrix *out) {
    memset(out, 0, sizeof *out);
    int rc = size >= 4 && memcmp(buf, "GGUF", 4) == 0 ? parse_gguf(buf, size, what, out) : parse_dat(buf, size, what, out);
    if (rc) {
        imatrix_clear(out);
        return rc;
    }
    qsort(out->e, (size_t)out->n, sizeof *out->e, by_name);
    return HERD_OK;
}

int imatrix_load(const char *path, imatrix *out) {
    memset(out, 0, sizeof *out);
    herd_mapped_file f;
    int rc = herd_file_map(path, &f);
    if (rc) return rc;
    rc = imatrix_parse(f.data, f.size, path, out);
    herd_file_unmap(&f);
    return rc;
}

/* ---- writing ---------------------------------------------------------------------------------- */

static int64_t max_count(const imatrix_entry *e) {
    int64_t m = 0;
    for (int64_t j = 0; j < e->n_counts; j++) m = e->counts[j] > m ? e->counts[j] : m;
    return m;
}

static int save_gguf(const imatrix *im, const char *path) {
    gguf_writer *w = gguf_writer_new();
    gguf_writer_set_str(w, "general.type", "imatrix", 7);
    gguf_str *ds = herd_xcalloc((size_t)(im->n_datasets ? im->n_datasets : 1), sizeof *ds);
    for (int64_t i = 0; i < im->n_datasets; i++) ds[i] = (gguf_str){im->datasets[i], strlen(im->datasets[i])};
    gguf_writer_set_arr_str(w, IMATRIX_KEY_DATASETS, ds, (uint64_t)im->n_datasets);
    free(ds);
    gguf_writer_set_u32(w, IMATRIX_KEY_CHUNK_COUNT, (uint32_t)im->chunk_count);
    gguf_writer_set_u32(w, IMATRIX_KEY_CHUNK_SIZE, (uint32_t)im->chunk_size);
    /* the counts as F32, one array for all entries (kept until the write) */
    int64_t n_counts = 0;
    for (int64_t i = 0; i < im->n; i++) n_counts += im->e[i].n_counts;
    float *counts = herd_xmalloc((size_t)(n_counts ? n_counts : 1) * sizeof *counts);
    int rc = HERD_OK;
    char name[1024];
    for (int64_t i = 0, k = 0; i < im->n && !rc; i++) {
        const imatrix_entry *e = &im->e[i];
        if (e->n_sums < 1 || e->n_counts < 1) continue;
        int64_t nmat = e->n_counts;
        /* ggml writes a tensor's dimensions up to its last one above 1: [n_in] when nmat is 1 */
        int64_t ne_s[2] = {e->n_sums / nmat, nmat}, ne_c[2] = {1, nmat};
        for (int64_t j = 0; j < nmat; j++) counts[k + j] = (float)e->counts[j];
        snprintf(name, sizeof name, "%s.in_sum2", e->name);
        rc = gguf_writer_add_tensor(w, name, HERD_TYPE_F32, nmat > 1 ? 2 : 1, ne_s, e->sums, NULL, NULL);
        snprintf(name, sizeof name, "%s.counts", e->name);
        if (!rc) rc = gguf_writer_add_tensor(w, name, HERD_TYPE_F32, nmat > 1 ? 2 : 1, ne_c, counts + k, NULL, NULL);
        k += nmat;
    }
    char *tmp = herd_file_temp_name(path);
    if (!rc) rc = gguf_writer_write(w, tmp);
    rc = herd_file_commit(tmp, path, rc);
    free(tmp);
    gguf_writer_free(w);
    free(counts);
    return rc;
}

static void put(uint8_t **p, const void *v, size_t n) {
    memcpy(*p, v, n);
    *p += n;
}

static int save_dat(const imatrix *im, const char *path) {
    /* llama-imatrix's save_imatrix_legacy: entries with all counts 0 are skipped; a matrix with some counts 0
     * (an MoE expert never routed to) stores 1 for those */
    int64_t chunk_size = im->chunk_size > 0 ? im->chunk_size : 1;
    size_t bytes = 4 + 8 + (im->n_datasets ? strlen(im->datasets[im->n_datasets - 1]) : 0);
    int32_t n_entries = 0;
    for (int64_t i = 0; i < im->n; i++)
        if (max_count(&im->e[i]) > 0 && im->e[i].n_sums > 0) {
            n_entries++;
            bytes += 12 + strlen(im->e[i].name) + 4 * (size_t)im->e[i].n_sums;
        }
    uint8_t *buf = herd_xmalloc(bytes), *p = buf;
    put(&p, &n_entries, 4);
    for (int64_t i = 0; i < im->n; i++) {
        const imatrix_entry *e = &im->e[i];
        if (max_count(e) <= 0 || e->n_sums <= 0) continue;
        int32_t len = (int32_t)strlen(e->name), nval = (int32_t)e->n_sums;
        int32_t ncall = (int32_t)((max_count(e) + chunk_size - 1) / chunk_size); /* ceiling: never 0 */
        put(&p, &len, 4);
        put(&p, e->name, (size_t)len);
        put(&p, &ncall, 4);
        put(&p, &nval, 4);
        int64_t per = e->n_sums / e->n_counts;
        for (int64_t j = 0; j < e->n_sums; j++) {
            float count = (float)e->counts[j / per], value = e->sums[j];
            if (count == 0.0f) value = 1.0f, count = 1.0f;
            float v = (value / count) * (float)ncall;
            put(&p, &v, 4);
        }
    }
    int32_t cc = (int32_t)im->chunk_count, dl = im->n_datasets ? (int32_t)strlen(im->datasets[im->n_datasets - 1]) : 0;
    put(&p, &cc, 4);
    put(&p, &dl, 4);
    if (dl) put(&p, im->datasets[im->n_datasets - 1], (size_t)dl);
    const void *parts[1] = {buf};
    size_t sizes[1] = {(size_t)(p - buf)};
    int rc = herd_file_write_atomic(path, parts, sizes, 1);
    free(buf);
    return rc;
}

int imatrix_save(const imatrix *im, const char *path, bool dat) {
    HERD_ASSERT(!im->legacy);
    return dat ? save_dat(im, path) : save_gguf(im, path);
}
