/* Public API: the generation loop shared by `herd run` and `herd chat`.
 *
 * Text is released to on_text only when final: a tail that could still become a stop string is
 * held back, and so is an incomplete UTF-8 sequence at the end (a token may end mid-character),
 * so that every piece handed out is valid to print or to put in JSON. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../base/log.h"
#include "../sample/stop.h"
#include "herd.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int herd_generate(herd_context *c, herd_sampler *s, const int32_t *prompt, int64_t n_prompt,
                  const herd_generate_params *p, herd_generate_result *out) {
    memset(out, 0, sizeof *out);
    const herd_model *m = herd_context_model(c);
    int64_t n_vocab = herd_vocab_n_tokens(m);
    int32_t python_tag = herd_vocab_find(m, "<|python_tag|>");
    if (n_prompt <= 0) return herd_err(HERD_E_ARG, "generate: the prompt is empty");
    for (int i = 0; i < p->n_stop; i++)
        if (!p->stop[i] || !p->stop[i][0]) return herd_err(HERD_E_ARG, "generate: stop string %d is empty", i);
    float *logits = malloc((size_t)n_vocab * sizeof(float));
    if (!logits) return herd_err(HERD_E_NOMEM, "generate: out of memory for logits");
    out->n_prompt = n_prompt;
    for (int64_t i = 0; i < n_prompt; i++) herd_sampler_accept_prompt(s, prompt[i]);

    double t0 = now_s();
    int rc = herd_decode(c, prompt, n_prompt, HERD_LOGITS_LAST, logits);
    double t1 = now_s();
    out->prompt_seconds = t1 - t0;
    if (rc) {
        free(logits);
        return rc;
    }
    text_stream ts;
    text_stream_init(&ts, p->stop, p->n_stop);
    int64_t cap_ids = 64;
    out->ids = herd_xmalloc((size_t)cap_ids * sizeof(int32_t));
    char piece[256];
    size_t from, k;

    for (;;) {
        if (p->n_predict >= 0 && out->n_ids >= p->n_predict) {
            out->stop_reason = HERD_STOP_LENGTH;
            break;
        }
        int32_t id;
        if (p->forced) {
            if (out->n_ids >= p->n_forced) {
                out->stop_reason = HERD_STOP_EOG;
                out->stop_token = -1;
                break;
            }
            id = p->forced[out->n_ids];
        } else {
            id = herd_sampler_sample(s, logits);
        }
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
        bool special = p->render_python_tag && id == python_tag;
        int64_t need = herd_token_to_piece(m, id, special, piece, sizeof piece);
        if (need > (int64_t)sizeof piece) {
            char *big = herd_xmalloc((size_t)need);
            herd_token_to_piece(m, id, special, big, (size_t)need);
            k = text_stream_push(&ts, big, (size_t)need, &from);
            free(big);
        } else {
            k = text_stream_push(&ts, piece, need > 0 ? (size_t)need : 0, &from);
        }
        if (k > 0 && p->on_text && !p->on_text(ts.text.p + from, k, p->user)) {
            out->stop_reason = HERD_STOP_USER;
            break;
        }
        if (ts.stopped) {
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
    k = text_stream_flush(&ts, &from);
    if (rc == 0 && k > 0 && p->on_text && out->stop_reason != HERD_STOP_USER) p->on_text(ts.text.p + from, k, p->user);
    free(logits);
    out->text = ts.text.p;
    out->text_len = ts.text.n;
    if (rc) herd_generate_result_free(out);
    return rc;
}

void herd_generate_result_free(herd_generate_result *r) {
    free(r->ids);
    free(r->text);
    memset(r, 0, sizeof *r);
}
