/* /v1/completions with echo + logprobs: the log-probabilities of the prompt's own tokens, as OpenAI's legacy
 * completions and vLLM return them (lm-evaluation-harness's local-completions loglikelihood reads them):
 * tokens, token_logprobs (null for the first token, which nothing predicts), top_logprobs (null first, then
 * the k most likely tokens at each position) and text_offset (byte offsets into the echoed text).
 *
 * The prompt is scored on a context of the server's own (not the engine's slots: the engine samples, it does
 * not return logits of every position), created on first use with one sequence of the per-request context
 * length and the engine's defaults (threads, KV type), and used by one request at a time under score_mu.
 * Logits come HERD_LOGITS_ALL in chunks of k_chunk positions; log-softmax in double. Row i predicts token
 * i + 1, so token_logprobs[i + 1] = logits[i][ids[i + 1]] - logsumexp(logits[i]), which is what
 * `herd perplexity` and `herd logits` give for the same tokens (tests/conformance/serve_echo_logprobs.sh). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../base/log.h"
#include "../base/strbuf.h"
#include "http.h"

enum { k_chunk = 32 };

/* jansson refuses non-finite reals: a token of probability 0 gets -1e30 */
static json_t *lp_real(double v) {
    return json_real(isfinite(v) ? v : -1e30);
}

static json_t *piece_json(const herd_model *m, int32_t id, strbuf *text) {
    char buf[256];
    int64_t k = herd_token_to_piece(m, id, false, buf, sizeof buf);
    size_t n = k < 0 ? 0 : (size_t)k < sizeof buf ? (size_t)k : sizeof buf;
    if (text) strbuf_put(text, buf, n);
    json_t *s = json_stringn(buf, n);
    return s ? s : json_string("\xef\xbf\xbd"); /* part of a UTF-8 sequence: U+FFFD, as routes.c shows it */
}

int server_prompt_logprobs(server *s, const int32_t *ids, int64_t n, int top, json_t **lp_out, char **echo_out) {
    *lp_out = NULL, *echo_out = NULL;
    const herd_model *m = engine_model(s->e);
    herd_model_info mi;
    herd_model_get_info(m, &mi);
    int64_t nv = mi.n_vocab;
    pthread_mutex_lock(&s->score_mu);
    int rc = HERD_OK;
    if (!s->score_ctx) {
        herd_context_params cp = herd_context_default_params();
        cp.n_ctx = s->cfg.n_ctx_slot;
        cp.n_seq = 1;
        rc = herd_context_new((herd_model *)m, &cp, &s->score_ctx); /* reads the model only */
    }
    if (rc == HERD_OK && n > herd_context_n_ctx(s->score_ctx))
        rc = herd_err(HERD_E_RANGE, "the prompt (%lld tokens) exceeds the context of %lld tokens", (long long)n,
                      (long long)herd_context_n_ctx(s->score_ctx));
    json_t *lp = json_pack("{s:[],s:[],s:[],s:[]}", "tokens", "token_logprobs", "top_logprobs", "text_offset");
    json_t *toks = json_object_get(lp, "tokens"), *tlp = json_object_get(lp, "token_logprobs"),
           *tops = json_object_get(lp, "top_logprobs"), *offs = json_object_get(lp, "text_offset");
    strbuf text = {0};
    strbuf_put(&text, "", 0);
    float *logits = rc == HERD_OK ? malloc((size_t)k_chunk * (size_t)nv * sizeof *logits) : NULL;
    int32_t *best = herd_xcalloc((size_t)top + 1, sizeof *best);
    if (rc == HERD_OK && !logits) rc = herd_err(HERD_E_NOMEM, "out of memory for the prompt's logits");
    if (rc == HERD_OK) herd_context_truncate(s->score_ctx, 0);
    /* token 0: no prediction */
    if (rc == HERD_OK) {
        json_array_append_new(offs, json_integer(0));
        json_array_append_new(toks, piece_json(m, ids[0], &text));
        json_array_append_new(tlp, json_null());
        json_array_append_new(tops, json_null());
    }
    for (int64_t off = 0; rc == HERD_OK && off < n - 1; off += k_chunk) {
        int64_t k = n - 1 - off < k_chunk ? n - 1 - off : k_chunk; /* rows off..off+k predict off+1.. */
        rc = herd_decode(s->score_ctx, ids + off, k, HERD_LOGITS_ALL, logits);
        for (int64_t i = 0; rc == HERD_OK && i < k; i++) {
            const float *row = logits + (size_t)i * (size_t)nv;
            double mx = row[0];
            for (int64_t v = 1; v < nv; v++) mx = row[v] > mx ? row[v] : mx;
            double sum = 0;
            for (int64_t v = 0; v < nv; v++) sum += exp((double)row[v] - mx);
            double lse = mx + log(sum);
            int32_t t = ids[off + i + 1];
            json_array_append_new(offs, json_integer((json_int_t)text.n));
            json_array_append_new(toks, piece_json(m, t, &text));
            json_array_append_new(tlp, lp_real((double)row[t] - lse));
            /* the top alternatives: a partial selection, highest first (ties: lower id) */
            int nb = 0;
            for (int64_t v = 0; v < nv && top > 0; v++) {
                if (nb == top && row[v] <= row[best[nb - 1]]) continue;
                int j = nb < top ? nb++ : nb - 1;
                while (j > 0 && row[best[j - 1]] < row[v]) best[j] = best[j - 1], j--;
                best[j] = (int32_t)v;
            }
            json_t *o = json_object();
            for (int j = 0; j < nb; j++) {
                json_t *key = piece_json(m, best[j], NULL);
                if (!json_object_get(o, json_string_value(key))) /* two ids, one text: the likelier */
                    json_object_set_new(o, json_string_value(key), lp_real((double)row[best[j]] - lse));
                json_decref(key);
            }
            json_array_append_new(tops, o);
        }
    }
    if (s->score_ctx) herd_context_truncate(s->score_ctx, 0);
    pthread_mutex_unlock(&s->score_mu);
    free(logits);
    free(best);
    if (rc != HERD_OK) {
        json_decref(lp);
        free(text.p);
        return rc;
    }
    *lp_out = lp;
    *echo_out = text.p;
    return HERD_OK;
}
