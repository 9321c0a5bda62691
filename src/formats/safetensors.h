/* safetensors — Hugging Face's tensor file format, read over a mapped buffer.
 *
 * File layout:
 *   u64 N (little-endian) | N bytes of JSON header (UTF-8; may end in padding spaces) | data section
 * Header: one object; each key but "__metadata__" (a string -> string map, ignored) is a tensor:
 *   "model.norm.weight": {"dtype": "BF16", "shape": [2048], "data_offsets": [begin, end]}
 * Offsets are bytes relative to the start of the data section (8 + N), end exclusive. Shapes are
 * row-major, the LAST dimension contiguous: a Linear weight of out_features x in_features has
 * shape [out, in] (GGUF writes the same bytes as ne = {in, out}).
 *
 * Every length is checked: N against the file, each tensor's [begin, end) against the data
 * section and against shape x dtype size (no overflow), and each tensor's address against its
 * element size (so typed loads are aligned). Knows nothing of Llama.
 */
#ifndef HERD_FORMATS_SAFETENSORS_H
#define HERD_FORMATS_SAFETENSORS_H

#include <stdbool.h>
#include <stdint.h>

#define ST_MAX_DIMS 8

typedef struct {
    char *name;                 /* owned, NUL-terminated */
    char dtype[12];             /* as written: "BF16", "F8_E4M3", ... */
    int type;                   /* herd_type for F32/F16/BF16/F8_E4M3; -1 for other dtypes */
    int n_dims;                 /* 0 for a scalar */
    int64_t shape[ST_MAX_DIMS]; /* row-major, shape[n_dims - 1] contiguous */
    const uint8_t *data;        /* into the mapped file */
    uint64_t nbytes;
} st_tensor;

typedef struct {
    st_tensor *tensors; /* owned array, in header order */
    int64_t n_tensors;
    uint64_t data_offset; /* 8 + N */
} st_file;

/* Parses buf[0..size) (a mapping that outlives the result). `what` names the file in errors.
 * 0 ok; HERD_E_FORMAT (malformed, truncated, inconsistent) or HERD_E_UNSUPPORTED (a dtype the
 * format does not define) with one line naming the file and the tensor. */
int st_parse(const uint8_t *buf, uint64_t size, const char *what, st_file *out);
void st_file_clear(st_file *f);
const st_tensor *st_find(const st_file *f, const char *name);

/* Element size of a safetensors dtype name (F64 F32 F16 BF16 F8_E4M3 F8_E5M2 I64 I32 I16 I8 U64 U32
 * U16 U8 BOOL); 0 if unknown. */
int st_dtype_size(const char *dtype);

#endif
