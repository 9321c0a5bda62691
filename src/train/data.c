/* Training data (data.h): the file, cpt's document stream and windows, the overlong policy, the
 * bookkeeping of sequences. The JSONL objectives (sft, dpo) are in data_jsonl.c. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/file.h"
#include "../base/log.h"
#include "data.h"
#include "data_impl.h"

#define CPT_SEPARATOR "<|end_of_text|>"

void train_data_free(train_data *d) {
    if (!d) return;
    for (int64_t i = 0; i < d->n_seqs; i++) {
        free(d->seqs[i].tokens);
        free(d->seqs[i].target);
    }
    free(d->seqs);
    memset(d, 0, sizeof *d);
}

static int64_t count_targets(const train_seq *s) {
    int64_t n = 0;
    for (int64_t i = 1; i < s->n; i++) n += s->target[i] != 0;
    return n;
}

void train_data_add_example(train_data *d, const train_data_params *p, train_seq *s, int k) {
    int64_t max = p->seq_len + 1;
    bool over = false, empty = false;
    for (int i = 0; i < k; i++) over |= s[i].n > max;
    if (over && p->overlong == TRAIN_OVERLONG_SKIP) goto drop;
    for (int i = 0; i < k; i++) {
        if (s[i].n > max) { /* truncate, and give the tail's memory back */
            s[i].n = max;
            int32_t *t = realloc(s[i].tokens, (size_t)max * sizeof *s[i].tokens);
            uint8_t *g = realloc(s[i].target, (size_t)max);
            if (t) s[i].tokens = t;
            if (g) s[i].target = g;
        }
        s[i].target[0] = 0;
        empty |= count_targets(&s[i]) == 0;
    }
    if (empty) goto drop;
    if (d->n_seqs + k > d->cap_seqs) {
        d->cap_seqs = d->cap_seqs ? d->cap_seqs * 2 : 64;
        if (d->cap_seqs < d->n_seqs + k) d->cap_seqs = d->n_seqs + k;
        d->seqs = herd_xrealloc(d->seqs, (size_t)d->cap_seqs * sizeof *d->seqs);
    }
    for (int i = 0; i < k; i++) {
        d->seqs[d->n_seqs++] = s[i];
        d->n_tokens += s[i].n;
        d->n_targets += count_targets(&s[i]);
    }
    d->n_examples++;
    d->n_truncated += over;
    return;
drop:
    for (int i = 0; i < k; i++) {
        free(s[i].tokens);
        free(s[i].target);
    }
    d->n_skipped++;
}

/* A growable token stream (cpt). */
typedef struct {
    int32_t *p;
    int64_t n, cap;
} id_stream;

static int stream_put(id_stream *s, const int32_t *ids, int64_t n) {
    if (s->n + n > s->cap) {
        int64_t cap = s->cap ? s->cap : 4096;
        while (cap < s->n + n) cap *= 2;
        int32_t *q = realloc(s->p, (size_t)cap * sizeof *q);
        if (!q) return herd_err(HERD_E_NOMEM, "train: out of memory for %lld tokens", (long long)cap);
        s->p = q;
        s->cap = cap;
    }
    memcpy(s->p + s->n, ids, (size_t)n * sizeof *ids);
    s->n += n;
    return HERD_OK;
}

static bool all_space(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!strchr(" \t\r\n\v\f", s[i]) || !s[i]) return false;
    return true;
}

/* cpt: documents between the separators, each tokenized as `herd tokenize` does, then the end token;
 * windows of seq_len + 1 tokens every seq_len tokens. Linear in the file: one memmem pass, one
 * tokenizer call per document, one copy per window. */
static int load_cpt(const herd_model *m, const char *path, const char *text, size_t len,
                    const train_data_params *p, train_data *d) {
    int32_t eot = herd_vocab_find(m, CPT_SEPARATOR);
    if (eot < 0) eot = herd_vocab_eos(m);
    if (eot < 0)
        return herd_err(HERD_E_UNSUPPORTED,
                        "%s: the vocabulary has neither %s nor an EOS token to end documents with", path,
                        CPT_SEPARATOR);
    int flags = herd_vocab_add_bos(m) ? HERD_TOKENIZE_ADD_BOS : 0;
    const size_t sep_len = strlen(CPT_SEPARATOR);
    id_stream s = {0};
    int rc = HERD_OK;
    size_t at = 0;
    while (rc == 0 && at < len) {
        const char *hit = memmem(text + at, len - at, CPT_SEPARATOR, sep_len);
        size_t end = hit ? (size_t)(hit - text) : len;
        if (!all_space(text + at, end - at)) {
            int32_t *ids;
            int64_t n;
            rc = herd_tokenize(m, text + at, end - at, flags, &ids, &n);
            if (rc) {
                char msg[768];
                snprintf(msg, sizeof msg, "%s", herd_last_error());
                rc = herd_err(rc, "%s: the document at byte %zu: %s", path, at, msg);
            } else {
                rc = stream_put(&s, ids, n);
                if (rc == 0) rc = stream_put(&s, &eot, 1);
                free(ids);
            }
        }
        at = hit ? end + sep_len : len;
    }
    /* windows [k T, k T + T + 1) while at least 2 tokens remain */
    int64_t T = p->seq_len;
    for (int64_t start = 0, k = 0; rc == 0 && s.n - start >= 2; start += T, k++) {
        int64_t n = s.n - start < T + 1 ? s.n - start : T + 1;
        train_seq w = {
            .tokens = malloc((size_t)n * sizeof(int32_t)), .target = malloc((size_t)n), .n = n, .line = k};
        if (!w.tokens || !w.target) {
            free(w.tokens);
            free(w.target);
            rc = herd_err(HERD_E_NOMEM, "train: out of memory for window %lld", (long long)k);
            break;
        }
        memcpy(w.tokens, s.p + start, (size_t)n * sizeof(int32_t));
        memset(w.target, 1, (size_t)n);
        w.target[0] = 0;
        train_data_add_example(d, p, &w, 1);
    }
    free(s.p);
    return rc;
}

/* distill: JSONL when the file's first non-whitespace byte is '{', raw text otherwise. */
static bool looks_jsonl(const char *text, size_t len) {
    size_t i = 0;
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) i = 3;
    while (i < len && strchr(" \t\r\n", text[i]) && text[i]) i++;
    return i < len && text[i] == '{';
}

int train_data_load(const herd_model *m, const char *path, const train_data_params *p, train_data *out) {
    memset(out, 0, sizeof *out);
    if (!m || !path || !p) return herd_err(HERD_E_ARG, "train: data: no model, path or parameters");
    if (p->seq_len < 1 || p->seq_len > INT32_MAX)
        return herd_err(HERD_E_ARG, "train: seq_len must be in [1, %d], got %lld", INT32_MAX, (long long)p->seq_len);
    if (p->objective < TRAIN_OBJ_CPT || p->objective > TRAIN_OBJ_DISTILL)
        return herd_err(HERD_E_ARG, "train: unknown objective %d", p->objective);
    if (p->overlong != TRAIN_OVERLONG_TRUNCATE && p->overlong != TRAIN_OVERLONG_SKIP)
        return herd_err(HERD_E_ARG, "train: unknown overlong policy %d", p->overlong);
    herd_mapped_file f;
    int rc = herd_file_map(path, &f);
    if (rc) return rc;
    const char *text = (const char *)f.data;
    bool jsonl = p->objective == TRAIN_OBJ_SFT || p->objective == TRAIN_OBJ_DPO ||
                 (p->objective == TRAIN_OBJ_DISTILL && looks_jsonl(text, f.size));
    if (jsonl)
        rc = train_data_load_jsonl(m, path, text, f.size, p, out);
    else
        rc = load_cpt(m, path, text, f.size, p, out);
    herd_file_unmap(&f);
    if (rc) train_data_free(out);
    return rc;
}
