/* GGUF v3 (and v2) — read over a mapped buffer, and write.
 * Knows nothing of Llama: keys and tensors are just names.
 *
 * File layout (all little-endian):
 *   u32 magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
 *   n_kv × { string key | u32 value_type | value }
 *   n_tensors × { string name | u32 n_dims | u64 ne[n_dims] | u32 type | u64 offset }
 *   padding to `general.alignment` (default 32)
 *   tensor data; each tensor at data_start + offset, offset a multiple of the alignment
 * string = u64 length + bytes (no terminator); array = u32 elem_type + u64 count + elements.
 * ne[0] is the contiguous (innermost) dimension: a weight of n_out rows of n_in has ne = {n_in, n_out}.
 */
#ifndef HERD_GGUF_H
#define HERD_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum gguf_vtype {
    GGUF_T_UINT8 = 0, GGUF_T_INT8 = 1, GGUF_T_UINT16 = 2, GGUF_T_INT16 = 3,
    GGUF_T_UINT32 = 4, GGUF_T_INT32 = 5, GGUF_T_FLOAT32 = 6, GGUF_T_BOOL = 7,
    GGUF_T_STRING = 8, GGUF_T_ARRAY = 9, GGUF_T_UINT64 = 10, GGUF_T_INT64 = 11,
    GGUF_T_FLOAT64 = 12, GGUF_T_COUNT
};

#define GGUF_MAX_DIMS 4
#define GGUF_DEFAULT_ALIGNMENT 32

typedef struct {
    const char *ptr; /* not NUL-terminated; points into the mapped file */
    uint64_t len;
} gguf_str;

typedef struct {
    char *key;          /* owned, NUL-terminated */
    int type;           /* gguf_vtype */
    int arr_type;       /* element type when type == ARRAY */
    uint64_t arr_n;     /* element count when type == ARRAY */
    const uint8_t *raw; /* the value's bytes (for arrays: the first element) */
    gguf_str *strs;     /* arrays of strings: arr_n views (owned array); NULL otherwise */
    union {
        uint64_t u;
        int64_t i;
        double f;
        bool b;
        gguf_str s;
    } v;                /* scalars, widened */
} gguf_kv;

typedef struct {
    char *name;              /* owned, NUL-terminated */
    int type;                /* ggml type id */
    int n_dims;
    int64_t ne[GGUF_MAX_DIMS]; /* unused dims are 1 */
    uint64_t offset;         /* relative to the data section */
    uint64_t nbytes;
    const uint8_t *data;     /* into the mapped file */
} gguf_tensor;

typedef struct gguf_file {
    uint32_t version;
    uint64_t alignment;
    int64_t n_kv, n_tensors;
    gguf_kv *kv;
    gguf_tensor *tensors;
    const uint8_t *base;     /* start of the buffer */
    uint64_t size;
    uint64_t data_offset;    /* start of the tensor data section within the buffer */
} gguf_file;

/* Block size (elements) and bytes per block of a ggml type; false for types herd does not know.
 * Knows the K-quants' sizes too, so files holding them parse (compute support is separate). */
bool gguf_type_size(int type, int64_t *block, int64_t *bytes);

/* Parses a GGUF held in buf[0..size) (a mapping that outlives the result). Every count, length and
 * offset is checked against the buffer. `what` names the source in error messages.
 * 0 ok; HERD_E_FORMAT / HERD_E_UNSUPPORTED with one line naming the problem. */
int gguf_parse(const uint8_t *buf, uint64_t size, const char *what, gguf_file *out);
void gguf_file_clear(gguf_file *g);

int64_t gguf_find_key(const gguf_file *g, const char *key); /* index or -1 */
const gguf_tensor *gguf_find_tensor(const gguf_file *g, const char *name);

/* Typed getters. Integer getters accept any integer type that fits; return false if the key is
 * missing or of another kind. */
bool gguf_get_int(const gguf_file *g, const char *key, int64_t *out);
bool gguf_get_float(const gguf_file *g, const char *key, double *out);
bool gguf_get_bool(const gguf_file *g, const char *key, bool *out);
bool gguf_get_str(const gguf_file *g, const char *key, gguf_str *out);
/* Array access: returns the kv (type ARRAY) or NULL. */
const gguf_kv *gguf_get_arr(const gguf_file *g, const char *key, int elem_type);

const char *gguf_vtype_name(int t);
/* Bytes of one value of a fixed-size type; 0 for strings and arrays. */
uint64_t gguf_vtype_size(int t);

/* ---- writer ---------------------------------------------------------------------------------- */

typedef struct gguf_writer gguf_writer;

/* Fills `nbytes` bytes of tensor data at dst (called once, in file order). Returns 0 or an error. */
typedef int (*gguf_fill_fn)(void *user, const char *name, uint8_t *dst, uint64_t nbytes);

gguf_writer *gguf_writer_new(void);
void gguf_writer_free(gguf_writer *w);
void gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v);
void gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v);
void gguf_writer_set_f32(gguf_writer *w, const char *key, float v);
void gguf_writer_set_bool(gguf_writer *w, const char *key, bool v);
void gguf_writer_set_str(gguf_writer *w, const char *key, const char *s, uint64_t len);
/* Array of fixed-size elements (bytes copied). */
void gguf_writer_set_arr(gguf_writer *w, const char *key, int elem_type, const void *data, uint64_t n);
void gguf_writer_set_arr_str(gguf_writer *w, const char *key, const gguf_str *strs, uint64_t n);
/* Copies a kv from a parsed file (any type). */
void gguf_writer_copy_kv(gguf_writer *w, const gguf_kv *kv);
/* Adds a tensor whose bytes come from `data` (kept by pointer; must stay valid until write)
 * or, when data is NULL, from fill(user, ...) at write time. */
int gguf_writer_add_tensor(gguf_writer *w, const char *name, int type, int n_dims, const int64_t *ne,
                           const void *data, gguf_fill_fn fill, void *user);
/* Writes the file. 0 ok; HERD_E_IO naming the path. */
int gguf_writer_write(gguf_writer *w, const char *path);

#endif
