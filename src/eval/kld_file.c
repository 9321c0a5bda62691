/* herd eval: llama.cpp's KL-divergence base file (layout in kld_file.h). */
#include "kld_file.h"

#include <math.h>
#include <string.h>

#include "../base/log.h"

int kld_file_open(const char *path, int64_t n_vocab_expect, kld_file *out) {
    memset(out, 0, sizeof *out);
    int rc = herd_file_map(path, &out->f);
    if (rc) return rc;
    const uint8_t *d = out->f.data;
    size_t size = out->f.size;
    if (size < 20 || memcmp(d, "_logits_", 8) != 0) {
        kld_file_close(out);
        return herd_err(HERD_E_FORMAT, "%s does not look like a file containing log-probabilities "
                        "(no \"_logits_\" header)", path);
    }
    uint32_t n_ctx;
    int32_t n_vocab, n_chunk;
    memcpy(&n_ctx, d + 8, 4);
    memcpy(&n_vocab, d + 12, 4);
    memcpy(&n_chunk, d + 16, 4);
    /* n_ctx >= 4 leaves at least one scored row; the caps keep every product below in int64 */
    if (n_ctx < 4 || n_ctx > (1u << 24) || n_vocab < 1 || n_vocab > (1 << 26) || n_chunk < 1) {
        kld_file_close(out);
        return herd_err(HERD_E_FORMAT, "%s: bad header (n_ctx %u, n_vocab %d, n_chunk %d)", path, n_ctx, n_vocab,
                        n_chunk);
    }
    if (n_vocab_expect > 0 && n_vocab != n_vocab_expect) {
        kld_file_close(out);
        return herd_err(HERD_E_FORMAT, "%s: inconsistent vocabulary (%d in the file vs %lld in the model)", path,
                        n_vocab, (long long)n_vocab_expect);
    }
    out->n_ctx = n_ctx, out->n_vocab = n_vocab, out->n_chunk = n_chunk;
    out->nv = 2 * (((int64_t)n_vocab + 1) / 2) + 4;
    out->n_rows = out->n_ctx - 1 - out->n_ctx / 2;
    /* sizes in int64: n_chunk < 2^31, n_ctx <= 2^24, nv < 2^27 -> each factor pair below fits */
    uint64_t tok_bytes = (uint64_t)n_chunk * (uint64_t)n_ctx * 4u;
    uint64_t row_bytes = (uint64_t)out->nv * 2u;
    uint64_t chunk_bytes = (uint64_t)out->n_rows * row_bytes;
    uint64_t avail = size - 20;
    if (tok_bytes > avail || (avail - tok_bytes) / chunk_bytes != (uint64_t)n_chunk ||
        (avail - tok_bytes) % chunk_bytes != 0) {
        uint64_t want = (uint64_t)n_chunk * chunk_bytes; /* may wrap only for absurd headers: message only */
        kld_file_close(out);
        return herd_err(HERD_E_FORMAT, "%s: is %zu bytes, but its header (n_ctx %u, n_vocab %d, n_chunk %d) needs "
                        "%llu", path, size, n_ctx, n_vocab, n_chunk, (unsigned long long)(20 + tok_bytes + want));
    }
    out->tokens = (const int32_t *)(d + 20);
    out->rows = d + 20 + tok_bytes;
    for (int64_t i = 0; i < (int64_t)n_chunk * out->n_ctx; i++)
        if (out->tokens[i] < 0 || out->tokens[i] >= n_vocab) {
            int32_t t = out->tokens[i];
            kld_file_close(out);
            return herd_err(HERD_E_FORMAT, "%s: token %lld is %d, outside the vocabulary of %d", path, (long long)i,
                            t, n_vocab);
        }
    return HERD_OK;
}

void kld_file_close(kld_file *k) {
    herd_file_unmap(&k->f);
    memset(k, 0, sizeof *k);
}

void kld_file_row(const kld_file *k, int64_t w, int64_t r, uint16_t *out) {
    HERD_ASSERT(w >= 0 && w < k->n_chunk && r >= 0 && r < k->n_rows);
    memcpy(out, k->rows + ((size_t)w * (size_t)k->n_rows + (size_t)r) * (size_t)k->nv * 2, (size_t)k->nv * 2);
}

int kld_file_write_header(FILE *fp, int32_t n_ctx, int32_t n_vocab, int32_t n_chunk, const int32_t *tokens) {
    uint32_t c = (uint32_t)n_ctx;
    if (fwrite("_logits_", 1, 8, fp) != 8 || fwrite(&c, 4, 1, fp) != 1 || fwrite(&n_vocab, 4, 1, fp) != 1 ||
        fwrite(&n_chunk, 4, 1, fp) != 1 ||
        fwrite(tokens, 4, (size_t)n_chunk * (size_t)n_ctx, fp) != (size_t)n_chunk * (size_t)n_ctx)
        return HERD_E_IO;
    return HERD_OK;
}

/* llama.cpp's nearest_int: round to nearest (ties to even) through the float mantissa, |fval| <= 2^22 */
static inline int nearest_int(float fval) {
    float val = fval + 12582912.f;
    int i;
    memcpy(&i, &val, sizeof(int));
    return (i & 0x007fffff) - 0x00400000;
}

double kld_row_quantize(int64_t n_vocab, const float *logits, uint16_t *row, int32_t tok) {
    float max_logit = logits[0], min_logit = logits[0];
    for (int64_t i = 1; i < n_vocab; ++i) {
        max_logit = fmaxf(max_logit, logits[i]);
        min_logit = fminf(min_logit, logits[i]);
    }
    min_logit = fmaxf(min_logit, max_logit - 16);
    double sum_exp = 0.0;
    for (int64_t i = 0; i < n_vocab; ++i) sum_exp += expf(logits[i] - max_logit);
    const float log_sum_exp = (float)log(sum_exp);
    const float min_log_prob = min_logit - max_logit - log_sum_exp;
    const float scale = (max_logit - min_logit) / 65535.f;
    memcpy(row, &scale, 4);
    memcpy(row + 2, &min_log_prob, 4);
    row[2 * ((n_vocab + 1) / 2) + 3] = 0; /* the pad of an odd vocabulary (llama.cpp leaves it as it was: 0) */
    uint16_t *q = row + 4;
    if (scale != 0) {
        const float inv_scale = 1 / scale;
        for (int64_t i = 0; i < n_vocab; ++i)
            q[i] = logits[i] > min_logit ? (uint16_t)nearest_int(inv_scale * (logits[i] - min_logit)) : 0;
    } else {
        memset(q, 0, (size_t)n_vocab * sizeof(uint16_t));
    }
    return max_logit + log_sum_exp - logits[tok];
}
