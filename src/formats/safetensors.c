/* safetensors reader: the JSON header via jansson, every offset checked against the mapping. */
#include "safetensors.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "../base/log.h"
#include "herd.h"

/* The header of a real checkpoint is tens of KiB; anything past this is not a safetensors file. */
#define ST_MAX_HEADER ((uint64_t)100 << 20)

static const struct {
    const char *name;
    int size;
    int type; /* herd_type, or -1 */
} k_dtypes[] = {
    {"F64", 8, -1},
    {"F32", 4, HERD_TYPE_F32},
    {"F16", 2, HERD_TYPE_F16},
    {"BF16", 2, HERD_TYPE_BF16},
    {"F8_E4M3", 1, HERD_TYPE_FP8_E4M3},
    {"F8_E5M2", 1, -1},
    {"I64", 8, -1},
    {"I32", 4, -1},
    {"I16", 2, -1},
    {"I8", 1, -1},
    {"U64", 8, -1},
    {"U32", 4, -1},
    {"U16", 2, -1},
    {"U8", 1, -1},
    {"BOOL", 1, -1},
};

int st_dtype_size(const char *dtype) {
    for (size_t i = 0; i < sizeof k_dtypes / sizeof k_dtypes[0]; i++)
        if (strcmp(k_dtypes[i].name, dtype) == 0) return k_dtypes[i].size;
    return 0;
}

static int dtype_type(const char *dtype) {
    for (size_t i = 0; i < sizeof k_dtypes / sizeof k_dtypes[0]; i++)
        if (strcmp(k_dtypes[i].name, dtype) == 0) return k_dtypes[i].type;
    return -1;
}

/* A JSON integer in [0, max], else -1. */
static int64_t json_uint(const json_t *v, int64_t max) {
    if (!json_is_integer(v)) return -1;
    json_int_t x = json_integer_value(v);
    return x >= 0 && x <= max ? (int64_t)x : -1;
}

/* Fills t from the header entry e of tensor `name`. */
static int parse_entry(const char *what, const char *name, const json_t *e, uint64_t data_size,
                       st_tensor *t) {
    if (!json_is_object(e))
        return herd_err(HERD_E_FORMAT, "safetensors: %s: header entry of tensor '%s' is not an object", what,
                        name);
    const json_t *dt = json_object_get(e, "dtype"), *sh = json_object_get(e, "shape"),
                 *off = json_object_get(e, "data_offsets");
    if (!json_is_string(dt) || !json_is_array(sh) || !json_is_array(off) || json_array_size(off) != 2)
        return herd_err(
            HERD_E_FORMAT,
            "safetensors: %s: tensor '%s' needs a string dtype, a shape array and two data_offsets", what,
            name);
    const char *dtype = json_string_value(dt);
    int esize = st_dtype_size(dtype);
    if (esize == 0)
        return herd_err(HERD_E_UNSUPPORTED, "safetensors: %s: tensor '%s' has unknown dtype '%.16s'", what,
                        name, dtype);
    snprintf(t->dtype, sizeof t->dtype, "%s", dtype);
    t->type = dtype_type(dtype);
    size_t nd = json_array_size(sh);
    if (nd > ST_MAX_DIMS)
        return herd_err(HERD_E_FORMAT, "safetensors: %s: tensor '%s' has %zu dimensions (at most %d)", what,
                        name, nd, ST_MAX_DIMS);
    t->n_dims = (int)nd;
    /* element count <= 2^62 / 8, checked as it grows, so count * esize cannot overflow */
    uint64_t count = 1;
    for (size_t d = 0; d < nd; d++) {
        int64_t x = json_uint(json_array_get(sh, d), (int64_t)1 << 40);
        if (x < 0)
            return herd_err(HERD_E_FORMAT, "safetensors: %s: tensor '%s' has an invalid dimension %zu", what,
                            name, d);
        t->shape[d] = x;
        if (x != 0 && count > (((uint64_t)1 << 59) / (uint64_t)x))
            return herd_err(HERD_E_FORMAT, "safetensors: %s: tensor '%s' is absurdly large", what, name);
        count *= (uint64_t)x;
    }
    int64_t b = json_uint(json_array_get(off, 0), INT64_MAX),
            en = json_uint(json_array_get(off, 1), INT64_MAX);
    if (b < 0 || en < 0 || b > en)
        return herd_err(HERD_E_FORMAT, "safetensors: %s: tensor '%s' has invalid data_offsets", what, name);
    if ((uint64_t)en > data_size)
        return herd_err(
            HERD_E_FORMAT,
            "safetensors: %s: tensor '%s' (bytes %lld..%lld of the data) lies beyond the end of the "
            "file (%llu data bytes): truncated?",
            what, name, (long long)b, (long long)en, (unsigned long long)data_size);
    t->nbytes = (uint64_t)(en - b);
    if (t->nbytes != count * (uint64_t)esize)
        return herd_err(HERD_E_FORMAT,
                        "safetensors: %s: tensor '%s' has %llu bytes, but its shape and dtype %s need %llu",
                        what, name, (unsigned long long)t->nbytes, dtype,
                        (unsigned long long)(count * (uint64_t)esize));
    return HERD_OK;
}

int st_parse(const uint8_t *buf, uint64_t size, const char *what, st_file *out) {
    memset(out, 0, sizeof *out);
    uint64_t n;
    if (size < 8)
        return herd_err(HERD_E_FORMAT, "safetensors: %s: file of %llu bytes is too short", what,
                        (unsigned long long)size);
    memcpy(&n, buf, 8); /* little-endian hosts only (x86-64) */
    if (n < 2 || n > size - 8 || n > ST_MAX_HEADER)
        return herd_err(
            HERD_E_FORMAT,
            "safetensors: %s: header length %llu does not fit the file of %llu bytes (truncated or "
            "not a safetensors file)",
            what, (unsigned long long)n, (unsigned long long)size);
    json_error_t jerr;
    json_t *root = json_loadb((const char *)buf + 8, (size_t)n, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return herd_err(HERD_E_FORMAT, "safetensors: %s: header is not valid JSON (line %d, column %d): %s",
                        what, jerr.line, jerr.column, jerr.text);
    int rc = HERD_OK;
    if (!json_is_object(root)) {
        rc = herd_err(HERD_E_FORMAT, "safetensors: %s: header is not a JSON object", what);
        goto done;
    }
    out->data_offset = 8 + n;
    uint64_t data_size = size - out->data_offset;
    size_t cap = json_object_size(root);
    out->tensors = herd_xcalloc(cap ? cap : 1, sizeof(st_tensor));
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) continue;
        st_tensor *t = &out->tensors[out->n_tensors++];
        t->name = herd_xstrndup(key, strlen(key));
        if ((rc = parse_entry(what, t->name, val, data_size, t)) != HERD_OK) goto done;
        int64_t begin = json_integer_value(json_array_get(json_object_get(val, "data_offsets"), 0));
        uint64_t at = out->data_offset + (uint64_t)begin;
        int esize = st_dtype_size(t->dtype);
        /* mappings are page-aligned, so this makes every typed load of the tensor aligned */
        if (at % (uint64_t)esize != 0) {
            rc = herd_err(HERD_E_FORMAT,
                          "safetensors: %s: tensor '%s' at byte %llu is not aligned to its %d-byte elements",
                          what, t->name, (unsigned long long)at, esize);
            goto done;
        }
        t->data = buf + at;
    }
done:
    json_decref(root);
    if (rc != HERD_OK) st_file_clear(out);
    return rc;
}

void st_file_clear(st_file *f) {
    for (int64_t i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    free(f->tensors);
    memset(f, 0, sizeof *f);
}

const st_tensor *st_find(const st_file *f, const char *name) {
    for (int64_t i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}
