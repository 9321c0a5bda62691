/* Public API: the generation loop shared by `herd run` and `herd chat`.
 *
 * Text is released to on_text only when final: a tail that could still become a stop string is
 * held back, and so is an incomplete UTF-8 sequence at the end (a token may end mid-character),
 * so that every piece handed out is valid to print or to put in JSON. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../base/log.h"
#include "../base/strbuf.h"
#include "herd.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Length of an incomplete UTF-8 sequence at the end of s[0..n) (0 if it ends on a boundary). */
static size_t utf8_incomplete_tail(const char *s, size_t n) {
    for (size_t k = 1; k <= 3 && k <= n; k++) {
        unsigned char c = (unsigned char)s[n - k];
        if ((c & 0xC0) == 0x80) continue; /* continuation byte: look further back */
        size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        return need > k ? k : 0;
    }
    return 0;
}

/* Longest suffix of s[0..n) that is a proper prefix of some stop string. */
static size_t stop_prefix_tail(const char *s, size_t n, const char **stop, int n_stop) {
    size_t best = 0;
    for (int i = 0; i < n_stop; i++) {
        size_t L = strlen(stop[i]);
        for (size_t k = L > 1 ? L - 1 : 0; k > best; k--)
            if (k <= n && memcmp(s + n - k, stop[i], k) == 0) {
                best = k;
                break;
            }
    }
    return best;
}

int herd_generate(herd_context *c, herd_sampler *s, const int32_t *prompt, int64_t n_prompt,
                  const herd_generate_params *p, herd_generate_result *out) {
    memset(out, 0, sizeof *out);
    const herd_model *m = herd_context_model(c);
    int64_t n_vocab = herd_vocab_n_tokens(m);
    if (n_prompt <= 0) return herd_err(HERD_E_ARG, "generate: the prompt is empty");
    for (int i = 0; i < p->n_stop; i++)
        if (!p->stop[i] || !p->stop[i][0]) return herd_err(HERD_E_ARG, "generate: stop string %d is empty", i);
    float *logits = malloc((size_t)n_vocab * sizeof(float));
    if (!logits) return herd_err(HERD_E_NOMEM, "generate: out of memory for logits");
    out->n_prompt = n_prompt;
    for (int64_t i = 0; i < n_prompt; i++) herd_sampler_accept(s, prompt[i]);

    double t0 = now_s();
    int rc = herd_decode(c, prompt, n_prompt, HERD_LOGITS_LAST, logits);
    double t1 = now_s();
    out->prompt_seconds = t1 - t0;
    if (rc) {
        free(logits);
        return rc;
    }
    strbuf text = {0};
    size_t sent = 0; /* bytes of text already given to on_text */
    int64_t cap_ids = 64;
    out->ids = herd_xmalloc((size_t)cap_ids * sizeof(int32_t));
    char piece[256];
    size_t max_stop = 0;
    for (int i = 0; i < p->n_stop; i++)
        if (strlen(p->stop[i]) > max_stop) max_stop = strlen(p->stop[i]);

    for (;;) {
        if (p->n_predict >= 0 && out->n_ids >= p->n_predict) {
            out->stop_reason = HERD_STOP_LENGTH;
            break;
        }
        int32_t id = herd_sampler_sample(s, logits);
        if (herd_vocab_is_eog(m, id)) {
            out->stop_reason = HERD_STOP_EOG;
            out->stop_token = id;
            break;
        }
        herd_sampler_accept(s, id);
        if (out->n_ids == cap_ids) {
            cap_ids *= 2;
            out->ids = herd_xrealloc(out->ids, (size_t)cap_ids * sizeof(int32_t));
        }
        out->ids[out->n_ids++] = id;
        int64_t need = herd_token_to_piece(m, id, false, piece, sizeof piece);
        if (need > (int64_t)sizeof piece) {
            char *big = herd_xmalloc((size_t)need);
            herd_token_to_piece(m, id, false, big, (size_t)need);
            strbuf_put(&text, big, (size_t)need);
            free(big);
        } else if (need > 0) {
            strbuf_put(&text, piece, (size_t)need);
        }
        /* a stop string completed? search only where it could newly appear */
        bool stopped = false;
        if (p->n_stop > 0 && text.n > 0) {
            size_t from = sent > max_stop ? sent - max_stop : 0;
            size_t cut = text.n;
            for (int i = 0; i < p->n_stop; i++) {
                const char *hit = memmem(text.p + from, text.n - from, p->stop[i], strlen(p->stop[i]));
                if (hit && (size_t)(hit - text.p) < cut) cut = (size_t)(hit - text.p);
            }
            if (cut < text.n) {
                text.n = cut;
                text.p[cut] = 0;
                stopped = true;
            }
        }
        size_t final_end = text.n;
        if (!stopped) {
            size_t hold = stop_prefix_tail(text.p, text.n, p->stop, p->n_stop);
            size_t inc = utf8_incomplete_tail(text.p, text.n);
            if (inc > hold) hold = inc;
            final_end = text.n - hold;
        }
        if (final_end > sent && p->on_text) {
            if (!p->on_text(text.p + sent, final_end - sent, p->user)) {
                sent = final_end;
                out->stop_reason = HERD_STOP_USER;
                break;
            }
        }
        if (final_end > sent) sent = final_end;
        if (stopped) {
            out->stop_reason = HERD_STOP_STRING;
            break;
        }
        if (herd_context_n_past(c) >= herd_context_n_ctx(c)) {
            out->stop_reason = HERD_STOP_CONTEXT;
            break;
        }
        if ((rc = herd_decode(c, &id, 1, HERD_LOGITS_LAST, logits)) != 0) break;
    }
    out->gen_seconds = now_s() - t1;
    /* flush what was held back (an incomplete character or a stop-string prefix that never completed) */
    if (rc == 0 && text.n > sent && p->on_text && out->stop_reason != HERD_STOP_USER)
        p->on_text(text.p + sent, text.n - sent, p->user);
    free(logits);
    out->text = text.p ? text.p : herd_xstrndup("", 0);
    out->text_len = text.n;
    if (rc) herd_generate_result_free(out);
    return rc;
}

void herd_generate_result_free(herd_generate_result *r) {
    free(r->ids);
    free(r->text);
    memset(r, 0, sizeof *r);
}
