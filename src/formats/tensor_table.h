/* The tensor source of a model: name -> type, shape, data pointer, whatever the files are.
 *
 * The model loader asks for weights by herd's (GGUF) names, "blk.3.attn_q.weight"; a GGUF gives its
 * tensors as they are, a Hugging Face directory gives its safetensors tensors renamed (hf_dir.h).
 * Each entry also keeps what the file calls the tensor, the file and the file's dtype name, so that
 * errors name what the user can find in their files.
 */
#ifndef HERD_FORMATS_TENSOR_TABLE_H
#define HERD_FORMATS_TENSOR_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../gguf/gguf.h"

typedef struct {
    char *name;           /* herd's GGUF name (owned) */
    const char *src_name; /* the name in its file (== name for GGUF) */
    const char *file;     /* path of the file holding it */
    const char *dtype;    /* the file's name of the element type: "BF16", "q4_k" */
    int type;             /* herd type id; -1 when herd cannot compute with this dtype */
    int n_dims;
    int64_t ne[GGUF_MAX_DIMS]; /* GGUF order: ne[0] is the contiguous dimension; unused dims are 1 */
    bool row_major;            /* the file lists dimensions outermost first (safetensors) */
    const uint8_t *data;       /* nbytes, inside a mapping that outlives the table */
    uint64_t nbytes;
} tensor_ref;

typedef struct {
    tensor_ref *t; /* owned */
    int64_t n, cap;
} tensor_table;

/* Appends an entry (name copied; the other pointers borrowed). */
tensor_ref *tensor_table_add(tensor_table *tt, const char *name);
/* The entries of a parsed GGUF (whose tensors and file outlive the table). */
void tensor_table_from_gguf(tensor_table *tt, const gguf_file *g, const char *path);
void tensor_table_clear(tensor_table *tt);
const tensor_ref *tensor_table_find(const tensor_table *tt, const char *name);
/* The shape as the file writes it, e.g. "[14336, 4096]" for a safetensors Linear weight. */
void tensor_ref_shape(const tensor_ref *t, char *buf, size_t cap);
/* Formats the shape {n_in, n_out} (GGUF order) the way t's file would write it. */
void tensor_ref_shape_of(const tensor_ref *t, int64_t n_in, int64_t n_out, char *buf, size_t cap);

#endif
