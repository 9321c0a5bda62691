/* See ckpt.h. */
#include "ckpt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../base/file.h"
#include "../base/log.h"
#include "../base/strbuf.h"
#include "save.h"

#define CKPT_MAGIC "HERDCKPT"
#define CKPT_VERSION 1u

static uint64_t fnv(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static void put_u32(strbuf *b, uint32_t v) {
    strbuf_put(b, (const char *)&v, 4);
}
static void put_u64(strbuf *b, uint64_t v) {
    strbuf_put(b, (const char *)&v, 8);
}

int ckpt_save(const char *dir, const ckpt_meta *meta, const tparam *params, int n, const optim *o) {
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return herd_err(HERD_E_IO, "train: cannot create the checkpoint directory '%s': %s", dir, strerror(errno));
    strbuf b = {0};
    strbuf_put(&b, CKPT_MAGIC, 8);
    put_u32(&b, CKPT_VERSION);
    put_u64(&b, (uint64_t)meta->step);
    put_u64(&b, (uint64_t)meta->next_example);
    put_u64(&b, meta->seed);
    put_u64(&b, (uint64_t)o->t);
    put_u32(&b, (uint32_t)strlen(meta->fingerprint));
    strbuf_puts(&b, meta->fingerprint);
    put_u32(&b, (uint32_t)n);
    for (int i = 0; i < n; i++) {
        put_u32(&b, (uint32_t)strlen(params[i].name));
        strbuf_puts(&b, params[i].name);
        put_u64(&b, (uint64_t)params[i].n);
        strbuf_put(&b, (const char *)params[i].w, (size_t)params[i].n * sizeof(float));
        const char has = o->m != NULL;
        strbuf_put(&b, &has, 1);
        if (has) {
            strbuf_put(&b, (const char *)o->m[i], (size_t)params[i].n * sizeof(float));
            strbuf_put(&b, (const char *)o->v[i], (size_t)params[i].n * sizeof(float));
        }
    }
    put_u64(&b, fnv((const uint8_t *)b.p, b.n));
    char path[4096];
    snprintf(path, sizeof path, "%s/state.bin", dir);
    const void *part = b.p;
    int rc = herd_file_write_atomic(path, &part, &b.n, 1);
    strbuf_free(&b);
    return rc;
}

typedef struct {
    const uint8_t *p;
    uint64_t n, off;
    bool bad;
} rd;

static const uint8_t *take(rd *r, uint64_t n) {
    if (r->bad || n > r->n - r->off) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *p = r->p + r->off;
    r->off += n;
    return p;
}
static uint32_t get_u32(rd *r) {
    uint32_t v = 0;
    const uint8_t *p = take(r, 4);
    if (p) memcpy(&v, p, 4);
    return v;
}
static uint64_t get_u64(rd *r) {
    uint64_t v = 0;
    const uint8_t *p = take(r, 8);
    if (p) memcpy(&v, p, 8);
    return v;
}

/* the first "key=value" of a differs from b: its key */
static void first_difference(const char *a, const char *b, char *out, size_t cap) {
    snprintf(out, cap, "settings");
    while (*a && *b) {
        const char *ea = strchr(a, ';'), *eb = strchr(b, ';');
        size_t la = ea ? (size_t)(ea - a) : strlen(a), lb = eb ? (size_t)(eb - b) : strlen(b);
        if (la != lb || memcmp(a, b, la)) {
            snprintf(out, cap, "%.*s (checkpoint: %.*s)", (int)lb, b, (int)la, a);
            return;
        }
        a += la + (ea ? 1 : 0), b += lb + (eb ? 1 : 0);
    }
}

int ckpt_load(const char *dir, ckpt_meta *meta, tparam *params, int n, optim *o) {
    char path[4096];
    snprintf(path, sizeof path, "%s/state.bin", dir);
    herd_mapped_file f;
    int rc = herd_file_map(path, &f);
    if (rc) return herd_err(HERD_E_IO, "train: cannot read the checkpoint '%s' (%s)", path, herd_last_error());
    rd r = {f.data, f.size, 0, false};
    rc = HERD_E_FORMAT;
    if (f.size < 16 || memcmp(f.data, CKPT_MAGIC, 8) || fnv(f.data, f.size - 8) != *(const uint64_t *)(const void *)(f.data + f.size - 8)) {
        rc = herd_err(HERD_E_FORMAT, "train: '%s' is not a complete herd checkpoint (bad magic or checksum)", path);
        goto out;
    }
    r.n = f.size - 8;
    take(&r, 8);
    if (get_u32(&r) != CKPT_VERSION) {
        rc = herd_err(HERD_E_FORMAT, "train: '%s' has an unknown checkpoint version", path);
        goto out;
    }
    const int64_t step = (int64_t)get_u64(&r), next = (int64_t)get_u64(&r);
    const uint64_t seed = get_u64(&r);
    const int64_t t = (int64_t)get_u64(&r);
    const uint32_t fl = get_u32(&r);
    const uint8_t *fp = take(&r, fl);
    if (!fp) goto trunc;
    if (fl != strlen(meta->fingerprint) || memcmp(fp, meta->fingerprint, fl) || seed != meta->seed) {
        char *saved = herd_xstrndup((const char *)fp, fl), what[512];
        first_difference(saved, meta->fingerprint, what, sizeof what);
        if (seed != meta->seed) snprintf(what, sizeof what, "--seed %llu (checkpoint: %llu)", (unsigned long long)meta->seed, (unsigned long long)seed);
        free(saved);
        rc = herd_err(HERD_E_ARG, "train: cannot resume from '%s': %s differs", dir, what);
        goto out;
    }
    if ((int)get_u32(&r) != n) {
        rc = herd_err(HERD_E_ARG, "train: cannot resume from '%s': it holds a different set of tensors", dir);
        goto out;
    }
    for (int i = 0; i < n; i++) {
        const uint32_t nl = get_u32(&r);
        const uint8_t *name = take(&r, nl);
        const uint64_t cnt = get_u64(&r);
        if (!name) goto trunc;
        if (nl != strlen(params[i].name) || memcmp(name, params[i].name, nl) || cnt != (uint64_t)params[i].n) {
            rc = herd_err(HERD_E_ARG, "train: cannot resume from '%s': tensor %d is '%.*s' of %llu, expected '%s' of %lld", dir, i,
                          (int)nl, (const char *)name, (unsigned long long)cnt, params[i].name, (long long)params[i].n);
            goto out;
        }
        const uint8_t *w = take(&r, cnt * 4), *has = take(&r, 1);
        if (!has) goto trunc;
        memcpy(params[i].w, w, cnt * 4);
        if (*has != (o->m != NULL)) {
            rc = herd_err(HERD_E_ARG, "train: cannot resume from '%s': it was written by another optimizer", dir);
            goto out;
        }
        if (*has) {
            const uint8_t *m = take(&r, cnt * 4), *v = take(&r, cnt * 4);
            if (!v) goto trunc;
            memcpy(o->m[i], m, cnt * 4);
            memcpy(o->v[i], v, cnt * 4);
        }
    }
    o->t = t;
    meta->step = step, meta->next_example = next;
    rc = HERD_OK;
    goto out;
trunc:
    rc = herd_err(HERD_E_FORMAT, "train: '%s' is truncated", path);
out:
    herd_file_unmap(&f);
    return rc;
}
