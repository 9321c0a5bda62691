/* MinHash over word shingles (minhash.h). */
#include "minhash.h"

#include <stdlib.h>
#include <string.h>

#include "../base/log.h"

/* splitmix64's finalizer: a cheap, well-mixed 64-bit hash step */
static uint64_t mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static bool is_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* FNV-1a of one word, lowercased (ASCII) */
static uint64_t word_hash(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 'A' && c <= 'Z') c = (unsigned char)(c - 'A' + 'a');
        h = (h ^ c) * 0x100000001b3ull;
    }
    return h;
}

static void take(sdg_minhash *out, uint64_t shingle) {
    /* hash function i: mix(shingle ^ seed_i), seeds from a fixed sequence */
    for (int i = 0; i < SDG_MINHASH_N; i++) {
        uint64_t h = mix(shingle ^ (0x5851f42d4c957f2dull * (uint64_t)(i + 1)));
        if (h < out->min[i]) out->min[i] = h;
    }
}

void sdg_minhash_compute(const char *text, size_t len, sdg_minhash *out) {
    for (int i = 0; i < SDG_MINHASH_N; i++) out->min[i] = UINT64_MAX;
    uint64_t win[SDG_SHINGLE_WORDS]; /* the last words' hashes, a ring */
    int64_t n_words = 0;
    uint64_t exact = 0x84222325cbf29ce4ull;
    size_t i = 0;
    while (i < len) {
        while (i < len && is_space((unsigned char)text[i])) i++;
        size_t a = i;
        while (i < len && !is_space((unsigned char)text[i])) i++;
        if (i == a) break;
        uint64_t w = word_hash(text + a, i - a);
        exact = mix(exact ^ w);
        win[n_words % SDG_SHINGLE_WORDS] = w;
        n_words++;
        if (n_words >= SDG_SHINGLE_WORDS) {
            uint64_t s = 0;
            for (int k = SDG_SHINGLE_WORDS; k >= 1; k--) s = mix(s ^ win[(n_words - k) % SDG_SHINGLE_WORDS]);
            take(out, s);
        }
    }
    if (n_words > 0 && n_words < SDG_SHINGLE_WORDS) { /* a short text: one shingle of all its words */
        uint64_t s = 0;
        for (int64_t k = 0; k < n_words; k++) s = mix(s ^ win[k]);
        take(out, s);
    }
    out->exact = mix(exact ^ (uint64_t)n_words);
}

double sdg_minhash_jaccard(const sdg_minhash *a, const sdg_minhash *b) {
    int eq = 0;
    for (int i = 0; i < SDG_MINHASH_N; i++) eq += a->min[i] == b->min[i];
    return (double)eq / SDG_MINHASH_N;
}

void sdg_minhash_index_init(sdg_minhash_index *ix, double threshold) {
    memset(ix, 0, sizeof *ix);
    ix->threshold = threshold;
}

void sdg_minhash_index_free(sdg_minhash_index *ix) {
    free(ix->sig);
    memset(ix, 0, sizeof *ix);
}

int sdg_minhash_index_add(sdg_minhash_index *ix, const char *text, size_t len, double *similar) {
    sdg_minhash s;
    sdg_minhash_compute(text, len, &s);
    double best = 0;
    int verdict = 0;
    for (int64_t i = 0; i < ix->n && verdict != 1; i++) {
        if (ix->sig[i].exact == s.exact) {
            verdict = 1, best = 1;
            break;
        }
        double j = sdg_minhash_jaccard(&ix->sig[i], &s);
        if (j > best) best = j;
        if (j >= ix->threshold) verdict = 2;
    }
    if (similar) *similar = best;
    if (verdict) return verdict;
    if (ix->n == ix->cap) {
        ix->cap = ix->cap ? 2 * ix->cap : 64;
        ix->sig = herd_xrealloc(ix->sig, (size_t)ix->cap * sizeof *ix->sig);
    }
    ix->sig[ix->n++] = s;
    return 0;
}
