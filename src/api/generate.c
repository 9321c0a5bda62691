/* Public API: the generation loop shared by `herd run` and `herd chat`.
 *
 * Text is released to on_text only when final: a tail that could still become a stop string is
 * held back, and so is an incomplete UTF-8 sequence at the end (a token may end mid-character),
 * so that every piece handed out is valid to print or to put in JSON.
 *
 * With a draft (p->draft or p->lookup_ngram) the loop is speculative (src/spec/spec.h): each step
 * runs the pending token and up to draft_max drafted ones through the target in one forward pass and
 * emits the accepted prefix plus one token of the target's own; every emitted token goes through the
 * same emit() as in plain decoding, so stops, penalties and constraints behave the same. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../base/log.h"
#include "../sample/sample.h"
#include "../sample/stop.h"
#include "../spec/spec.h"
#include "herd.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The state of one generation, for emit(). */
typedef struct {
    const herd_model *m;
    const herd_generate_params *p;
    herd_generate_result *out;
    herd_sampler *s;
    text_stream ts;
    int32_t python_tag;
    int64_t cap_ids;
} gen_state;

/* Emits one chosen token: end of generation, the sampler's record, the output, the text and its stop
 * strings. Returns true when generation stops here (out->stop_reason set). */
static bool emit(gen_state *g, int32_t id) {
    herd_generate_result *out = g->out;
    if (herd_vocab_is_eog(g->m, id)) {
        out->stop_reason = HERD_STOP_EOG;
        out->stop_token = id;
        return true;
    }
    herd_sampler_accept(g->s, id);
    if (out->n_ids == g->cap_ids) {
        g->cap_ids *= 2;
        out->ids = herd_xrealloc(out->ids, (size_t)g->cap_ids * sizeof(int32_t));
    }
    out->ids[out->n_ids++] = id;
    char piece[256];
    size_t from, k;
    bool special = g->p->render_python_tag && id == g->python_tag;
    int64_t need = herd_token_to_piece(g->m, id, special, piece, sizeof piece);
    if (need > (int64_t)sizeof piece) {
        char *big = herd_xmalloc((size_t)need);
        herd_token_to_piece(g->m, id, special, big, (size_t)need);
        k = text_stream_push(&g->ts, big, (size_t)need, &from);
        free(big);
    } else {
        k = text_stream_push(&g->ts, piece, need > 0 ? (size_t)need : 0, &from);
    }
    if (k > 0 && g->p->on_text && !g->p->on_text(g->ts.text.p + from, k, g->p->user)) {
        out->stop_reason = HERD_STOP_USER;
        return true;
    }
    if (g->ts.stopped) {
        out->stop_reason = HERD_STOP_STRING;
        return true;
    }
    return false;
}

static bool length_reached(const gen_state *g) {
    return g->p->n_predict >= 0 && g->out->n_ids >= g->p->n_predict;
}

/* Plain decoding: sample, emit, run the token, repeat. logits holds the next position's row. */
static int generate_plain(herd_context *c, gen_state *g, float *logits) {
    const herd_generate_params *p = g->p;
    herd_generate_result *out = g->out;
    for (;;) {
        if (length_reached(g)) {
            out->stop_reason = HERD_STOP_LENGTH;
            return HERD_OK;
        }
        int32_t id;
        if (p->forced) {
            if (out->n_ids >= p->n_forced) {
                out->stop_reason = HERD_STOP_EOG;
                out->stop_token = -1;
                return HERD_OK;
            }
            id = p->forced[out->n_ids];
        } else {
            id = herd_sampler_sample(g->s, logits);
        }
        if (emit(g, id)) return HERD_OK;
        if (herd_context_n_past(c) >= herd_context_n_ctx(c)) {
            out->stop_reason = HERD_STOP_CONTEXT;
            return HERD_OK;
        }
        int rc = herd_decode(c, &id, 1, HERD_LOGITS_LAST, logits);
        if (rc) return rc;
    }
}

/* Speculative decoding. The cache holds the prompt and logits its next row; the first token is
 * sampled plainly, then each step: the cache holds everything emitted but the last token (pending),
 * the drafter proposes d[0..k), [pending, d...] runs in one pass, the drafts are checked in order. At
 * the end the cache is left as plain decoding leaves it: everything emitted (but the last token after
 * a stop string, a user stop or a full context), so that chat can continue from it. */
static int generate_spec(herd_context *c, gen_state *g, float *logits, const int32_t *prompt, int64_t n_prompt) {
    const herd_generate_params *p = g->p;
    herd_generate_result *out = g->out;
    int64_t n_vocab = herd_vocab_n_tokens(g->m), n_ctx = herd_context_n_ctx(c);
    int64_t draft_max = p->draft_max > 0 ? p->draft_max : 16;
    int64_t n0 = herd_context_n_past(c) - n_prompt; /* positions cached before this prompt */
    bool sampling = !sampler_greedy(g->s);
    spec_drafter *d;
    int rc = spec_drafter_new(c, p, sampler_params(g->s), sampling, n0, &d);
    if (rc) return rc;
    /* hist: the text after n0 (prompt + emitted) */
    int64_t n_hist = n_prompt, cap_hist = n_prompt + 256;
    int32_t *hist = herd_xmalloc((size_t)cap_hist * sizeof *hist);
    memcpy(hist, prompt, (size_t)n_prompt * sizeof *hist);
    int32_t *batch = herd_xmalloc((size_t)(draft_max + 1) * sizeof *batch);
    float *rows = herd_xmalloc((size_t)((draft_max + 1) * n_vocab) * sizeof(float));
    float *pd = herd_xmalloc((size_t)n_vocab * sizeof(float));
    bool stopped = false;
#define HIST_PUSH(t)                                                                                        \
    do {                                                                                                    \
        if (n_hist == cap_hist) {                                                                           \
            cap_hist *= 2;                                                                                  \
            hist = herd_xrealloc(hist, (size_t)cap_hist * sizeof *hist);                                    \
        }                                                                                                   \
        hist[n_hist++] = (t);                                                                               \
    } while (0)

    /* the first token, from the prompt's row */
    if (length_reached(g)) {
        out->stop_reason = HERD_STOP_LENGTH;
        stopped = true;
    } else {
        int32_t id = herd_sampler_sample(g->s, logits);
        stopped = emit(g, id);
        if (!(stopped && out->stop_reason == HERD_STOP_EOG)) HIST_PUSH(id);
        if (!stopped && herd_context_n_past(c) >= n_ctx) {
            out->stop_reason = HERD_STOP_CONTEXT;
            stopped = true;
        }
    }
    while (!stopped) {
        /* step: the cache holds n0 + n_hist - 1 positions; verify [pending, d_0..d_{k-1}] */
        int64_t n_past = herd_context_n_past(c), k_max = draft_max;
        if (k_max > n_ctx - n_past - 1) k_max = n_ctx - n_past - 1;
        if (p->n_predict >= 0 && k_max > p->n_predict - out->n_ids - 1) k_max = p->n_predict - out->n_ids - 1;
        const float *q = NULL;
        int64_t k = spec_drafter_propose(d, hist, n_hist, k_max, batch + 1, &q);
        if (k < 0) {
            rc = (int)k;
            break;
        }
        if (k < p->draft_min) k = 0;
        batch[0] = hist[n_hist - 1];
        if ((rc = herd_decode(c, batch, k + 1, HERD_LOGITS_ALL, rows)) != 0) break;
        if (k > 0) {
            out->n_spec_steps++;
            out->n_drafted += k;
        }
        int64_t j = 0, n_acc = 0;
        for (;; j++) { /* row j: the distribution after batch[0..j] */
            if (length_reached(g)) {
                out->stop_reason = HERD_STOP_LENGTH;
                stopped = true;
                break;
            }
            const float *row = rows + (size_t)j * (size_t)n_vocab;
            int32_t id;
            bool accepted = false;
            if (j < k) {
                sampler_dist(g->s, row, pd);
                if (!sampling) {
                    id = 0;
                    for (int64_t i = 0; i < n_vocab; i++)
                        if (pd[i] > 0) id = (int32_t)i;
                    accepted = id == batch[j + 1];
                } else {
                    double u1 = sampler_uniform(g->s), u2 = sampler_uniform(g->s);
                    id = spec_accept_reject(pd, q ? q + (size_t)j * (size_t)n_vocab : NULL, n_vocab, batch[j + 1], u1,
                                            u2, &accepted);
                }
                if (accepted) out->n_accepted++, n_acc++;
            } else {
                id = herd_sampler_sample(g->s, row); /* every draft accepted: the target's own next token */
            }
            /* the cache holds n_past + j + 1 valid positions now (pending and the accepted drafts) */
            if (emit(g, id)) {
                stopped = true;
                if (out->stop_reason != HERD_STOP_EOG) HIST_PUSH(id);
                break;
            }
            HIST_PUSH(id);
            if (n_past + j + 1 >= n_ctx) {
                out->stop_reason = HERD_STOP_CONTEXT;
                stopped = true;
                break;
            }
            if (!accepted) break;
        }
        spec_drafter_feedback(d, k, n_acc);
        /* drop the rejected drafts' positions. The cache holds the pending token and the accepted drafts;
         * the last emitted token is in it only when it was an accepted draft, which happens only at a
         * length or EOG stop (EOG itself is not in hist). Elsewhere the last token stays pending, as plain
         * decoding leaves it after a stop string, a user stop or a full context. */
        bool all_in = stopped && (out->stop_reason == HERD_STOP_EOG || out->stop_reason == HERD_STOP_LENGTH);
        herd_context_truncate(c, n0 + n_hist - (all_in ? 0 : 1));
    }
    if (rc == 0) rc = spec_drafter_sync(d, hist, herd_context_n_past(c) - n0);
#undef HIST_PUSH
    free(hist);
    free(batch);
    free(rows);
    free(pd);
    spec_drafter_free(d);
    return rc;
}

int herd_generate(herd_context *c, herd_sampler *s, const int32_t *prompt, int64_t n_prompt,
                  const herd_generate_params *p, herd_generate_result *out) {
    memset(out, 0, sizeof *out);
    const herd_model *m = herd_context_model(c);
    int64_t n_vocab = herd_vocab_n_tokens(m);
    if (n_prompt <= 0) return herd_err(HERD_E_ARG, "generate: the prompt is empty");
    for (int i = 0; i < p->n_stop; i++)
        if (!p->stop[i] || !p->stop[i][0]) return herd_err(HERD_E_ARG, "generate: stop string %d is empty", i);
    if (p->draft && p->lookup_ngram > 0)
        return herd_err(HERD_E_ARG, "generate: give a draft model or prompt lookup, not both");
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
    gen_state g = {.m = m, .p = p, .out = out, .s = s, .python_tag = herd_vocab_find(m, "<|python_tag|>"),
                   .cap_ids = 64};
    text_stream_init(&g.ts, p->stop, p->n_stop);
    out->ids = herd_xmalloc((size_t)g.cap_ids * sizeof(int32_t));
    /* scripted (test-only) generation has nothing to speculate on */
    bool spec = !p->forced && (p->draft || p->lookup_ngram > 0);
    rc = spec ? generate_spec(c, &g, logits, prompt, n_prompt) : generate_plain(c, &g, logits);
    out->gen_seconds = now_s() - t1;
    /* flush what was held back (an incomplete character or a stop-string prefix that never completed) */
    size_t from, k = text_stream_flush(&g.ts, &from);
    if (rc == 0 && k > 0 && p->on_text && out->stop_reason != HERD_STOP_USER) p->on_text(g.ts.text.p + from, k, p->user);
    free(logits);
    out->text = g.ts.text.p;
    out->text_len = g.ts.text.n;
    if (rc) herd_generate_result_free(out);
    return rc;
}

void herd_generate_result_free(herd_generate_result *r) {
    free(r->ids);
    free(r->text);
    memset(r, 0, sizeof *r);
}

int herd_vocab_compatible(const herd_model *target, const herd_model *draft) {
    int32_t n = herd_vocab_n_tokens(target), nd = herd_vocab_n_tokens(draft);
    if (n != nd)
        return herd_err(HERD_E_ARG, "the draft model's vocabulary has %d tokens, the target's %d: they must be the same",
                        nd, n);
    if (herd_vocab_bos(target) != herd_vocab_bos(draft) || herd_vocab_eos(target) != herd_vocab_eos(draft))
        return herd_err(HERD_E_ARG, "the draft model's BOS/EOS ids (%d/%d) differ from the target's (%d/%d)",
                        herd_vocab_bos(draft), herd_vocab_eos(draft), herd_vocab_bos(target), herd_vocab_eos(target));
    char a[256], b[256];
    for (int32_t i = 0; i < n; i++) {
        int64_t na = herd_token_to_piece(target, i, true, a, sizeof a);
        int64_t nb = herd_token_to_piece(draft, i, true, b, sizeof b);
        if (na != nb || (na > 0 && memcmp(a, b, (size_t)(na < (int64_t)sizeof a ? na : (int64_t)sizeof a)) != 0) ||
            herd_vocab_is_eog(target, i) != herd_vocab_is_eog(draft, i))
            return herd_err(HERD_E_ARG, "the draft model's token %d differs from the target's: the vocabularies must be "
                                        "the same", i);
    }
    return HERD_OK;
}
