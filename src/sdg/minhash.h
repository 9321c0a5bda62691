/* Near-duplicate detection for herd sdg: MinHash signatures over word shingles.
 *
 * A text's shingles are its word 3-grams (words: maximal runs of letters/digits/other non-space bytes,
 * ASCII lowercased; a text of fewer than 3 words is one shingle of all its words). Each of
 * SDG_MINHASH_N hash functions keeps the minimum over the shingles, so the fraction of equal slots of
 * two signatures estimates the Jaccard similarity |A ∩ B| / |A ∪ B| of the shingle sets (standard
 * error ≈ sqrt(J(1-J)/N), ±0.035 at J = 0.8 with N = 128).
 *
 * The index holds the kept texts: sdg_minhash_index_add refuses a text whose normalized form (words
 * lowercased, joined by one space) equals a kept one exactly (hash compare), or whose estimated
 * Jaccard similarity to a kept one is >= the threshold. The lookup is a linear scan over the kept
 * signatures (N words each): fine for the tens of thousands of examples an sdg run keeps. */
#ifndef HERD_SDG_MINHASH_H
#define HERD_SDG_MINHASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SDG_MINHASH_N 128
#define SDG_SHINGLE_WORDS 3

typedef struct {
    uint64_t exact;              /* hash of the normalized text */
    uint64_t min[SDG_MINHASH_N]; /* per hash function, the minimum over the shingles (all ones: no words) */
} sdg_minhash;

/* Signature of len bytes of text. */
void sdg_minhash_compute(const char *text, size_t len, sdg_minhash *out);
/* Estimated Jaccard similarity of the two shingle sets, in [0, 1] (two empty texts: 1). */
double sdg_minhash_jaccard(const sdg_minhash *a, const sdg_minhash *b);

typedef struct {
    sdg_minhash *sig; /* n kept signatures (owned) */
    int64_t n, cap;
    double threshold; /* near duplicate: estimated Jaccard >= threshold; > 1: exact duplicates only */
} sdg_minhash_index;

void sdg_minhash_index_init(sdg_minhash_index *ix, double threshold);
void sdg_minhash_index_free(sdg_minhash_index *ix);
/* Returns 0 and keeps the text when it is new; 1 (not kept) for an exact duplicate of a kept text, 2 for
 * a near duplicate; *similar (may be NULL) gets the highest estimated similarity seen. */
int sdg_minhash_index_add(sdg_minhash_index *ix, const char *text, size_t len, double *similar);

#endif
