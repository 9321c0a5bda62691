#include "sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../base/log.h"
#include "../constrain/constrain.h"
#include "../kernels/kernels.h"
#include "herd.h"

void sample_rng_seed(sample_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) { /* splitmix64 */
        uint64_t z = (seed += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        r->s[i] = z ^ (z >> 31);
    }
}

static uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

uint64_t sample_rng_next(sample_rng *r) {
    uint64_t *s = r->s, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double sample_rng_uniform(sample_rng *r) {
    return (double)(sample_rng_next(r) >> 11) * 0x1.0p-53;
}

typedef struct {
    int32_t id;
    float logit;
} cand;

struct herd_sampler {
    herd_sampler_params p;
    int32_t n_vocab;
    sample_rng rng;
    int32_t *recent;   /* ring of the last repeat_last_n accepted tokens */
    int64_t n_recent, head;
    cand *c;           /* [n_vocab] candidates */
    uint8_t *seen;     /* [n_vocab] scratch for the penalty */
    herd_constraint *con; /* not owned; NULL when unconstrained */
};

herd_sampler_params herd_sampler_default_params(void) {
    return (herd_sampler_params){
        .temp = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f, .repeat_penalty = 1.0f, .repeat_last_n = 64,
        .seed = 0xC0FFEE};
}

herd_sampler *herd_sampler_new(const herd_sampler_params *p, int32_t n_vocab) {
    herd_sampler *s = herd_xcalloc(1, sizeof *s);
    s->p = *p;
    if (s->p.repeat_last_n < 0) s->p.repeat_last_n = 0;
    s->n_vocab = n_vocab;
    sample_rng_seed(&s->rng, p->seed);
    s->recent = herd_xcalloc((size_t)(s->p.repeat_last_n + 1), sizeof *s->recent);
    s->c = herd_xmalloc((size_t)n_vocab * sizeof *s->c);
    s->seen = herd_xcalloc((size_t)n_vocab, 1);
    return s;
}

void herd_sampler_free(herd_sampler *s) {
    if (!s) return;
    free(s->recent);
    free(s->c);
    free(s->seen);
    free(s);
}

void herd_sampler_accept_prompt(herd_sampler *s, int32_t id) {
    if (s->p.repeat_last_n == 0) return;
    s->recent[s->head] = id;
    s->head = (s->head + 1) % s->p.repeat_last_n;
    if (s->n_recent < s->p.repeat_last_n) s->n_recent++;
}

static int cmp_desc(const void *a, const void *b) {
    float x = ((const cand *)a)->logit, y = ((const cand *)b)->logit;
    if (x != y) return x > y ? -1 : 1;
    int32_t i = ((const cand *)a)->id, j = ((const cand *)b)->id;
    return (i > j) - (i < j); /* ties: lower id first, so the order is total and deterministic */
}

/* Restores the min-heap order (the smallest candidate, by cmp_desc, at the root) below node r. */
static void sift_down(cand *h, int64_t k, int64_t r) {
    for (;;) {
        int64_t m = r, l = 2 * r + 1, q = l + 1;
        if (l < k && cmp_desc(&h[l], &h[m]) > 0) m = l;
        if (q < k && cmp_desc(&h[q], &h[m]) > 0) m = q;
        if (m == r) return;
        cand t = h[r];
        h[r] = h[m];
        h[m] = t;
        r = m;
    }
}

/* Moves the k largest candidates to the front, sorted (k <= n): a min-heap of the best k so far
 * lives in c[0..k), so selection costs O(n log k) instead of sorting all n. */
static void top_k_sort(cand *c, int64_t n, int64_t k) {
    if (k < n) {
        for (int64_t i = k / 2 - 1; i >= 0; i--) sift_down(c, k, i);
        for (int64_t i = k; i < n; i++) {
            if (cmp_desc(&c[i], &c[0]) >= 0) continue; /* not better than the worst kept */
            c[0] = c[i];
            sift_down(c, k, 0);
        }
    }
    qsort(c, (size_t)k, sizeof *c, cmp_desc);
}

void herd_sampler_accept(herd_sampler *s, int32_t id) {
    herd_sampler_accept_prompt(s, id);
    if (s->con) herd_constraint_accept(s->con, id); /* a token it did not allow leaves it as it was */
}

void herd_sampler_set_constraint(herd_sampler *s, herd_constraint *c) {
    s->con = c;
}

/* The chain up to the draw: leaves the candidates in s->c[0..n) and returns n. Greedy (temp <= 0):
 * the argmax alone (n = 1). Shared by herd_sampler_sample and sampler_dist, so the speculative
 * verifier (src/spec/) sees exactly the distribution plain sampling draws from. */
static int64_t sampler_filter(herd_sampler *s, const float *logits) {
    const herd_sampler_params *p = &s->p;
    int64_t n = s->n_vocab;
    if (p->temp <= 0 && !s->con && (p->repeat_penalty == 1.0f || s->n_recent == 0)) {
        /* greedy with nothing to filter: the argmax of the logits themselves (the kernel's, vectorized),
         * without first copying 128K candidates (1 MiB per token: on a small model with a 128K
         * vocabulary that copy and scan halved herd batch's tokens/s, docs/BENCHMARKS.md "Batch"). The
         * same comparisons as the general path below, so the same id (the first of equal maxima). */
        int64_t best = kernels_vec()->argmax_f32(n, logits);
        s->c[0] = (cand){(int32_t)best, logits[best]};
        return 1;
    }
    if (p->temp <= 0 && (p->repeat_penalty == 1.0f || s->n_recent == 0)) {
        /* greedy under a constraint (herd sdg's judge, JSON-schema answers): the first allowed maximum, in
         * one pass over the logits and the mask, instead of copying all 128K candidates and compacting
         * them first (that copy was a fifth of herd sdg's time on the tiny model). The general path below
         * picks the same id: compaction keeps the order, then the first of equal maxima. */
        const uint8_t *ok = constraint_mask(s->con, NULL);
        int64_t best = -1;
        for (int64_t i = 0; i < n; i++)
            if (ok[i] && (best < 0 || logits[i] > logits[best])) best = i;
        s->c[0] = best < 0 ? (cand){0, 0.0f} : (cand){(int32_t)best, logits[best]}; /* none: see below */
        return 1;
    }
    /* The filters need the candidates in descending order, but only as far as they look: sort the
     * top-k (or, without top-k, a growing prefix: top-p stops once the mass is reached), never all
     * 128K logits when no filter needs them. */
    bool sorted = false;
    if (!s->con && (p->repeat_penalty == 1.0f || s->n_recent == 0) && p->top_k > 0 && p->top_k < n) {
        /* nothing changes the logits before top-k: select it straight from them, without first copying
         * all 128K candidates (1 MiB per token; on the tiny model half of the sampler's time). The same
         * heap steps as top_k_sort over the copied candidates, so the same top k in the same order. */
        int64_t k = p->top_k;
        for (int64_t i = 0; i < k; i++) s->c[i] = (cand){(int32_t)i, logits[i]};
        for (int64_t i = k / 2 - 1; i >= 0; i--) sift_down(s->c, k, i);
        for (int64_t i = k; i < n; i++) {
            cand x = {(int32_t)i, logits[i]};
            if (cmp_desc(&x, &s->c[0]) >= 0) continue;
            s->c[0] = x;
            sift_down(s->c, k, 0);
        }
        qsort(s->c, (size_t)k, sizeof *s->c, cmp_desc);
        n = k;
        sorted = true;
        goto after_top_k;
    }
    for (int64_t i = 0; i < n; i++) s->c[i] = (cand){(int32_t)i, logits[i]};

    /* repetition penalty: each distinct recent token once, as llama.cpp */
    if (p->repeat_penalty != 1.0f && s->n_recent > 0) {
        for (int64_t i = 0; i < s->n_recent; i++) {
            int32_t id = s->recent[i];
            if (id < 0 || id >= n || s->seen[id]) continue;
            s->seen[id] = 1;
            float *l = &s->c[id].logit;
            *l = *l > 0 ? *l / p->repeat_penalty : *l * p->repeat_penalty;
        }
        for (int64_t i = 0; i < s->n_recent; i++)
            if (s->recent[i] >= 0 && s->recent[i] < n) s->seen[s->recent[i]] = 0;
    }

    /* the constraint: only the tokens it allows stay candidates (after the penalty, which indexes
     * candidates by id); it always allows at least one */
    if (s->con) {
        const uint8_t *ok = constraint_mask(s->con, NULL);
        int64_t keep = 0;
        for (int64_t i = 0; i < n; i++)
            if (ok[i]) s->c[keep++] = s->c[i];
        if (keep == 0) s->c[keep++] = (cand){0, 0.0f}; /* unreachable: see constrain.c */
        n = keep;
    }

    if (p->temp <= 0) {
        int64_t best = 0;
        for (int64_t i = 1; i < n; i++)
            if (s->c[i].logit > s->c[best].logit) best = i;
        s->c[0] = s->c[best];
        return 1;
    }

    if (p->top_k > 0 && p->top_k < n) {
        top_k_sort(s->c, n, p->top_k);
        n = p->top_k;
        sorted = true;
    }
after_top_k:
    /* top-p over the softmax of the (untempered) logits, keeping at least one */
    if (p->top_p < 1.0f) {
        float mx = s->c[0].logit;
        for (int64_t i = 1; i < n; i++) mx = s->c[i].logit > mx ? s->c[i].logit : mx;
        double sum = 0;
        for (int64_t i = 0; i < n; i++) sum += exp((double)s->c[i].logit - mx);
        for (int64_t m = sorted || n < 64 ? n : 64;; m = m * 8 < n ? m * 8 : n) {
            if (!sorted) top_k_sort(s->c, n, m); /* the top m, sorted: a prefix of the full order */
            double acc = 0;
            int64_t cut = -1;
            for (int64_t i = 0; i < m && cut < 0; i++) {
                acc += exp((double)s->c[i].logit - mx) / sum;
                if (acc >= p->top_p) cut = i + 1;
            }
            if (cut > 0 || m == n) {
                n = cut > 0 ? cut : m;
                sorted = true;
                break;
            }
        }
    }
    /* min-p: keep tokens whose probability is >= min_p times the top one */
    if (p->min_p > 0.0f && !sorted) { /* one pass over everything; sort only what is kept */
        float mx = s->c[0].logit;
        for (int64_t i = 1; i < n; i++) mx = s->c[i].logit > mx ? s->c[i].logit : mx;
        float thr = mx + logf(p->min_p);
        int64_t keep = 0;
        for (int64_t i = 0; i < n; i++)
            if (s->c[i].logit >= thr) s->c[keep++] = s->c[i];
        n = keep;
    } else if (p->min_p > 0.0f) { /* sorted: a prefix */
        float thr = s->c[0].logit + logf(p->min_p);
        int64_t keep = 1;
        while (keep < n && s->c[keep].logit >= thr) keep++;
        n = keep;
    }
    return n;
}

int32_t herd_sampler_sample(herd_sampler *s, const float *logits) {
    const herd_sampler_params *p = &s->p;
    int64_t n = sampler_filter(s, logits);
    if (p->temp <= 0) return s->c[0].id;
    /* temperature, then draw (over the candidates in whatever order they are) */
    float mx = s->c[0].logit;
    for (int64_t i = 1; i < n; i++) mx = s->c[i].logit > mx ? s->c[i].logit : mx;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) sum += exp(((double)s->c[i].logit - mx) / p->temp);
    double u = sample_rng_uniform(&s->rng) * sum, acc = 0;
    for (int64_t i = 0; i < n; i++) {
        acc += exp(((double)s->c[i].logit - mx) / p->temp);
        if (u < acc) return s->c[i].id;
    }
    return s->c[n - 1].id;
}

int64_t sampler_dist(herd_sampler *s, const float *logits, float *probs) {
    const herd_sampler_params *p = &s->p;
    int64_t n = sampler_filter(s, logits);
    memset(probs, 0, (size_t)s->n_vocab * sizeof *probs);
    if (p->temp <= 0) {
        probs[s->c[0].id] = 1.0f;
        return 1;
    }
    /* the same arithmetic as the draw in herd_sampler_sample */
    float mx = s->c[0].logit;
    for (int64_t i = 1; i < n; i++) mx = s->c[i].logit > mx ? s->c[i].logit : mx;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) sum += exp(((double)s->c[i].logit - mx) / p->temp);
    for (int64_t i = 0; i < n; i++) probs[s->c[i].id] = (float)(exp(((double)s->c[i].logit - mx) / p->temp) / sum);
    return n;
}

double sampler_uniform(herd_sampler *s) {
    return sample_rng_uniform(&s->rng);
}

bool sampler_greedy(const herd_sampler *s) {
    return s->p.temp <= 0;
}

const herd_sampler_params *sampler_params(const herd_sampler *s) {
    return &s->p;
}

void sampler_clear_recent(herd_sampler *s) {
    s->n_recent = 0;
    s->head = 0;
}
