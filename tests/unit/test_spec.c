/* Speculative decoding (src/spec/spec.h):
 *  - accept/reject: for synthetic target p and draft q (q one-hot as in prompt lookup, q uniform, q
 *    zero where p is not, p zero where q is not, q == p), a token drawn from q and passed through
 *    spec_accept_reject is distributed as p: a chi-square goodness-of-fit test over 200000 draws per
 *    case, at a false-alarm rate of 1e-4 per case (critical value by Wilson-Hilferty);
 *  - sampler_dist gives the distribution herd_sampler_sample draws from (chi-square, same rate), and
 *    its argmax for greedy;
 *  - prompt lookup finds the latest earlier n-gram, the longest first;
 *  - generation on small random models: greedy ids (and the KV cache left behind) identical to plain
 *    decoding for draft sizes 1..16 with a quantized twin (agrees often), an unrelated model (never
 *    agrees) and prompt lookup; sampling at temperature 1 keeps each generated position's token
 *    distribution (two-sample chi-square, plain vs speculative over 1000 seeds each, 1e-4 per test).
 *    On this near-uniform random model lookup drafts are almost all rejected, so its end-to-end check
 *    exercises the reject path; the accept path runs with the twin and in the synthetic test above. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "herd.h"
#include "sample/sample.h"
#include "spec/spec.h"
#include "testutil.h"
#include "testvocab.h"

static char g_dir[256];

/* upper 1e-4 quantile of chi-square with df degrees of freedom (Wilson-Hilferty; z = 3.719) */
static double chi2_crit(int df) {
    double a = 2.0 / (9.0 * df), z = 3.719;
    double t = 1 - a + z * sqrt(a);
    return df * t * t * t;
}

static double unif(void) {
    return (double)(tu_u64() >> 11) * 0x1.0p-53;
}

static int32_t draw(const float *q, int n) {
    double u = unif(), acc = 0;
    int last = 0;
    for (int i = 0; i < n; i++) {
        if (q[i] <= 0) continue;
        last = i;
        acc += q[i];
        if (u < acc) return i;
    }
    return last;
}

/* goodness of fit of counts[n] (total N) to p: bins with p > 0; a count where p == 0 fails outright */
static void check_fit(const char *name, const long *counts, const float *p, int n, long N) {
    double stat = 0;
    int df = -1;
    long impossible = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] <= 0) {
            impossible += counts[i];
            continue;
        }
        double e = (double)N * p[i];
        stat += (counts[i] - e) * (counts[i] - e) / e;
        df++;
    }
    CHECK(impossible == 0, "%s: %ld draws of tokens with p = 0", name, impossible);
    if (df > 0) CHECK(stat < chi2_crit(df), "%s: chi-square %.1f >= %.1f (df %d, alpha 1e-4)", name, stat, chi2_crit(df), df);
}

enum { NV = 8 };
#define SAMPLE_TEMP 1.0f            /* every token has a chance */
#define WSCALE 0.25f                /* random weights' std */
#define TWIN_TYPE HERD_TYPE_Q8_0    /* the draft: the target's weights in q8_0 */

static void check_accept_reject(void) {
    static const float P[][NV] = {
        {0.30f, 0.20f, 0.15f, 0.10f, 0.10f, 0.08f, 0.05f, 0.02f},
        {0.00f, 0.50f, 0.00f, 0.25f, 0.125f, 0.125f, 0.00f, 0.00f},
        {0.05f, 0.05f, 0.05f, 0.05f, 0.05f, 0.05f, 0.05f, 0.65f},
    };
    const long N = 200000;
    for (int pi = 0; pi < 3; pi++) {
        const float *p = P[pi];
        float qs[6][NV];
        const char *names[6] = {"one-hot at 0", "one-hot at 7", "uniform", "reversed p", "zero on half", "q == p"};
        for (int i = 0; i < NV; i++) {
            qs[0][i] = i == 0;
            qs[1][i] = i == 7;
            qs[2][i] = 1.0f / NV;
            qs[3][i] = P[pi][NV - 1 - i];
            qs[4][i] = i < NV / 2 ? 2.0f / NV : 0;
            qs[5][i] = p[i];
        }
        for (int qi = 0; qi < 6; qi++) {
            const float *q = qs[qi];
            long counts[NV] = {0}, acc = 0, bad = 0;
            double q_dot_p = 0; /* expected acceptance: sum_i min(p_i, q_i) */
            for (int i = 0; i < NV; i++) q_dot_p += fmin(p[i], q[i]);
            for (long t = 0; t < N; t++) {
                int32_t d = draw(q, NV);
                bool ok;
                /* one-hot drafts go through the q = NULL path, as prompt lookup does */
                int32_t out = spec_accept_reject(p, qi < 2 ? NULL : q, NV, d, unif(), unif(), &ok);
                if (out < 0 || out >= NV || (ok && out != d)) {
                    bad++;
                    continue;
                }
                counts[out]++;
                acc += ok;
            }
            CHECK(bad == 0, "%ld tokens out of range or accepted tokens other than the draft", bad);
            char name[96];
            snprintf(name, sizeof name, "p%d, q %s", pi, names[qi]);
            check_fit(name, counts, p, NV, N);
            /* the acceptance rate is sum min(p, q) (binomial sd <= 0.0012 at N = 200000) */
            CHECK(fabs((double)acc / N - q_dot_p) < 0.006, "%s: acceptance %.4f, expected %.4f", name, (double)acc / N,
                  q_dot_p);
        }
    }
}

/* sampler_dist is what herd_sampler_sample draws from */
static void check_sampler_dist(void) {
    enum { V = 300 };
    float logits[V], probs[V];
    for (int i = 0; i < V; i++) logits[i] = 3.0f * tu_sym();
    herd_sampler_params sp = herd_sampler_default_params(); /* top-k 40, top-p .95, min-p .05, temp .8 */
    sp.seed = 7;
    herd_sampler *s = herd_sampler_new(&sp, V);
    int64_t nc = sampler_dist(s, logits, probs);
    double sum = 0;
    int nz = 0;
    for (int i = 0; i < V; i++) {
        sum += probs[i];
        nz += probs[i] > 0;
    }
    CHECK(nc == nz && nc > 1 && nc <= 40, "candidates %lld, nonzero %d", (long long)nc, nz);
    CHECK(fabs(sum - 1) < 1e-5, "probabilities sum to %.7f", sum);
    long counts[V] = {0};
    const long N = 100000;
    for (long t = 0; t < N; t++) counts[herd_sampler_sample(s, logits)]++;
    check_fit("sampler_dist vs herd_sampler_sample", counts, probs, V, N);
    herd_sampler_free(s);
    sp.temp = 0;
    s = herd_sampler_new(&sp, V);
    sampler_dist(s, logits, probs);
    int32_t g = herd_sampler_sample(s, logits);
    CHECK(probs[g] == 1.0f, "greedy: dist is one-hot at the argmax %d", g);
    herd_sampler_free(s);
}

static void check_lookup(void) {
    int32_t out[16];
    const int32_t h1[] = {1, 2, 3, 4, 5, 9, 2, 3, 7, 8, 1, 2, 3};
    /* "2 3" occurs at 1 and 6; the tail "1 2 3" at 0 (longest first): followers 4 5 9 ... */
    int64_t k = spec_lookup(h1, 13, 3, 4, out);
    CHECK(k == 4 && out[0] == 4 && out[1] == 5 && out[2] == 9 && out[3] == 2, "3-gram lookup: k %lld", (long long)k);
    /* with n-grams of at most 2: the latest "2 3" is at 6 -> 7 8 1 2 3, capped at n_max */
    k = spec_lookup(h1, 13, 2, 3, out);
    CHECK(k == 3 && out[0] == 7 && out[1] == 8 && out[2] == 1, "2-gram lookup: k %lld", (long long)k);
    /* the text is not periodic with period 5 (4 5 9 2 3 / 7 8 1 2 3): only the 5 followers, not n_max */
    k = spec_lookup(h1, 13, 2, 8, out);
    CHECK(k == 5 && out[0] == 7 && out[4] == 3, "non-periodic lookup drafts its followers only: k %lld", (long long)k);
    const int32_t h2[] = {5, 6, 7, 8};
    CHECK(spec_lookup(h2, 4, 3, 8, out) == 0, "no recurring n-gram: no draft");
    const int32_t h3[] = {4, 4};
    k = spec_lookup(h3, 2, 3, 8, out);
    CHECK(k == 2 && out[0] == 4 && out[1] == 4, "a token seen twice drafts itself twice: k %lld", (long long)k);
    const int32_t h5[] = {9, 4, 4, 4, 4, 4};
    k = spec_lookup(h5, 6, 3, 8, out);
    CHECK(k == 5 && out[0] == 4 && out[4] == 4, "five repeats: five drafted (period 1, R 5): k %lld", (long long)k);
    /* a cycle: the tail "3 1 2" last occurred at 2, followed by 3 1 2 (to the end); the text ends in two
     * periods, so two are drafted: 3 1 2 3 1 2 */
    const int32_t h4[] = {1, 2, 3, 1, 2, 3, 1, 2};
    k = spec_lookup(h4, 8, 3, 7, out);
    CHECK(k == 6 && out[0] == 3 && out[1] == 1 && out[2] == 2 && out[3] == 3 && out[4] == 1 && out[5] == 2,
          "cycle lookup: k %lld", (long long)k);
    CHECK(spec_lookup(h3, 1, 3, 8, out) == 0, "one token: no draft");
}

static herd_model *make_model(const char *vocab, int type, uint64_t seed, const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s.gguf", g_dir, name);
    herd_synth_params p = {.vocab_path = vocab, .n_embd = 64, .n_layer = 2, .n_head = 4, .n_head_kv = 2,
                           .head_dim = 16, .n_ff = 96, .n_ctx_train = 512, .rope_theta = 10000, .norm_eps = 1e-5f,
                           .tied_output = false, .type = type, .output_type = -1, .weight_scale = WSCALE,
                           .seed = seed};
    CHECK(herd_synth_model(&p, path) == 0, "synth %s: %s", name, herd_last_error());
    herd_model *m = NULL;
    CHECK(herd_model_load(path, &m) == 0, "load %s: %s", name, herd_last_error());
    unlink(path);
    return m;
}

static herd_context *make_ctx(herd_model *m) {
    herd_context_params cp = herd_context_default_params();
    cp.n_ctx = 256;
    cp.n_threads = 1;
    cp.kv_type = HERD_KV_F32;
    herd_context *c = NULL;
    CHECK(herd_context_new(m, &cp, &c) == 0, "context: %s", herd_last_error());
    return c;
}

/* greedy tests: a prompt with a repeated phrase (prompt lookup has something to find) */
static const int32_t PROMPT0[] = {1, 40, 41, 42, 43, 44, 40, 41, 42, 50, 51, 40, 41};
/* sampling tests: BOS + the model's own greedy continuation of PROMPT0, so that the n-grams lookup
 * drafts from are ones the model likes (some drafts are accepted, most rejected: both paths run) */
static int32_t PROMPT[128];
static int64_t NPROMPT;

/* one generation; dc: draft context (cleared), lookup: n-gram length */
static void gen(herd_context *c, herd_context *dc, int lookup, int64_t draft_max, const herd_sampler_params *sp,
                int64_t n_predict, herd_generate_result *r) {
    const int32_t *prompt = NPROMPT ? PROMPT : PROMPT0;
    int64_t n_prompt = NPROMPT ? NPROMPT : (int64_t)(sizeof PROMPT0 / sizeof PROMPT0[0]);
    herd_context_truncate(c, 0);
    if (dc) herd_context_truncate(dc, 0);
    herd_sampler *s = herd_sampler_new(sp, herd_vocab_n_tokens(herd_context_model(c)));
    herd_generate_params gp = {.n_predict = n_predict, .draft = dc, .lookup_ngram = lookup, .draft_max = draft_max};
    CHECK(herd_generate(c, s, prompt, n_prompt, &gp, r) == 0, "generate: %s", herd_last_error());
    herd_sampler_free(s);
}

static void check_greedy(herd_model *target, herd_model *twin, herd_model *other) {
    herd_context *c = make_ctx(target), *ct = make_ctx(twin), *co = make_ctx(other);
    int64_t nv = herd_vocab_n_tokens(target);
    float *la = malloc(sizeof(float) * (size_t)nv), *lb = malloc(sizeof(float) * (size_t)nv);
    herd_sampler_params sp = herd_sampler_default_params();
    sp.temp = 0;
    sp.repeat_penalty = 1.3f; /* the penalty window must follow the accepted tokens */
    herd_generate_result plain;
    const int64_t n_predict = 60;
    gen(c, NULL, 0, 0, &sp, n_predict, &plain);
    int32_t next = 5;
    herd_decode(c, &next, 1, HERD_LOGITS_LAST, la); /* continuing after the generation */
    int64_t plain_past = herd_context_n_past(c) - 1;
    CHECK(plain.n_ids > 10, "plain greedy generated %lld tokens", (long long)plain.n_ids);
    PROMPT[0] = 1;
    for (int64_t i = 0; i < plain.n_ids && i < 60; i++) PROMPT[1 + i] = plain.ids[i];
    long acc_twin = 0, acc_other = 0, drafted_twin = 0;
    for (int mode = 0; mode < 3; mode++) {
        for (int64_t k = 1; k <= 16; k++) {
            herd_generate_result r;
            herd_context *dc = mode == 0 ? ct : mode == 1 ? co : NULL;
            gen(c, dc, mode == 2 ? 3 : 0, k, &sp, n_predict, &r);
            bool same = r.n_ids == plain.n_ids && memcmp(r.ids, plain.ids, (size_t)r.n_ids * sizeof(int32_t)) == 0 &&
                        r.stop_reason == plain.stop_reason;
            CHECK(same, "greedy, %s, draft-max %lld: ids differ from plain decoding",
                  mode == 0 ? "twin" : mode == 1 ? "other" : "lookup", (long long)k);
            CHECK(herd_context_n_past(c) == plain_past, "the cache holds %lld positions, plain %lld",
                  (long long)herd_context_n_past(c), (long long)plain_past);
            if (dc) CHECK(herd_context_n_past(dc) == plain_past, "the draft cache is left in step");
            herd_decode(c, &next, 1, HERD_LOGITS_LAST, lb);
            CHECK(memcmp(la, lb, sizeof(float) * (size_t)nv) == 0, "the cache left behind gives plain's logits");
            CHECK(r.n_accepted <= r.n_drafted, "accepted <= drafted");
            if (mode == 0) acc_twin += r.n_accepted, drafted_twin += r.n_drafted;
            if (mode == 1) acc_other += r.n_accepted;
            herd_generate_result_free(&r);
        }
    }
    printf("  greedy: twin accepted %ld of %ld drafted, unrelated model %ld\n", acc_twin, drafted_twin, acc_other);
    /* prompt lookup's proposal limit: SPEC_LOOKUP_START, +2 after a proposal taken whole, -1 (not below 1)
     * after one cut short; a draft model's proposals are not limited by it */
    {
        static const int32_t cyc[] = {7, 8, 7, 8, 7, 8, 7, 8, 7, 8, 7, 8, 7, 8, 7, 8, 7, 8, 7, 8, 7, 8};
        const int64_t ncyc = (int64_t)(sizeof cyc / sizeof cyc[0]);
        herd_generate_params gp = {.lookup_ngram = 3};
        herd_sampler_params gs = herd_sampler_default_params();
        spec_drafter *d;
        int32_t out[64];
        const float *q;
        CHECK(spec_drafter_new(c, &gp, &gs, false, 0, &d) == 0, "lookup drafter");
        int64_t k = spec_drafter_propose(d, cyc, ncyc, 64, out, &q);
        CHECK(k == SPEC_LOOKUP_START, "lookup's first proposal: %lld tokens, limit %d", (long long)k, SPEC_LOOKUP_START);
        spec_drafter_feedback(d, k, k);
        spec_drafter_feedback(d, k + 2, k + 2);
        k = spec_drafter_propose(d, cyc, ncyc, 64, out, &q);
        CHECK(k == SPEC_LOOKUP_START + 4, "after two proposals taken whole: %lld tokens", (long long)k);
        spec_drafter_feedback(d, k, k - 1);
        k = spec_drafter_propose(d, cyc, ncyc, 64, out, &q);
        CHECK(k == SPEC_LOOKUP_START + 3, "after one cut short: %lld tokens", (long long)k);
        for (int i = 0; i < 20; i++) spec_drafter_feedback(d, 3, 0);
        k = spec_drafter_propose(d, cyc, ncyc, 64, out, &q);
        CHECK(k == 1 && out[0] == 7, "never below one token: %lld", (long long)k);
        spec_drafter_feedback(d, 0, 0); /* no proposal: no change */
        CHECK(spec_drafter_propose(d, cyc, ncyc, 64, out, &q) == 1, "an empty proposal changes nothing");
        spec_drafter_free(d);
        /* bounds: never below --draft-min (shorter drafts are not verified: the limit would stick there),
         * never above --draft-max */
        gp.draft_min = 6, gp.draft_max = 9;
        CHECK(spec_drafter_new(c, &gp, &gs, false, 0, &d) == 0, "lookup drafter");
        CHECK(spec_drafter_propose(d, cyc, ncyc, 64, out, &q) == 6, "the first limit is raised to --draft-min");
        for (int i = 0; i < 20; i++) spec_drafter_feedback(d, 6, 0);
        CHECK(spec_drafter_propose(d, cyc, ncyc, 64, out, &q) == 6, "cut short, it stays at --draft-min");
        for (int i = 0; i < 20; i++) spec_drafter_feedback(d, 6, 6);
        CHECK(spec_drafter_propose(d, cyc, ncyc, 64, out, &q) == 9, "taken whole, it stops at --draft-max");
        spec_drafter_feedback(d, 9, 8);
        CHECK(spec_drafter_propose(d, cyc, ncyc, 64, out, &q) == 8, "and comes down at once");
        spec_drafter_free(d);
        CHECK(spec_lookup_next_max(4, 0, 0, 1, 16) == 4 && spec_lookup_next_max(1, 3, 0, 1, 16) == 1 &&
                  spec_lookup_next_max(15, 2, 2, 1, 16) == 16 && spec_lookup_next_max(5, 2, 2, 0, 0) == 1,
              "spec_lookup_next_max bounds");
    }
    CHECK(acc_twin > drafted_twin / 2, "the quantized twin agrees often (%ld of %ld)", acc_twin, drafted_twin);
    NPROMPT = 1 + (plain.n_ids < 60 ? plain.n_ids : 60);
    herd_generate_result_free(&plain);
    free(la);
    free(lb);
    herd_context_free(c);
    herd_context_free(ct);
    herd_context_free(co);
}

/* two-sample chi-square over the tokens at generated position pos (-1: ended before it) */
static void check_same_dist(const char *name, int32_t *a, int32_t *b, int n, int nv) {
    long *ca = calloc((size_t)nv + 1, sizeof(long)), *cb = calloc((size_t)nv + 1, sizeof(long));
    for (int i = 0; i < n; i++) {
        ca[a[i] + 1]++;
        cb[b[i] + 1]++;
    }
    /* bins with at least 10 draws in all, the rest pooled */
    double stat = 0;
    long pa = 0, pb = 0;
    int bins = 0;
    for (int i = 0; i <= nv; i++) {
        if (ca[i] + cb[i] >= 10) {
            stat += (double)(ca[i] - cb[i]) * (ca[i] - cb[i]) / (double)(ca[i] + cb[i]);
            bins++;
        } else {
            pa += ca[i];
            pb += cb[i];
        }
    }
    if (pa + pb > 0) {
        stat += (double)(pa - pb) * (pa - pb) / (double)(pa + pb);
        bins++;
    }
    if (bins > 1)
        CHECK(stat < chi2_crit(bins - 1), "%s: chi-square %.1f >= %.1f (df %d, alpha 1e-4)", name, stat,
              chi2_crit(bins - 1), bins - 1);
    printf("  %s: %d bins, chi-square %.1f (critical %.1f)\n", name, bins, stat, chi2_crit(bins > 1 ? bins - 1 : 1));
    free(ca);
    free(cb);
}

static void check_sampling(herd_model *target, herd_model *twin) {
    enum { S = 1000, NP = 4 };
    herd_context *c = make_ctx(target), *ct = make_ctx(twin);
    int nv = herd_vocab_n_tokens(target);
    herd_sampler_params sp = herd_sampler_default_params();
    sp.temp = SAMPLE_TEMP;
    sp.top_k = 0;
    sp.top_p = 1.0f;
    sp.min_p = 0;
    int32_t *tok[3];
    for (int m = 0; m < 3; m++) tok[m] = malloc(sizeof(int32_t) * S * NP);
    long drafted[3] = {0}, accepted[3] = {0};
    for (int m = 0; m < 3; m++) { /* 0 plain, 1 twin draft, 2 lookup */
        for (int i = 0; i < S; i++) {
            sp.seed = 1000003ull * (uint64_t)(m + 1) + (uint64_t)i;
            herd_generate_result r;
            gen(c, m == 1 ? ct : NULL, m == 2 ? 2 : 0, 4, &sp, NP, &r);
            for (int j = 0; j < NP; j++) tok[m][j * S + i] = j < r.n_ids ? r.ids[j] : -1;
            drafted[m] += r.n_drafted;
            accepted[m] += r.n_accepted;
            herd_generate_result_free(&r);
        }
    }
    printf("  sampling: twin accepted %ld of %ld drafted, lookup %ld of %ld\n", accepted[1], drafted[1], accepted[2],
           drafted[2]);
    CHECK(drafted[1] > S && drafted[2] > S / 4, "drafts were verified (twin %ld, lookup %ld)", drafted[1], drafted[2]);
    CHECK(accepted[1] < drafted[1] && accepted[2] < drafted[2], "some drafts were rejected");
    for (int j = 1; j < NP; j++) { /* position 0 is sampled plainly in both */
        char name[64];
        snprintf(name, sizeof name, "token %d, twin draft vs plain", j);
        check_same_dist(name, tok[0] + j * S, tok[1] + j * S, S, nv);
        snprintf(name, sizeof name, "token %d, lookup vs plain", j);
        check_same_dist(name, tok[0] + j * S, tok[2] + j * S, S, nv);
    }
    for (int m = 0; m < 3; m++) free(tok[m]);
    herd_context_free(c);
    herd_context_free(ct);
}

/* vocabularies that differ: refused by herd_vocab_compatible (naming the token) and by generate */
static void check_mismatch(herd_model *target) {
    char path[512];
    snprintf(path, sizeof path, "%s/vocab2.gguf", g_dir);
    write_vocab_variant(path, 1);
    CHECK(herd_vocab_compatible(target, target) == 0, "a model is compatible with itself");
    herd_model *m = make_model(path, HERD_TYPE_F32, 3, "v2");
    unlink(path);
    if (!m) return;
    CHECK(herd_vocab_compatible(target, m) == HERD_E_ARG && strstr(herd_last_error(), "token 264"),
          "a different token 264 is refused: %s", herd_last_error());
    herd_model_free(m);
}

int main(void) {
    tu_rng = 0x5bec0de5bec0de5ull;
    check_accept_reject();
    check_sampler_dist();
    check_lookup();

    snprintf(g_dir, sizeof g_dir, "%s/herd-test-spec-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(g_dir)) return 1;
    char vocab[512];
    snprintf(vocab, sizeof vocab, "%s/vocab.gguf", g_dir);
    write_vocab_variant(vocab, 0);
    herd_model *target = make_model(vocab, HERD_TYPE_F32, 3, "target");
    herd_model *twin = make_model(vocab, TWIN_TYPE, 3, "twin");
    herd_model *other = make_model(vocab, HERD_TYPE_F32, 4, "other");
    if (target && twin && other) {
        check_greedy(target, twin, other);
        check_sampling(target, twin);
        check_mismatch(target);
    }
    herd_model_free(target);
    herd_model_free(twin);
    herd_model_free(other);
    unlink(vocab);
    rmdir(g_dir);
    return TU_DONE("test_spec");
}
