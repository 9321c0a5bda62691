/* src/sdg without a model:
 *  - MinHash: the estimate of the Jaccard similarity of two texts' word 3-shingle sets is within
 *    4 standard errors (sqrt(J(1-J)/128)) + 0.02 of the true value, computed here by brute force over the
 *    shingle sets, for random pairs from identical to disjoint; the index refuses exact duplicates (also
 *    after case and whitespace changes) with 1, near duplicates (J >= threshold) with 2, and keeps
 *    texts under the threshold; short texts (< 3 words) are one shingle;
 *  - the judge's score from a complete answer and from one cut short (only when the number has ended);
 *  - seed lines: prompts, messages, documents, ids, and the refusals. */
#include <stdio.h>
#include <string.h>

#include "sdg/minhash.h"
#include "sdg/sdg.h"
#include "sdg/seeds.h"
#include "testutil.h"

#define NW 64 /* vocabulary of the random texts */
static const char *word(int i) {
    static char w[NW][12];
    if (!w[i][0]) snprintf(w[i], sizeof w[i], "w%dx", i);
    return w[i];
}

/* true Jaccard of the 3-shingle sets of word-index arrays a (na) and b (nb) */
static double true_jaccard(const int *a, int na, const int *b, int nb) {
    int ns_a = na - 2, ns_b = nb - 2, inter = 0, uni = 0;
    /* distinct shingles of a, then b: O(n^2) is fine for the test's sizes */
    int64_t *sa = malloc(sizeof *sa * (size_t)ns_a), *sb = malloc(sizeof *sb * (size_t)ns_b);
    for (int i = 0; i < ns_a; i++) sa[i] = ((int64_t)a[i] * NW + a[i + 1]) * NW + a[i + 2];
    for (int i = 0; i < ns_b; i++) sb[i] = ((int64_t)b[i] * NW + b[i + 1]) * NW + b[i + 2];
    for (int i = 0; i < ns_a; i++) {
        bool dup = false;
        for (int j = 0; j < i && !dup; j++) dup = sa[j] == sa[i];
        if (dup) continue;
        uni++;
        bool in = false;
        for (int j = 0; j < ns_b && !in; j++) in = sb[j] == sa[i];
        inter += in;
    }
    for (int i = 0; i < ns_b; i++) {
        bool dup = false;
        for (int j = 0; j < i && !dup; j++) dup = sb[j] == sb[i];
        if (dup) continue;
        bool in = false;
        for (int j = 0; j < ns_a && !in; j++) in = sa[j] == sb[i];
        uni += !in;
    }
    free(sa), free(sb);
    return uni ? (double)inter / uni : 1;
}

static void render(const int *w, int n, char *out, bool shout) {
    out[0] = 0;
    for (int i = 0; i < n; i++) {
        strcat(out, i ? (i % 7 ? " " : "\n\t ") : "");
        char t[16];
        snprintf(t, sizeof t, "%s", word(w[i]));
        if (shout)
            for (char *p = t; *p; p++) *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
        strcat(out, t);
    }
}

int main(void) {
    tu_rng = 15;
    static char ta[8192], tb[8192];
    int a[200], b[200];
    double worst = 0;
    for (int trial = 0; trial < 200; trial++) {
        int n = 40 + (int)(tu_u64() % 120);
        for (int i = 0; i < n; i++) a[i] = (int)(tu_u64() % NW);
        /* b: a with a fraction of its words replaced (0 .. all) */
        int changes =
            (int)(tu_u64() % (unsigned)(n + 1)) * (trial % 4 == 0 ? 1 : 0) + (trial % 4 ? trial % 13 : 0);
        memcpy(b, a, sizeof(int) * (size_t)n);
        for (int c = 0; c < changes; c++) b[tu_u64() % (unsigned)n] = (int)(tu_u64() % NW);
        render(a, n, ta, false), render(b, n, tb, trial % 2);
        sdg_minhash ha, hb;
        sdg_minhash_compute(ta, strlen(ta), &ha), sdg_minhash_compute(tb, strlen(tb), &hb);
        double J = true_jaccard(a, n, b, n), est = sdg_minhash_jaccard(&ha, &hb);
        double tol = 4 * sqrt(J * (1 - J) / SDG_MINHASH_N) + 0.02;
        CHECK(fabs(est - J) <= tol, "trial %d: estimate %.3f, true Jaccard %.3f (tolerance %.3f)", trial, est,
              J, tol);
        if (fabs(est - J) > worst) worst = fabs(est - J);
        if (changes == 0)
            CHECK(ha.exact == hb.exact, "trial %d: case and whitespace changed the exact hash", trial);
    }
    printf("minhash: worst |estimate - Jaccard| over 200 pairs %.3f\n", worst);

    /* the index */
    sdg_minhash_index ix;
    sdg_minhash_index_init(&ix, 0.8);
    int n = 150;
    for (int i = 0; i < n; i++) a[i] = (int)(tu_u64() % NW);
    render(a, n, ta, false);
    double sim;
    CHECK(sdg_minhash_index_add(&ix, ta, strlen(ta), &sim) == 0, "a first text is new");
    CHECK(sdg_minhash_index_add(&ix, ta, strlen(ta), &sim) == 1 && sim == 1,
          "the same text is an exact duplicate");
    render(a, n, tb, true);
    CHECK(sdg_minhash_index_add(&ix, tb, strlen(tb), NULL) == 1,
          "case and spacing changes are exact duplicates");
    memcpy(b, a, sizeof(int) * (size_t)n);
    b[75] = (b[75] + 1) % NW; /* one word: 3 of 148 shingles differ, J ~ 0.96 */
    render(b, n, tb, false);
    CHECK(sdg_minhash_index_add(&ix, tb, strlen(tb), &sim) == 2,
          "one word changed is a near duplicate (est %.3f)", sim);
    memcpy(b, a, sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i += 3) b[i] = (b[i] + 1) % NW; /* every third word: no shingle survives */
    render(b, n, tb, false);
    CHECK(sdg_minhash_index_add(&ix, tb, strlen(tb), &sim) == 0,
          "a third of the words changed is new (est %.3f)", sim);
    CHECK(ix.n == 2, "the index holds the 2 new texts, has %lld", (long long)ix.n);
    CHECK(sdg_minhash_index_add(&ix, "hello world", 11, NULL) == 0, "a short text is new");
    CHECK(sdg_minhash_index_add(&ix, "  HELLO\nworld ", 14, NULL) == 1, "and its variant an exact duplicate");
    CHECK(sdg_minhash_index_add(&ix, "hello there", 11, NULL) == 0, "another short text is new");
    CHECK(sdg_minhash_index_add(&ix, "", 0, NULL) == 0 && sdg_minhash_index_add(&ix, " \n", 2, NULL) == 1,
          "the empty text once");
    sdg_minhash_index_free(&ix);
    /* exact-only index: a near duplicate passes */
    sdg_minhash_index_init(&ix, 2.0);
    render(a, n, ta, false);
    b[0] = a[0];
    memcpy(b, a, sizeof(int) * (size_t)n);
    b[75] = (b[75] + 1) % NW;
    render(b, n, tb, false);
    CHECK(sdg_minhash_index_add(&ix, ta, strlen(ta), NULL) == 0 &&
              sdg_minhash_index_add(&ix, tb, strlen(tb), NULL) == 0,
          "threshold > 1: near duplicates are kept");
    sdg_minhash_index_free(&ix);

    /* the judge's score */
    char *reason;
    const char *full = "{\"score\": 7, \"reason\": \"clear and correct\"}";
    CHECK(sdg_judge_score(full, strlen(full), &reason) == 7 && reason && !strcmp(reason, "clear and correct"),
          "complete answer");
    free(reason);
    const char *cut[] = {"{\"score\": 10, \"reas", "{\n  \"score\":3 ", "{\"score\":9,"};
    int want[] = {10, 3, 9};
    for (int i = 0; i < 3; i++) {
        CHECK(sdg_judge_score(cut[i], strlen(cut[i]), &reason) == want[i] && !reason, "cut answer '%s'",
              cut[i]);
        free(reason);
    }
    const char *none[] = {"",
                          "{",
                          "{\"score\": 1",
                          "{\"score\": 11}",
                          "{\"reason\": \"x\", \"score\": 0}",
                          "[7]",
                          "{\"score\": \"7\"}",
                          "{\"scor"};
    for (int i = 0; i < 8; i++)
        CHECK(sdg_judge_score(none[i], strlen(none[i]), NULL) == 0, "no score in '%s'", none[i]);

    /* seed lines */
    sdg_seed s;
    char msg[256];
    const char *okl[] = {
        "\"What is 2+2?\"", "{\"prompt\": \"hi\", \"id\": \"q1\"}", "{\"id\": 7, \"document\": \"text\"}",
        "{\"messages\": [{\"role\": \"system\", \"content\": \"be brief\"}, {\"role\": \"user\", "
        "\"content\": \"hi\"}]}"};
    for (int i = 0; i < 4; i++) {
        CHECK(sdg_seed_parse_line(okl[i], strlen(okl[i]), &s, msg, sizeof msg) == 0, "'%s': %s", okl[i], msg);
        CHECK((s.messages != NULL) != (s.document != NULL), "'%s': one of messages / document", okl[i]);
        if (i == 1) CHECK(s.id && !strcmp(s.id, "q1"), "id q1");
        if (i == 2) CHECK(s.id && !strcmp(s.id, "7"), "integer id");
        free(s.id), free(s.messages), free(s.document);
    }
    const char *bad[] = {"",
                         "{",
                         "[1]",
                         "\"\"",
                         "{\"prompt\": \"\"}",
                         "{\"prompt\": 3}",
                         "{\"promt\": \"x\"}",
                         "{\"prompt\": \"a\", \"document\": \"b\"}",
                         "{\"id\": \"\", \"prompt\": \"x\"}",
                         "{\"messages\": []}",
                         "{\"messages\": [{\"role\": \"assistant\", \"content\": \"x\"}]}",
                         "{\"messages\": [{\"role\": \"user\", \"content\": 1}]}",
                         "{\"prompt\": \"a\", \"prompt\": \"b\"}",
                         "{\"id\": {}, \"prompt\": \"x\"}",
                         "{}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        msg[0] = 0;
        CHECK(sdg_seed_parse_line(bad[i], strlen(bad[i]), &s, msg, sizeof msg) == -1 && msg[0] && !s.id &&
                  !s.messages,
              "'%s' refused", bad[i]);
    }
    return TU_DONE("test_sdg");
}
