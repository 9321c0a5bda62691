/* Sampler: greedy, each filter on its own (top-k, top-p, min-p, temperature, repetition penalty),
 * seeded reproducibility, and the empirical distribution against the softmax it should follow. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "herd.h"
#include "sample/sample.h"
#include "testutil.h"

#define NV 8

static herd_sampler_params base(void) {
    herd_sampler_params p = herd_sampler_default_params();
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.repeat_penalty = 1.0f;
    p.temp = 1.0f;
    p.seed = 42;
    return p;
}

/* Draws n samples and returns the histogram. */
static void hist(const herd_sampler_params *p, const float *logits, int n, int *h) {
    herd_sampler *s = herd_sampler_new(p, NV);
    memset(h, 0, NV * sizeof(int));
    for (int i = 0; i < n; i++) h[herd_sampler_sample(s, logits)]++;
    herd_sampler_free(s);
}

int main(void) {
    const float lg[NV] = {1.0f, 3.0f, 2.5f, -1.0f, 0.0f, 2.9f, -5.0f, 0.5f};
    int h[NV];

    /* greedy */
    herd_sampler_params p = base();
    p.temp = 0;
    hist(&p, lg, 50, h);
    CHECK(h[1] == 50, "greedy picks the argmax every time (%d)", h[1]);

    /* greedy over a large vocabulary, unfiltered (the argmax read straight from the logits) and with a
     * repetition penalty of a token far from the top (the general path through the candidates): both
     * the first of tied maxima, as a plain scan finds it */
    {
        enum { BIG = 128256 };
        float *big = malloc(BIG * sizeof *big);
        uint64_t x = 7;
        for (int round = 0; round < 20; round++) {
            for (int i = 0; i < BIG; i++) {
                x = x * 6364136223846793005ull + 1442695040888963407ull;
                big[i] = (float)((x >> 40) % 2000) / 100.0f; /* many ties, incl. at the maximum */
            }
            if (round == 1) big[0] = 50.0f;       /* the first id */
            if (round == 2) big[BIG - 1] = 50.0f; /* the last id */
            int ref = 0;
            for (int i = 1; i < BIG; i++)
                if (big[i] > big[ref]) ref = i;
            int far = ref == 3 ? 4 : 3;
            herd_sampler_params g = base();
            g.temp = 0;
            herd_sampler *s1 = herd_sampler_new(&g, BIG);
            g.repeat_penalty = 1.5f;
            herd_sampler *s2 = herd_sampler_new(&g, BIG);
            big[far] = -1.0f; /* penalized, it stays below the maximum */
            herd_sampler_accept(s2, far);
            int a = herd_sampler_sample(s1, big), b = herd_sampler_sample(s2, big);
            CHECK(a == ref && b == ref, "greedy over %d logits: %d (unfiltered), %d (through the penalty), want %d",
                  BIG, a, b, ref);
            herd_sampler_free(s1);
            herd_sampler_free(s2);
        }
        free(big);
    }

    /* top-k 2: only ids 1 and 5 */
    p = base();
    p.top_k = 2;
    hist(&p, lg, 4000, h);
    CHECK(h[1] + h[5] == 4000 && h[1] > 0 && h[5] > 0, "top-k 2 keeps only the two best (%d %d)", h[1], h[5]);
    /* their ratio follows exp(3 - 2.9) */
    double want = exp(0.1) / (1 + exp(0.1)), got = h[1] / 4000.0;
    CHECK(fabs(got - want) < 0.03, "top-k renormalized ratio %.3f vs %.3f", got, want);

    /* top-p: the cumulative mass of sorted probabilities reaches 0.5 within the best two */
    p = base();
    p.top_p = 0.5f;
    hist(&p, lg, 2000, h);
    CHECK(h[1] + h[5] == 2000, "top-p 0.5 keeps ids 1 and 5 only (%d %d %d)", h[1], h[5], h[2]);
    p.top_p = 0.01f;
    hist(&p, lg, 100, h);
    CHECK(h[1] == 100, "top-p keeps at least one token");

    /* min-p 0.5: keeps tokens with p >= 0.5 * p_max, i.e. logit >= 3 + ln 0.5 = 2.307: ids 1, 5, 2 */
    p = base();
    p.min_p = 0.5f;
    hist(&p, lg, 3000, h);
    CHECK(h[1] + h[5] + h[2] == 3000 && h[2] > 0, "min-p keeps 1, 5, 2 (%d %d %d)", h[1], h[5], h[2]);

    /* temperature: the distribution follows softmax(logits / T) */
    p = base();
    p.temp = 2.0f;
    int n = 40000;
    hist(&p, lg, n, h);
    double z = 0, pr[NV];
    for (int i = 0; i < NV; i++) z += exp(lg[i] / 2.0);
    double worst = 0;
    for (int i = 0; i < NV; i++) {
        pr[i] = exp(lg[i] / 2.0) / z;
        double sd = sqrt(pr[i] * (1 - pr[i]) / n), dev = fabs(h[i] / (double)n - pr[i]);
        if (dev / (sd + 1e-12) > worst) worst = dev / (sd + 1e-12);
    }
    CHECK(worst < 5.0, "empirical distribution within 5 sigma of softmax(l/T) (worst %.2f)", worst);

    /* same seed, same stream; another seed, another stream */
    herd_sampler *a = herd_sampler_new(&p, NV), *b = herd_sampler_new(&p, NV);
    herd_sampler_params q = p;
    q.seed = 43;
    herd_sampler *c = herd_sampler_new(&q, NV);
    int same = 1, differ = 0;
    for (int i = 0; i < 200; i++) {
        int x = herd_sampler_sample(a, lg), y = herd_sampler_sample(b, lg), w = herd_sampler_sample(c, lg);
        same &= x == y;
        differ |= x != w;
    }
    CHECK(same, "same seed reproduces the sequence");
    CHECK(differ, "another seed gives another sequence");
    herd_sampler_free(a);
    herd_sampler_free(b);
    herd_sampler_free(c);

    /* repetition penalty: a recent positive logit is divided, a negative one multiplied */
    p = base();
    p.temp = 0;
    p.repeat_penalty = 2.0f;
    p.repeat_last_n = 4;
    herd_sampler *r = herd_sampler_new(&p, NV);
    herd_sampler_accept(r, 1); /* 3.0 -> 1.5: now 5 (2.9) wins */
    CHECK(herd_sampler_sample(r, lg) == 5, "penalized argmax moves to 5");
    herd_sampler_accept(r, 5); /* 2.9 -> 1.45: now 2 (2.5) */
    herd_sampler_accept(r, 5); /* repeated ids are penalized once */
    CHECK(herd_sampler_sample(r, lg) == 2, "penalty applied once per distinct token");
    herd_sampler_accept(r, 0);
    herd_sampler_accept(r, 0);
    herd_sampler_accept(r, 0); /* window of 4 now holds 5,0,0,0: id 1 is free again */
    CHECK(herd_sampler_sample(r, lg) == 1, "tokens leave the window after repeat_last_n");
    herd_sampler_free(r);

    /* ties: greedy picks the lowest id, deterministically */
    const float tie[NV] = {0, 7, 7, 0, 0, 0, 0, 0};
    p = base();
    p.temp = 0;
    hist(&p, tie, 10, h);
    CHECK(h[1] == 10, "ties broken towards the lower id");

    /* a large vocabulary without top-k: top-p and min-p must keep exactly the right set (the sampler
     * only sorts a growing prefix) */
    {
        enum { NB = 5000 };
        float *big = malloc(NB * sizeof(float));
        sample_rng g;
        sample_rng_seed(&g, 5);
        for (int i = 0; i < NB; i++) big[i] = (float)(sample_rng_uniform(&g) * 12.0 - 6.0);
        /* the nucleus by brute force: sort ids by logit, take until mass >= p */
        int *ord = malloc(NB * sizeof(int));
        for (int i = 0; i < NB; i++) ord[i] = i;
        for (int i = 0; i < NB; i++) /* selection sort is fine for a test */
            for (int j = i + 1; j < NB && i < 600; j++)
                if (big[ord[j]] > big[ord[i]]) { int t = ord[i]; ord[i] = ord[j]; ord[j] = t; }
        double zb = 0, acc = 0;
        float mx = big[ord[0]];
        for (int i = 0; i < NB; i++) zb += exp(big[i] - mx);
        int nucleus = 0;
        while (acc < 0.3) acc += exp(big[ord[nucleus++]] - mx) / zb;
        char *in = calloc(NB, 1);
        for (int i = 0; i < nucleus; i++) in[ord[i]] = 1;
        herd_sampler_params bq = base();
        bq.top_p = 0.3f;
        herd_sampler *t = herd_sampler_new(&bq, NB);
        int outside = 0, seen_cnt = 0;
        char *seen = calloc(NB, 1);
        for (int i = 0; i < 3000; i++) {
            int id = herd_sampler_sample(t, big);
            outside += !in[id];
            if (!seen[id]) seen[id] = 1, seen_cnt++;
        }
        CHECK(outside == 0 && seen_cnt > nucleus / 2, "top-p without top-k keeps exactly the nucleus of %d (%d outside, %d seen)",
              nucleus, outside, seen_cnt);
        herd_sampler_free(t);
        bq = base();
        bq.min_p = 0.2f;
        t = herd_sampler_new(&bq, NB);
        outside = 0;
        for (int i = 0; i < 2000; i++) {
            int id = herd_sampler_sample(t, big);
            outside += big[id] < mx + logf(0.2f);
        }
        CHECK(outside == 0, "min-p without top-k keeps only p >= 0.2 p_max (%d outside)", outside);
        herd_sampler_free(t);
        free(big), free(ord), free(in), free(seen);
    }

    /* rng: uniform in [0, 1) with the right mean */
    sample_rng rng;
    sample_rng_seed(&rng, 7);
    double sum = 0;
    int in_range = 1;
    for (int i = 0; i < 100000; i++) {
        double u = sample_rng_uniform(&rng);
        in_range &= u >= 0 && u < 1;
        sum += u;
    }
    CHECK(in_range && fabs(sum / 100000 - 0.5) < 0.005, "uniform mean %.4f", sum / 100000);
    return TU_DONE("test_sampler");
}
