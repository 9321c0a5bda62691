/* Importance matrices: the per-input-column activation statistics llama.cpp's llama-imatrix collects and
 * llama-quantize --imatrix uses, in both of its file formats (tools/imatrix/imatrix.cpp and
 * common/imatrix-loader.cpp in the bundled llama.cpp source). This module owns the formats; herd imatrix
 * (src/api/imatrix_api.c) fills one, herd quantize (quantize.c) reads one.
 *
 * For a matrix W of [n_in, n_out] (per expert: n_mat = 1 for llama) and the tokens it was applied to:
 *   sums[j]  = sum over those tokens t of x_t[j]^2   (x_t: W's input row, j < n_in; F32, token order)
 *   count    = the number of tokens
 * and quantize weighs column j of every row by sums[j] / count.
 *
 * GGUF (llama-imatrix's default): general.type "imatrix", imatrix.datasets [string] (the text files),
 * imatrix.chunk_count u32 (windows run), imatrix.chunk_size u32 (tokens per window); per matrix NAME, in
 * name order, two F32 tensors: NAME.in_sum2 [n_in, n_mat] (the sums) and NAME.counts [1, n_mat].
 *
 * .dat (the older format, --output-format dat), little-endian:
 *   i32 n_entries; n_entries x { i32 len, name[len], i32 ncall, i32 nval, f32 v[nval] }
 *   [ i32 chunk_count, i32 len, dataset[len] ]   (optional tail)
 * where ncall = ceil(count / chunk_size) and v[j] = sums[j] / count * ncall, so quantize's weight is
 * v[j] / ncall. Entries whose count is 0 are not written.
 */
#ifndef HERD_QUANT_IMATRIX_H
#define HERD_QUANT_IMATRIX_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    char *name;       /* the matrix, "blk.0.attn_q.weight" */
    float *sums;      /* [n_sums] = [n_mat][n_in] */
    int64_t *counts;  /* [n_counts] (n_mat): GGUF tokens; .dat the entry's ncall */
    int64_t n_sums, n_counts;
} imatrix_entry;

typedef struct {
    imatrix_entry *e; /* [n], sorted by name */
    int64_t n;
    char **datasets;  /* [n_datasets] */
    int64_t n_datasets;
    int64_t chunk_count, chunk_size; /* chunk_size 0 in a .dat */
    bool legacy;      /* read from a .dat: sums are v[] and counts ncall (see above) */
    bool has_metadata; /* GGUF with all three imatrix.* keys (llama-quantize refuses one without) */
} imatrix;

/* Reads a file in either format (GGUF when it starts with the GGUF magic, else .dat), checking every
 * length against the file. 0 ok; HERD_E_IO / HERD_E_FORMAT with one line naming the file and the problem. */
int imatrix_load(const char *path, imatrix *out);
/* The same over a buffer (what names it in messages); the result owns copies of everything. */
int imatrix_parse(const uint8_t *buf, uint64_t size, const char *what, imatrix *out);
void imatrix_clear(imatrix *im);

/* Writes im (a GGUF-style imatrix: sums and token counts, not legacy) as llama-imatrix does: GGUF, or .dat
 * when dat is set. Atomic (a temporary file renamed over path). HERD_E_IO naming the path. */
int imatrix_save(const imatrix *im, const char *path, bool dat);

/* The entry for a matrix name, or NULL. */
const imatrix_entry *imatrix_find(const imatrix *im, const char *name);
/* The importance of each of the entry's n_sums columns as llama-quantize computes it (load_imatrix):
 * GGUF sums / count per matrix (1 where a count is 0); .dat v / ncall (v itself where ncall is 0). */
void imatrix_weights(const imatrix *im, const imatrix_entry *e, float *out);

/* llama.cpp's imatrix key names */
#define IMATRIX_KEY_DATASETS "imatrix.datasets"
#define IMATRIX_KEY_CHUNK_COUNT "imatrix.chunk_count"
#define IMATRIX_KEY_CHUNK_SIZE "imatrix.chunk_size"

#endif
