/* GGUF reader: parses header, metadata and tensor infos from a buffer with every length checked. */
#include <stdlib.h>
#include <string.h>

#include "../base/log.h"
#include "gguf.h"

/* ggml type table: name, elements per block, bytes per block. Sizes of every type a GGUF may
 * hold, so that such files parse and report "unsupported" by name rather than "corrupt". */
static const struct {
    int id;
    const char *name;
    int64_t block, bytes;
} k_types[] = {
    {0, "f32", 1, 4},        {1, "f16", 1, 2},          {2, "q4_0", 32, 18},     {3, "q4_1", 32, 20},
    {6, "q5_0", 32, 22},     {7, "q5_1", 32, 24},       {8, "q8_0", 32, 34},     {9, "q8_1", 32, 36},
    {10, "q2_k", 256, 84},   {11, "q3_k", 256, 110},    {12, "q4_k", 256, 144},  {13, "q5_k", 256, 176},
    {14, "q6_k", 256, 210},  {15, "q8_k", 256, 292},    {16, "iq2_xxs", 256, 66}, {17, "iq2_xs", 256, 74},
    {18, "iq3_xxs", 256, 98}, {19, "iq1_s", 256, 50},   {20, "iq4_nl", 32, 18},  {21, "iq3_s", 256, 110},
    {22, "iq2_s", 256, 82},  {23, "iq4_xs", 256, 136},  {24, "i8", 1, 1},        {25, "i16", 1, 2},
    {26, "i32", 1, 4},       {27, "i64", 1, 8},         {28, "f64", 1, 8},       {29, "iq1_m", 256, 56},
    {30, "bf16", 1, 2},      {34, "tq1_0", 256, 54},    {35, "tq2_0", 256, 66},  {39, "mxfp4", 32, 17},
    {41, "q1_0", 128, 18},   {42, "q2_0", 64, 18},
    {4096, "fp8_e4m3", 1, 1}, /* herd extension (herd.h, docs/FORMATS.md); ggml refuses ids this large */
};

bool gguf_type_size(int type, int64_t *block, int64_t *bytes) {
    for (size_t i = 0; i < sizeof k_types / sizeof k_types[0]; i++)
        if (k_types[i].id == type) {
            *block = k_types[i].block;
            *bytes = k_types[i].bytes;
            return true;
        }
    return false;
}

const char *herd_type_name(int type) {
    for (size_t i = 0; i < sizeof k_types / sizeof k_types[0]; i++)
        if (k_types[i].id == type) return k_types[i].name;
    return "unknown";
}

int herd_type_from_name(const char *name) {
    for (size_t i = 0; i < sizeof k_types / sizeof k_types[0]; i++)
        if (strcasecmp(k_types[i].name, name) == 0) return k_types[i].id;
    return -1;
}

static const char *k_vtype_names[GGUF_T_COUNT] = {"u8",  "i8",     "u16",   "i16", "u32", "i32", "f32",
                                                  "bool", "string", "array", "u64", "i64", "f64"};

const char *gguf_vtype_name(int t) {
    return t >= 0 && t < GGUF_T_COUNT ? k_vtype_names[t] : "invalid";
}

uint64_t gguf_vtype_size(int t) {
    switch (t) {
    case GGUF_T_UINT8: case GGUF_T_INT8: case GGUF_T_BOOL: return 1;
    case GGUF_T_UINT16: case GGUF_T_INT16: return 2;
    case GGUF_T_UINT32: case GGUF_T_INT32: case GGUF_T_FLOAT32: return 4;
    case GGUF_T_UINT64: case GGUF_T_INT64: case GGUF_T_FLOAT64: return 8;
    default: return 0; /* strings and arrays have no fixed size */
    }
}

/* A bounds-checked cursor over the buffer. Any failed read sets `bad` and returns zeros;
 * the caller checks `bad` at points where it reports the error with context. */
typedef struct {
    const uint8_t *p;
    uint64_t size, off;
    const char *what;
} cursor;

static bool cur_need(cursor *c, uint64_t n) {
    return n <= c->size - c->off;
}

static bool rd(cursor *c, void *dst, uint64_t n) {
    if (!cur_need(c, n)) return false;
    memcpy(dst, c->p + c->off, n);
    c->off += n;
    return true;
}

static bool rd_str(cursor *c, gguf_str *s) {
    uint64_t len;
    if (!rd(c, &len, 8) || !cur_need(c, len)) return false;
    s->ptr = (const char *)c->p + c->off;
    s->len = len;
    c->off += len;
    return true;
}

static int fail(cursor *c, const char *fmt, const char *detail) {
    char msg[512];
    snprintf(msg, sizeof msg, fmt, detail);
    return herd_err(HERD_E_FORMAT, "gguf: %s: %s (at byte %llu of %llu)", c->what, msg,
                    (unsigned long long)c->off, (unsigned long long)c->size);
}

/* Reads one value of scalar/string type t into kv->v. */
static bool rd_scalar(cursor *c, int t, gguf_kv *kv) {
    uint8_t b[8] = {0};
    switch (t) {
    case GGUF_T_UINT8: if (!rd(c, b, 1)) return false; kv->v.u = b[0]; return true;
    case GGUF_T_INT8: { int8_t x; if (!rd(c, &x, 1)) return false; kv->v.i = x; return true; }
    case GGUF_T_UINT16: { uint16_t x; if (!rd(c, &x, 2)) return false; kv->v.u = x; return true; }
    case GGUF_T_INT16: { int16_t x; if (!rd(c, &x, 2)) return false; kv->v.i = x; return true; }
    case GGUF_T_UINT32: { uint32_t x; if (!rd(c, &x, 4)) return false; kv->v.u = x; return true; }
    case GGUF_T_INT32: { int32_t x; if (!rd(c, &x, 4)) return false; kv->v.i = x; return true; }
    case GGUF_T_FLOAT32: { float x; if (!rd(c, &x, 4)) return false; kv->v.f = x; return true; }
    case GGUF_T_BOOL: { uint8_t x; if (!rd(c, &x, 1)) return false; kv->v.b = x != 0; return true; }
    case GGUF_T_UINT64: { uint64_t x; if (!rd(c, &x, 8)) return false; kv->v.u = x; return true; }
    case GGUF_T_INT64: { int64_t x; if (!rd(c, &x, 8)) return false; kv->v.i = x; return true; }
    case GGUF_T_FLOAT64: { double x; if (!rd(c, &x, 8)) return false; kv->v.f = x; return true; }
    case GGUF_T_STRING: return rd_str(c, &kv->v.s);
    default: return false;
    }
}

static int parse_kv(cursor *c, gguf_kv *kv) {
    gguf_str key;
    uint32_t t;
    if (!rd_str(c, &key)) return fail(c, "%smetadata key runs past the end of the file", "");
    kv->key = herd_xstrndup(key.ptr, key.len);
    if (!rd(c, &t, 4)) return fail(c, "value type of key '%s' runs past the end of the file", kv->key);
    kv->type = (int)t;
    kv->raw = c->p + c->off;
    if (t == GGUF_T_ARRAY) {
        uint32_t et;
        uint64_t n;
        if (!rd(c, &et, 4) || !rd(c, &n, 8))
            return fail(c, "array header of key '%s' runs past the end of the file", kv->key);
        kv->arr_type = (int)et;
        kv->arr_n = n;
        kv->raw = c->p + c->off;
        if (et == GGUF_T_STRING) {
            /* each string needs >= 8 bytes: reject absurd counts before allocating */
            if (n > (c->size - c->off) / 8)
                return fail(c, "string array '%s' claims more elements than the file can hold", kv->key);
            kv->strs = malloc(n ? n * sizeof(gguf_str) : 1);
            if (!kv->strs) return herd_err(HERD_E_NOMEM, "gguf: out of memory for array '%s'", kv->key);
            for (uint64_t i = 0; i < n; i++)
                if (!rd_str(c, &kv->strs[i]))
                    return fail(c, "a string in array '%s' runs past the end of the file", kv->key);
        } else if (et == GGUF_T_ARRAY) {
            return fail(c, "nested arrays (key '%s') are not supported", kv->key);
        } else {
            uint64_t es = gguf_vtype_size((int)et);
            if (es == 0) return fail(c, "array '%s' has an invalid element type", kv->key);
            if (n > (c->size - c->off) / es)
                return fail(c, "array '%s' runs past the end of the file", kv->key);
            c->off += n * es;
        }
        return 0;
    }
    if (t >= GGUF_T_COUNT) return fail(c, "key '%s' has an invalid value type", kv->key);
    if (!rd_scalar(c, (int)t, kv)) return fail(c, "value of key '%s' runs past the end of the file", kv->key);
    return 0;
}

static int parse_tensor_info(cursor *c, gguf_tensor *t) {
    gguf_str name;
    uint32_t nd, type;
    if (!rd_str(c, &name)) return fail(c, "%stensor name runs past the end of the file", "");
    t->name = herd_xstrndup(name.ptr, name.len);
    if (!rd(c, &nd, 4)) return fail(c, "tensor '%s' info runs past the end of the file", t->name);
    if (nd == 0 || nd > GGUF_MAX_DIMS) return fail(c, "tensor '%s' has an invalid number of dimensions", t->name);
    t->n_dims = (int)nd;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < nd; d++) {
        uint64_t ne;
        if (!rd(c, &ne, 8)) return fail(c, "tensor '%s' info runs past the end of the file", t->name);
        if (ne == 0 || ne > ((uint64_t)1 << 40))
            return fail(c, "tensor '%s' has an absurd dimension", t->name);
        t->ne[d] = (int64_t)ne;
    }
    if (!rd(c, &type, 4) || !rd(c, &t->offset, 8))
        return fail(c, "tensor '%s' info runs past the end of the file", t->name);
    t->type = (int)type;
    return 0;
}

int gguf_parse(const uint8_t *buf, uint64_t size, const char *what, gguf_file *g) {
    memset(g, 0, sizeof *g);
    cursor c = {buf, size, 0, what};
    uint32_t magic;
    int rc;
    if (!rd(&c, &magic, 4) || memcmp(&magic, "GGUF", 4) != 0)
        return herd_err(HERD_E_FORMAT, "gguf: %s: not a GGUF file (wrong magic)", what);
    if (!rd(&c, &g->version, 4)) return fail(&c, "%sheader is truncated", "");
    if (g->version != 2 && g->version != 3)
        return herd_err(HERD_E_UNSUPPORTED, "gguf: %s: GGUF version %u is not supported (need 2 or 3)", what,
                        g->version);
    uint64_t nt, nkv;
    if (!rd(&c, &nt, 8) || !rd(&c, &nkv, 8)) return fail(&c, "%sheader is truncated", "");
    /* a kv takes >= 8+4+1 bytes and a tensor info >= 8+4+8+4+8: cap counts before allocating */
    if (nkv > (size - c.off) / 13) return fail(&c, "%smetadata count is larger than the file can hold", "");
    if (nt > (size - c.off) / 32) return fail(&c, "%stensor count is larger than the file can hold", "");
    g->base = buf;
    g->size = size;
    g->kv = herd_xcalloc(nkv ? nkv : 1, sizeof(gguf_kv));
    g->tensors = herd_xcalloc(nt ? nt : 1, sizeof(gguf_tensor));
    for (uint64_t i = 0; i < nkv; i++) {
        g->n_kv = (int64_t)i + 1;
        if ((rc = parse_kv(&c, &g->kv[i])) != 0) goto err;
        for (uint64_t j = 0; j < i; j++)
            if (strcmp(g->kv[j].key, g->kv[i].key) == 0) {
                rc = fail(&c, "duplicate metadata key '%s'", g->kv[i].key);
                goto err;
            }
    }
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    int64_t ai = gguf_find_key(g, "general.alignment");
    if (ai >= 0) {
        const gguf_kv *a = &g->kv[ai];
        if (a->type != GGUF_T_UINT32 || a->v.u == 0 || (a->v.u & (a->v.u - 1)) != 0) {
            rc = fail(&c, "%sgeneral.alignment must be a power-of-two u32", "");
            goto err;
        }
        g->alignment = a->v.u;
    }
    for (uint64_t i = 0; i < nt; i++) {
        g->n_tensors = (int64_t)i + 1;
        if ((rc = parse_tensor_info(&c, &g->tensors[i])) != 0) goto err;
    }
    uint64_t data_off = (c.off + g->alignment - 1) / g->alignment * g->alignment;
    g->data_offset = data_off;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        gguf_tensor *t = &g->tensors[i];
        for (int64_t j = 0; j < i; j++)
            if (strcmp(g->tensors[j].name, t->name) == 0) {
                rc = herd_err(HERD_E_FORMAT, "gguf: %s: duplicate tensor name '%s'", what, t->name);
                goto err;
            }
        int64_t block, bytes;
        if (!gguf_type_size(t->type, &block, &bytes)) {
            rc = herd_err(HERD_E_UNSUPPORTED, "gguf: %s: tensor '%s' has unknown tensor type %d", what, t->name,
                          t->type);
            goto err;
        }
        if (t->ne[0] % block != 0) {
            rc = herd_err(HERD_E_FORMAT, "gguf: %s: tensor '%s' row of %lld is not a multiple of the %s block (%lld)",
                          what, t->name, (long long)t->ne[0], herd_type_name(t->type), (long long)block);
            goto err;
        }
        /* element count fits in 2^62 since each dim <= 2^40 and the product is checked stepwise */
        uint64_t rows = 1;
        for (int d = 1; d < GGUF_MAX_DIMS; d++) {
            if ((uint64_t)t->ne[d] > ((uint64_t)1 << 62) / rows) {
                rc = herd_err(HERD_E_FORMAT, "gguf: %s: tensor '%s' is absurdly large", what, t->name);
                goto err;
            }
            rows *= (uint64_t)t->ne[d];
        }
        uint64_t row_bytes = (uint64_t)(t->ne[0] / block) * (uint64_t)bytes;
        if (rows > 0 && row_bytes > (((uint64_t)1 << 62) / rows)) {
            rc = herd_err(HERD_E_FORMAT, "gguf: %s: tensor '%s' is absurdly large", what, t->name);
            goto err;
        }
        t->nbytes = row_bytes * rows;
        if (t->offset % g->alignment != 0) {
            rc = herd_err(HERD_E_FORMAT, "gguf: %s: tensor '%s' offset %llu is not aligned to %llu", what, t->name,
                          (unsigned long long)t->offset, (unsigned long long)g->alignment);
            goto err;
        }
        if (data_off > size || t->offset > size - data_off || t->nbytes > size - data_off - t->offset) {
            rc = herd_err(HERD_E_FORMAT,
                          "gguf: %s: tensor '%s' (%llu bytes at offset %llu) lies beyond the end of the file "
                          "(%llu bytes): truncated?",
                          what, t->name, (unsigned long long)t->nbytes, (unsigned long long)(data_off + t->offset),
                          (unsigned long long)size);
            goto err;
        }
        t->data = buf + data_off + t->offset;
    }
    return HERD_OK;
err:
    gguf_file_clear(g);
    return rc;
}

void gguf_file_clear(gguf_file *g) {
    for (int64_t i = 0; i < g->n_kv; i++) {
        free(g->kv[i].key);
        free(g->kv[i].strs);
    }
    for (int64_t i = 0; i < g->n_tensors; i++) free(g->tensors[i].name);
    free(g->kv);
    free(g->tensors);
    memset(g, 0, sizeof *g);
}

int64_t gguf_find_key(const gguf_file *g, const char *key) {
    for (int64_t i = 0; i < g->n_kv; i++)
        if (g->kv[i].key && strcmp(g->kv[i].key, key) == 0) return i;
    return -1;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *g, const char *name) {
    for (int64_t i = 0; i < g->n_tensors; i++)
        if (strcmp(g->tensors[i].name, name) == 0) return &g->tensors[i];
    return NULL;
}

bool gguf_get_int(const gguf_file *g, const char *key, int64_t *out) {
    int64_t i = gguf_find_key(g, key);
    if (i < 0) return false;
    const gguf_kv *kv = &g->kv[i];
    switch (kv->type) {
    case GGUF_T_UINT8: case GGUF_T_UINT16: case GGUF_T_UINT32:
        *out = (int64_t)kv->v.u;
        return true;
    case GGUF_T_UINT64:
        if (kv->v.u > (uint64_t)INT64_MAX) return false;
        *out = (int64_t)kv->v.u;
        return true;
    case GGUF_T_INT8: case GGUF_T_INT16: case GGUF_T_INT32: case GGUF_T_INT64:
        *out = kv->v.i;
        return true;
    default: return false;
    }
}

bool gguf_get_float(const gguf_file *g, const char *key, double *out) {
    int64_t i = gguf_find_key(g, key);
    if (i < 0) return false;
    const gguf_kv *kv = &g->kv[i];
    if (kv->type == GGUF_T_FLOAT32 || kv->type == GGUF_T_FLOAT64) {
        *out = kv->v.f;
        return true;
    }
    int64_t v;
    if (gguf_get_int(g, key, &v)) {
        *out = (double)v;
        return true;
    }
    return false;
}

bool gguf_get_bool(const gguf_file *g, const char *key, bool *out) {
    int64_t i = gguf_find_key(g, key);
    if (i < 0 || g->kv[i].type != GGUF_T_BOOL) return false;
    *out = g->kv[i].v.b;
    return true;
}

bool gguf_get_str(const gguf_file *g, const char *key, gguf_str *out) {
    int64_t i = gguf_find_key(g, key);
    if (i < 0 || g->kv[i].type != GGUF_T_STRING) return false;
    *out = g->kv[i].v.s;
    return true;
}

const gguf_kv *gguf_get_arr(const gguf_file *g, const char *key, int elem_type) {
    int64_t i = gguf_find_key(g, key);
    if (i < 0 || g->kv[i].type != GGUF_T_ARRAY || g->kv[i].arr_type != elem_type) return NULL;
    return &g->kv[i];
}
