/* Speculative decoding: see spec.h. */
#include "spec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../base/log.h"
#include "../sample/sample.h"

/* ---- accept / reject ---------------------------------------------------------------------------- */

int32_t spec_accept_reject(const float *p, const float *q, int64_t n, int32_t tok, double u1, double u2,
                           bool *accepted) {
    double pt = p[tok], qt = q ? q[tok] : 1.0;
    /* accept with probability min(1, p/q); qt > 0 since tok was drawn from q */
    if (qt <= 0 || u1 * qt < pt) {
        *accepted = true;
        return tok;
    }
    *accepted = false;
    /* the residual max(0, p - q), normalized; with q one-hot it is p with tok removed */
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        double r = (double)p[i] - (q ? (double)q[i] : (i == tok ? 1.0 : 0.0));
        if (r > 0) sum += r;
    }
    if (!(sum > 0)) { /* p == q: cannot happen in exact arithmetic; draw from p */
        for (int64_t i = 0; i < n; i++) sum += p[i];
        double u = u2 * sum, acc = 0;
        int64_t last = tok;
        for (int64_t i = 0; i < n; i++) {
            if (p[i] <= 0) continue;
            last = i;
            acc += p[i];
            if (u < acc) return (int32_t)i;
        }
        return (int32_t)last;
    }
    double u = u2 * sum, acc = 0;
    int64_t last = -1;
    for (int64_t i = 0; i < n; i++) {
        double r = (double)p[i] - (q ? (double)q[i] : (i == tok ? 1.0 : 0.0));
        if (r <= 0) continue;
        last = i;
        acc += r;
        if (u < acc) return (int32_t)i;
    }
    return (int32_t)last; /* rounding: the last token with residual mass */
}

/* ---- prompt lookup ------------------------------------------------------------------------------ */

int64_t spec_lookup(const int32_t *hist, int64_t n, int ngram_max, int64_t n_max, int32_t *out) {
    for (int m = ngram_max < n ? ngram_max : (int)(n - 1); m >= 1; m--) {
        const int32_t *tail = hist + n - m;
        /* latest start i < n - m whose m tokens equal the tail and that has a follower */
        for (int64_t i = n - m - 1; i >= 0; i--) {
            if (hist[i] != tail[0] || memcmp(hist + i, tail, (size_t)m * sizeof *hist) != 0) continue;
            /* the L followers up to the end of the text; when the text ends in R repeats of one period of
             * L tokens, the copy runs on through the draft itself (an overlapping copy: the cycle goes on)
             * for R periods in all — as much future as the text shows past, so a cycle that has held for a
             * while drafts n_max tokens, and one that may be chance drafts little (long drafts that are
             * mostly rejected cost more to verify than they save) */
            const int64_t L = n - (i + m);
            int64_t R = 1;
            while (n >= (R + 1) * L && memcmp(hist + n - (R + 1) * L, hist + n - L, (size_t)L * sizeof *hist) == 0) R++;
            const int64_t k = R * L < n_max ? R * L : n_max;
            for (int64_t j = 0; j < k; j++) out[j] = j < L ? hist[i + m + j] : out[j - L];
            return k;
        }
    }
    return 0;
}

/* ---- drafter ------------------------------------------------------------------------------------- */

struct spec_drafter {
    herd_context *dc;      /* draft context (borrowed); NULL: prompt lookup */
    int lookup;            /* n-gram length for prompt lookup */
    int64_t lookup_max;    /* prompt lookup: the next proposal's limit (spec_drafter_feedback) */
    int64_t lookup_lo, lookup_hi; /* its bounds: --draft-min, --draft-max */
    float p_min;           /* stop drafting below this draft probability */
    bool sampling;
    int64_t n0;            /* positions both caches held at the start */
    int64_t n_vocab;
    herd_sampler *s;       /* the draft's sampler (sampling drafts) */
    int32_t *dtok;         /* tokens the draft cache holds after n0, [cap] */
    int64_t n_dtok, cap;
    float *logits;         /* [n_vocab] */
    float *q;              /* [n_max][n_vocab] the draft's distributions (sampling) */
    int64_t q_rows;
};

int spec_drafter_new(herd_context *c, const herd_generate_params *p, const herd_sampler_params *samp, bool sampling,
                     int64_t n0, spec_drafter **out) {
    *out = NULL;
    int64_t nv = herd_vocab_n_tokens(herd_context_model(c));
    if (p->draft && herd_vocab_n_tokens(herd_context_model(p->draft)) != nv)
        return herd_err(HERD_E_ARG, "speculative: the draft model has %d tokens in its vocabulary, the target %lld",
                        (int)herd_vocab_n_tokens(herd_context_model(p->draft)), (long long)nv);
    if (p->draft && herd_context_n_past(p->draft) < n0)
        return herd_err(HERD_E_ARG, "speculative: the draft context holds %lld positions, the target %lld",
                        (long long)herd_context_n_past(p->draft), (long long)n0);
    spec_drafter *d = herd_xcalloc(1, sizeof *d);
    d->dc = p->draft;
    d->lookup = p->lookup_ngram;
    d->lookup_lo = p->draft_min;
    d->lookup_hi = p->draft_max > 0 ? p->draft_max : 16; /* herd_generate's default */
    d->lookup_max = spec_lookup_next_max(SPEC_LOOKUP_START, 0, 0, d->lookup_lo, d->lookup_hi);
    d->p_min = p->draft_p_min;
    d->sampling = sampling && p->draft;
    d->n0 = n0;
    d->n_vocab = nv;
    if (d->dc) {
        herd_context_truncate(d->dc, n0);
        d->logits = herd_xmalloc((size_t)nv * sizeof(float));
        /* the draft picks with the target's sampler settings, penalty included (its window refilled from
         * the text for each proposal), so that it agrees as often as it can; no constraint (q may be any
         * distribution the draft token is drawn from: verification makes the output exact) */
        herd_sampler_params sp = *samp;
        if (!sampling) sp.temp = 0;
        sp.seed = samp->seed ^ 0x5bd1e9955bd1e995ull;
        d->s = herd_sampler_new(&sp, (int32_t)nv);
        d->q = herd_xmalloc((size_t)nv * sizeof(float)); /* one row until a proposal needs more */
        d->q_rows = 1;
    }
    *out = d;
    return HERD_OK;
}

void spec_drafter_free(spec_drafter *d) {
    if (!d) return;
    herd_sampler_free(d->s);
    free(d->dtok);
    free(d->logits);
    free(d->q);
    free(d);
}

static void dtok_push(spec_drafter *d, int32_t t) {
    if (d->n_dtok == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 256;
        d->dtok = herd_xrealloc(d->dtok, (size_t)d->cap * sizeof *d->dtok);
    }
    d->dtok[d->n_dtok++] = t;
}

/* Makes the draft cache hold hist[0..n) after n0: keeps the prefix it shares, runs the rest (the
 * logits of the last position land in d->logits when want_logits). */
static int draft_catch_up(spec_drafter *d, const int32_t *hist, int64_t n, bool want_logits) {
    int64_t keep = 0;
    while (keep < d->n_dtok && keep < n && d->dtok[keep] == hist[keep]) keep++;
    if (keep == n && want_logits && n > 0) keep--; /* re-run the last token for its logits */
    herd_context_truncate(d->dc, d->n0 + keep);
    d->n_dtok = keep;
    if (n > keep) {
        int rc = herd_decode(d->dc, hist + keep, n - keep, want_logits ? HERD_LOGITS_LAST : HERD_LOGITS_NONE,
                             want_logits ? d->logits : NULL);
        if (rc) return rc;
        for (int64_t i = keep; i < n; i++) dtok_push(d, hist[i]);
    }
    return HERD_OK;
}

int64_t spec_drafter_propose(spec_drafter *d, const int32_t *hist, int64_t n, int64_t n_max, int32_t *draft,
                             const float **q) {
    *q = NULL;
    if (n_max <= 0) return 0;
    if (!d->dc) return d->lookup > 0 ? spec_lookup(hist, n, d->lookup, n_max < d->lookup_max ? n_max : d->lookup_max, draft) : 0;
    /* the draft cache can hold n0 + n + n_max - 1 positions at most */
    int64_t room = herd_context_n_ctx(d->dc) - (d->n0 + n);
    if (room < 0) return 0;
    if (n_max > room + 1) n_max = room + 1;
    int rc = draft_catch_up(d, hist, n, true);
    if (rc) return rc;
    /* the draft sampler's penalty window: the last tokens of the text */
    int64_t last_n = sampler_params(d->s)->repeat_last_n;
    sampler_clear_recent(d->s);
    for (int64_t i = n - last_n > 0 ? n - last_n : 0; i < n; i++) herd_sampler_accept_prompt(d->s, hist[i]);
    if (d->sampling && d->q_rows < n_max) {
        d->q = herd_xrealloc(d->q, (size_t)(n_max * d->n_vocab) * sizeof(float));
        d->q_rows = n_max;
    }
    int64_t k = 0;
    while (k < n_max) {
        int32_t t;
        double pt;
        if (d->sampling) {
            float *qk = d->q + (size_t)k * (size_t)d->n_vocab;
            sampler_dist(d->s, d->logits, qk);
            /* draw t from qk */
            double u = sampler_uniform(d->s), acc = 0;
            t = -1;
            for (int64_t i = 0; i < d->n_vocab; i++) {
                if (qk[i] <= 0) continue;
                t = (int32_t)i;
                acc += qk[i];
                if (u < acc) break;
            }
            pt = qk[t];
        } else {
            t = herd_sampler_sample(d->s, d->logits); /* the argmax after the penalty */
            pt = 1.0;
            if (d->p_min > 0) { /* its softmax probability (temperature 1, raw logits) */
                double sum = 0;
                for (int64_t i = 0; i < d->n_vocab; i++) sum += exp((double)d->logits[i] - d->logits[t]);
                pt = 1.0 / sum;
            }
        }
        if (pt < d->p_min) break;
        herd_sampler_accept_prompt(d->s, t);
        draft[k++] = t;
        if (k == n_max) break;
        if ((rc = herd_decode(d->dc, &t, 1, HERD_LOGITS_LAST, d->logits)) != 0) return rc;
        dtok_push(d, t);
    }
    if (d->sampling && k > 0) *q = d->q;
    return k;
}

int64_t spec_lookup_next_max(int64_t cur, int64_t k, int64_t accepted, int64_t lo, int64_t hi) {
    if (k > 0) cur = accepted >= k ? cur + 2 : cur - 1;
    if (lo < 1) lo = 1;
    if (hi < lo) hi = lo;
    return cur < lo ? lo : cur > hi ? hi : cur;
}

void spec_drafter_feedback(spec_drafter *d, int64_t k, int64_t accepted) {
    if (!d->dc) d->lookup_max = spec_lookup_next_max(d->lookup_max, k, accepted, d->lookup_lo, d->lookup_hi);
}

int spec_drafter_sync(spec_drafter *d, const int32_t *hist, int64_t n) {
    if (!d->dc) return HERD_OK;
    return draft_catch_up(d, hist, n, false);
}
