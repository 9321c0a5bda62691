/* GGUF writer: collects metadata and tensor descriptions, then streams the file in one pass.
 * Metadata values are serialized into an owned byte buffer as they are set, so the writer never
 * holds pointers into caller memory except tensor data passed by pointer. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/log.h"
#include "gguf.h"

typedef struct {
    char *name;
    int type, n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    uint64_t nbytes, offset;
    const void *data;
    gguf_fill_fn fill;
    void *user;
} wtensor;

typedef struct {
    uint8_t *p;
    size_t n, cap;
} bytes;

struct gguf_writer {
    bytes kv;          /* serialized key/value pairs */
    int64_t n_kv;
    char **keys;       /* for replacing duplicates: index into offsets */
    size_t *kv_start;  /* byte offset of each kv in `kv` */
    wtensor *t;
    int64_t n_t, cap_t;
    uint64_t alignment;
};

static void put(bytes *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 256;
        b->p = herd_xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void put_u32(bytes *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(bytes *b, uint64_t v) { put(b, &v, 8); }
static void put_str(bytes *b, const char *s, uint64_t len) {
    put_u64(b, len);
    put(b, s, len);
}

gguf_writer *gguf_writer_new(void) {
    gguf_writer *w = herd_xcalloc(1, sizeof *w);
    w->alignment = GGUF_DEFAULT_ALIGNMENT;
    return w;
}

void gguf_writer_free(gguf_writer *w) {
    if (!w) return;
    free(w->kv.p);
    for (int64_t i = 0; i < w->n_kv; i++) free(w->keys[i]);
    free(w->keys);
    free(w->kv_start);
    for (int64_t i = 0; i < w->n_t; i++) free(w->t[i].name);
    free(w->t);
    free(w);
}

/* Starts a kv: a key set twice keeps only the later value (the earlier bytes are cut out). */
static void begin_kv(gguf_writer *w, const char *key, uint32_t type) {
    for (int64_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->keys[i], key) != 0) continue;
        size_t start = w->kv_start[i];
        size_t end = i + 1 < w->n_kv ? w->kv_start[i + 1] : w->kv.n;
        memmove(w->kv.p + start, w->kv.p + end, w->kv.n - end);
        w->kv.n -= end - start;
        free(w->keys[i]);
        for (int64_t j = i + 1; j < w->n_kv; j++) {
            w->keys[j - 1] = w->keys[j];
            w->kv_start[j - 1] = w->kv_start[j] - (end - start);
        }
        w->n_kv--;
        break;
    }
    w->keys = herd_xrealloc(w->keys, (size_t)(w->n_kv + 1) * sizeof *w->keys);
    w->kv_start = herd_xrealloc(w->kv_start, (size_t)(w->n_kv + 1) * sizeof *w->kv_start);
    w->keys[w->n_kv] = herd_xstrndup(key, strlen(key));
    w->kv_start[w->n_kv] = w->kv.n;
    w->n_kv++;
    put_str(&w->kv, key, strlen(key));
    put_u32(&w->kv, type);
    if (strcmp(key, "general.alignment") == 0) w->alignment = 0; /* set by the caller below */
}

void gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v) {
    begin_kv(w, key, GGUF_T_UINT32);
    put_u32(&w->kv, v);
    if (strcmp(key, "general.alignment") == 0) w->alignment = v;
}

void gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v) {
    begin_kv(w, key, GGUF_T_INT32);
    put(&w->kv, &v, 4);
}

void gguf_writer_set_f32(gguf_writer *w, const char *key, float v) {
    begin_kv(w, key, GGUF_T_FLOAT32);
    put(&w->kv, &v, 4);
}

void gguf_writer_set_bool(gguf_writer *w, const char *key, bool v) {
    begin_kv(w, key, GGUF_T_BOOL);
    uint8_t b = v ? 1 : 0;
    put(&w->kv, &b, 1);
}

void gguf_writer_set_str(gguf_writer *w, const char *key, const char *s, uint64_t len) {
    begin_kv(w, key, GGUF_T_STRING);
    put_str(&w->kv, s, len);
}

void gguf_writer_set_arr(gguf_writer *w, const char *key, int elem_type, const void *data, uint64_t n) {
    uint64_t es = gguf_vtype_size(elem_type);
    HERD_ASSERT(es > 0);
    begin_kv(w, key, GGUF_T_ARRAY);
    put_u32(&w->kv, (uint32_t)elem_type);
    put_u64(&w->kv, n);
    put(&w->kv, data, n * es);
}

void gguf_writer_set_arr_str(gguf_writer *w, const char *key, const gguf_str *strs, uint64_t n) {
    begin_kv(w, key, GGUF_T_ARRAY);
    put_u32(&w->kv, GGUF_T_STRING);
    put_u64(&w->kv, n);
    for (uint64_t i = 0; i < n; i++) put_str(&w->kv, strs[i].ptr, strs[i].len);
}

void gguf_writer_copy_kv(gguf_writer *w, const gguf_kv *kv) {
    if (kv->type == GGUF_T_ARRAY) {
        if (kv->arr_type == GGUF_T_STRING)
            gguf_writer_set_arr_str(w, kv->key, kv->strs, kv->arr_n);
        else
            gguf_writer_set_arr(w, kv->key, kv->arr_type, kv->raw, kv->arr_n);
    } else if (kv->type == GGUF_T_STRING) {
        gguf_writer_set_str(w, kv->key, kv->v.s.ptr, kv->v.s.len);
    } else {
        begin_kv(w, kv->key, (uint32_t)kv->type);
        put(&w->kv, kv->raw, gguf_vtype_size(kv->type));
        if (strcmp(kv->key, "general.alignment") == 0) w->alignment = kv->v.u;
    }
}

int gguf_writer_add_tensor(gguf_writer *w, const char *name, int type, int n_dims, const int64_t *ne,
                           const void *data, gguf_fill_fn fill, void *user) {
    int64_t block, bsize;
    if (!gguf_type_size(type, &block, &bsize))
        return herd_err(HERD_E_ARG, "gguf: cannot write tensor '%s' of unknown type %d", name, type);
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS)
        return herd_err(HERD_E_ARG, "gguf: tensor '%s' has %d dimensions", name, n_dims);
    if (ne[0] % block != 0)
        return herd_err(HERD_E_ARG, "gguf: tensor '%s': row of %lld is not a multiple of the %s block %lld", name,
                        (long long)ne[0], herd_type_name(type), (long long)block);
    HERD_ASSERT(data || fill);
    if (w->n_t == w->cap_t) {
        w->cap_t = w->cap_t ? w->cap_t * 2 : 64;
        w->t = herd_xrealloc(w->t, (size_t)w->cap_t * sizeof *w->t);
    }
    wtensor *t = &w->t[w->n_t++];
    memset(t, 0, sizeof *t);
    t->name = herd_xstrndup(name, strlen(name));
    t->type = type;
    t->n_dims = n_dims;
    uint64_t rows = 1;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) {
        t->ne[d] = d < n_dims ? ne[d] : 1;
        if (d > 0) rows *= (uint64_t)t->ne[d];
    }
    t->nbytes = (uint64_t)(t->ne[0] / block) * (uint64_t)bsize * rows;
    t->data = data;
    t->fill = fill;
    t->user = user;
    return HERD_OK;
}

static int wr(FILE *fp, const void *p, size_t n, const char *path) {
    if (n && fwrite(p, 1, n, fp) != n) return herd_err(HERD_E_IO, "gguf: cannot write '%s': %s", path, strerror(errno));
    return HERD_OK;
}

static int wr_zeros(FILE *fp, size_t n, const char *path) {
    static const uint8_t zeros[256] = {0};
    int rc = HERD_OK;
    while (rc == 0 && n > 0) {
        size_t k = n < sizeof zeros ? n : sizeof zeros;
        rc = wr(fp, zeros, k, path);
        n -= k;
    }
    return rc;
}

int gguf_writer_write(gguf_writer *w, const char *path) {
    uint64_t al = w->alignment ? w->alignment : GGUF_DEFAULT_ALIGNMENT;
    bytes hdr = {0};
    put(&hdr, "GGUF", 4);
    put_u32(&hdr, 3);
    put_u64(&hdr, (uint64_t)w->n_t);
    put_u64(&hdr, (uint64_t)w->n_kv);
    put(&hdr, w->kv.p, w->kv.n);
    uint64_t off = 0;
    for (int64_t i = 0; i < w->n_t; i++) {
        wtensor *t = &w->t[i];
        t->offset = off;
        put_str(&hdr, t->name, strlen(t->name));
        put_u32(&hdr, (uint32_t)t->n_dims);
        for (int d = 0; d < t->n_dims; d++) put_u64(&hdr, (uint64_t)t->ne[d]);
        put_u32(&hdr, (uint32_t)t->type);
        put_u64(&hdr, t->offset);
        off += (t->nbytes + al - 1) / al * al;
    }
    size_t pad = (size_t)((al - hdr.n % al) % al);
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        free(hdr.p);
        return herd_err(HERD_E_IO, "gguf: cannot create '%s': %s", path, strerror(errno));
    }
    int rc = wr(fp, hdr.p, hdr.n, path);
    free(hdr.p);
    if (rc == 0) rc = wr_zeros(fp, pad, path);
    uint8_t *scratch = NULL;
    uint64_t scratch_n = 0;
    for (int64_t i = 0; rc == 0 && i < w->n_t; i++) {
        wtensor *t = &w->t[i];
        if (t->data) {
            rc = wr(fp, t->data, t->nbytes, path);
        } else {
            if (t->nbytes > scratch_n) {
                free(scratch);
                scratch = malloc(t->nbytes);
                scratch_n = scratch ? t->nbytes : 0;
                if (!scratch) {
                    rc = herd_err(HERD_E_NOMEM, "gguf: out of memory for tensor '%s'", t->name);
                    break;
                }
            }
            rc = t->fill(t->user, t->name, scratch, t->nbytes);
            if (rc == 0) rc = wr(fp, scratch, t->nbytes, path);
        }
        size_t tp = (size_t)((al - t->nbytes % al) % al);
        if (rc == 0) rc = wr_zeros(fp, tp, path);
    }
    free(scratch);
    if (fclose(fp) != 0 && rc == 0) rc = herd_err(HERD_E_IO, "gguf: cannot write '%s': %s", path, strerror(errno));
    if (rc != 0) remove(path);
    return rc;
}
