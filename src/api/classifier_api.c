/* Public API: Prompt Guard (DeBERTa-v2 + SentencePiece unigram) and Meta's scoring. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../base/log.h"
#include "../deberta/deberta.h"
#include "../tokenizer/unigram.h"
#include "herd.h"

#define CHUNK_CHARS 512 /* Meta's helper cuts text into 512-character chunks */
#define WINDOW_IDS 512  /* and truncates each to 512 ids: [CLS] + 510 + [SEP] */

struct herd_classifier {
    unigram_model *tok;
    int32_t cls, sep;
    int64_t max_ids;
    deberta_model *model; /* NULL: tokenizer only */
    thread_pool *pool;
    deberta_ctx *ctx;
};

bool herd_classifier_dir(const char *path) {
    struct stat st;
    if (stat(path, &st) || !S_ISDIR(st.st_mode)) return false;
    char p[4096];
    snprintf(p, sizeof p, "%s/config.json", path);
    FILE *f = fopen(p, "rb");
    if (!f) return false;
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return strstr(buf, "\"deberta-v2\"") != NULL;
}

static int load_tok(herd_classifier *c, const char *dir) {
    struct stat st;
    if (stat(dir, &st) || !S_ISDIR(st.st_mode))
        return herd_err(HERD_E_IO, "classifier: '%s' is not a directory (a Prompt Guard model is a Hugging Face directory)", dir);
    int rc = unigram_load_dir(dir, &c->tok);
    if (rc) return rc;
    c->cls = unigram_find(c->tok, "[CLS]");
    c->sep = unigram_find(c->tok, "[SEP]");
    if (c->cls < 0 || c->sep < 0)
        return herd_err(HERD_E_FORMAT, "classifier: %s: the tokenizer has no [CLS] / [SEP] piece", dir);
    c->max_ids = WINDOW_IDS;
    return 0;
}

int herd_classifier_load_tokenizer(const char *dir, herd_classifier **out) {
    *out = NULL;
    herd_classifier *c = herd_xcalloc(1, sizeof *c);
    int rc = load_tok(c, dir);
    if (rc) {
        herd_classifier_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

int herd_classifier_load(const char *dir, int n_threads, herd_classifier **out) {
    *out = NULL;
    if (n_threads < 1 || n_threads > 1024) return herd_err(HERD_E_ARG, "classifier: %d threads", n_threads);
    herd_classifier *c = herd_xcalloc(1, sizeof *c);
    int rc = load_tok(c, dir);
    if (rc) goto fail;
    c->pool = pool_new(n_threads);
    if (!c->pool) {
        rc = herd_err(HERD_E_NOMEM, "classifier: cannot start %d threads", n_threads);
        goto fail;
    }
    if ((rc = deberta_load(dir, c->pool, &c->model))) goto fail;
    if (c->model->cfg.n_vocab < unigram_n_pieces(c->tok)) {
        rc = herd_err(HERD_E_FORMAT, "classifier: %s: the tokenizer has %d pieces but vocab_size is %lld", dir,
                      unigram_n_pieces(c->tok), (long long)c->model->cfg.n_vocab);
        goto fail;
    }
    if (c->model->cfg.n_labels > HERD_CLASSIFY_MAX_LABELS || c->model->cfg.n_pos < 3) {
        rc = herd_err(HERD_E_UNSUPPORTED, "classifier: %s: %lld labels / %lld positions are not supported", dir,
                      (long long)c->model->cfg.n_labels, (long long)c->model->cfg.n_pos);
        goto fail;
    }
    if (c->model->cfg.n_pos < c->max_ids) c->max_ids = c->model->cfg.n_pos;
    c->ctx = deberta_ctx_new(c->model, c->pool);
    if (!c->ctx) {
        rc = herd_err(HERD_E_NOMEM, "classifier: out of memory for the scratch");
        goto fail;
    }
    *out = c;
    return 0;
fail:
    herd_classifier_free(c);
    return rc;
}

void herd_classifier_free(herd_classifier *c) {
    if (!c) return;
    deberta_ctx_free(c->ctx);
    deberta_free(c->model);
    pool_free(c->pool);
    unigram_free(c->tok);
    free(c);
}

int herd_classifier_n_labels(const herd_classifier *c) { return c->model ? (int)c->model->cfg.n_labels : 0; }

const char *herd_classifier_label(const herd_classifier *c, int i) {
    return c->model && i >= 0 && i < c->model->cfg.n_labels ? c->model->cfg.labels[i] : NULL;
}

int herd_classifier_tokenize(const herd_classifier *c, const char *text, size_t len, int32_t **ids, int64_t *n_ids) {
    int32_t *p;
    int64_t n;
    int rc = unigram_encode(c->tok, text, len, c->max_ids - 2, &p, &n);
    if (rc) return rc;
    int32_t *o = malloc((size_t)(n + 2) * sizeof *o);
    if (!o) {
        free(p);
        return herd_err(HERD_E_NOMEM, "classifier: out of memory");
    }
    o[0] = c->cls;
    memcpy(o + 1, p, (size_t)n * sizeof *o);
    o[n + 1] = c->sep;
    free(p);
    *ids = o;
    *n_ids = n + 2;
    return 0;
}

int herd_classifier_logits(herd_classifier *c, const int32_t *ids, int64_t n_ids, float *logits) {
    if (!c->model) return herd_err(HERD_E_ARG, "classifier: loaded without weights (tokenizer only)");
    return deberta_forward(c->ctx, ids, n_ids, logits);
}

/* Byte length of the first `chars` characters of s[0..n) (a malformed byte counts as one character). */
static size_t chars_prefix(const char *s, size_t n, size_t chars) {
    size_t i = 0;
    while (i < n && chars) {
        uint8_t b = (uint8_t)s[i];
        size_t l = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 1;
        size_t k = 1;
        while (k < l && i + k < n && ((uint8_t)s[i + k] & 0xC0) == 0x80) k++;
        i += k;
        chars--;
    }
    return i;
}

int herd_classify(herd_classifier *c, const char *text, size_t len, herd_classify_result *out) {
    memset(out, 0, sizeof *out);
    if (!c->model) return herd_err(HERD_E_ARG, "classifier: loaded without weights (tokenizer only)");
    const int nl = (int)c->model->cfg.n_labels;
    out->n_labels = nl;
    int64_t cap = 0;
    double best_inj = -1;
    for (size_t pos = 0; pos < len;) {
        size_t n = chars_prefix(text + pos, len - pos, CHUNK_CHARS);
        int32_t *ids;
        int64_t n_ids;
        int rc = herd_classifier_tokenize(c, text + pos, n, &ids, &n_ids);
        if (rc) return herd_classify_result_free(out), rc;
        if (out->n_windows == cap) {
            cap = cap ? 2 * cap : 4;
            float *g = realloc(out->logits, (size_t)(cap * nl) * sizeof(float));
            if (!g) {
                free(ids);
                herd_classify_result_free(out);
                return herd_err(HERD_E_NOMEM, "classifier: out of memory");
            }
            out->logits = g;
        }
        float *lg = out->logits + out->n_windows * nl;
        rc = deberta_forward(c->ctx, ids, n_ids, lg);
        free(ids);
        if (rc) return herd_classify_result_free(out), rc;
        out->n_windows++;
        /* softmax(logits / T), T = 1 */
        double mx = lg[0], p[HERD_CLASSIFY_MAX_LABELS] = {0}, sum = 0;
        for (int i = 1; i < nl; i++) mx = lg[i] > mx ? lg[i] : mx;
        for (int i = 0; i < nl; i++) sum += (p[i] = exp((double)lg[i] - mx));
        for (int i = 0; i < nl; i++) p[i] /= sum;
        double jb = p[nl - 1], inj = 0;
        for (int i = 1; i < nl; i++) inj += p[i];
        if (nl == 1) inj = p[0];
        if (jb > out->jailbreak_score) out->jailbreak_score = jb;
        if (inj > out->injection_score) out->injection_score = inj;
        if (inj > best_inj) {
            best_inj = inj;
            for (int i = 0; i < nl; i++) out->probs[i] = (float)p[i];
        }
        pos += n;
    }
    return 0;
}

void herd_classify_result_free(herd_classify_result *r) {
    free(r->logits);
    r->logits = NULL;
    r->n_windows = 0;
}
