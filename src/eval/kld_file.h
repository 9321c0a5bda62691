/* herd eval: llama.cpp's KL-divergence base file (llama-perplexity --kl-divergence-base), read and written
 * byte for byte as tools/perplexity/perplexity.cpp does, so a file written by either program is read by the
 * other. Layout (little-endian, no padding):
 *
 *     char     magic[8]    "_logits_"
 *     uint32   n_ctx       window length in tokens
 *     int32    n_vocab
 *     int32    n_chunk     windows in the file
 *     int32    tokens[n_chunk * n_ctx]        the text's tokens, window after window (not BOS-replaced)
 *     then for each window, for each scored position i in [n_ctx/2, n_ctx - 1):  one row of nv uint16,
 *         nv = 2 * ((n_vocab + 1) / 2) + 4:
 *         float32 scale, float32 min_log_prob  (the row's first 4 uint16)
 *         uint16  q[n_vocab] (+1 pad when n_vocab is odd): log p(token) = scale * q + min_log_prob
 *
 * The rows are the base model's log-softmax, clipped 16 nats below its top token and quantized to 16 bits
 * (kld_row_quantize). The reader maps the file and checks every length against the file size before use,
 * and every token id against n_vocab: a corrupt file gives one error line, never a read out of bounds. */
#ifndef HERD_EVAL_KLD_FILE_H
#define HERD_EVAL_KLD_FILE_H

#include <stdint.h>
#include <stdio.h>

#include "../base/file.h"

typedef struct {
    herd_mapped_file f;
    int64_t n_ctx, n_vocab, n_chunk;
    int64_t nv;            /* uint16 per row: 2 * ((n_vocab + 1) / 2) + 4 */
    int64_t n_rows;        /* scored rows per window: n_ctx - 1 - n_ctx / 2 */
    const int32_t *tokens; /* n_chunk * n_ctx, inside the mapping (4-byte aligned: offset 20 of a page) */
    const uint8_t *rows;   /* n_chunk * n_rows * nv uint16, inside the mapping (maybe unaligned: use memcpy) */
} kld_file;

/* Opens and validates a base file. n_vocab_expect > 0: the file must have that vocabulary size.
 * 0 ok; HERD_E_IO / HERD_E_FORMAT with a message naming the file and what is wrong. */
int kld_file_open(const char *path, int64_t n_vocab_expect, kld_file *out);
void kld_file_close(kld_file *k);
/* Copies row r (0 <= r < n_rows) of window w into out (nv uint16). */
void kld_file_row(const kld_file *k, int64_t w, int64_t r, uint16_t *out);

/* The header and token block of a file being written (fp positioned at 0). */
int kld_file_write_header(FILE *fp, int32_t n_ctx, int32_t n_vocab, int32_t n_chunk, const int32_t *tokens);

/* llama.cpp's log_softmax(n_vocab, logits, log_prob, tok): fills row (nv uint16) with the quantized
 * log-softmax of logits[0..n_vocab) and returns the negative log-likelihood of tok. */
double kld_row_quantize(int64_t n_vocab, const float *logits, uint16_t *row, int32_t tok);

#endif
