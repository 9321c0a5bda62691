/* Speculative decoding: draft proposal, verification, accept/reject (issue 16, part 3).
 *
 * A drafter proposes k tokens that continue the text: a draft model (a second, smaller or cheaper
 * model with the same vocabulary, in its own herd_context) or prompt lookup (the tokens that followed
 * the latest earlier occurrence of the text's last n-gram; no model). The target then runs
 * [pending, d_1 .. d_k] in ONE forward pass (herd_decode with HERD_LOGITS_ALL: k + 1 rows) and
 * checks the drafts in order against its rows (src/api/generate.c runs the loop):
 *
 *   greedy:   d_j is accepted iff it is the target's argmax (after the sampler's penalty and
 *             constraint), else the argmax replaces it: the output is the plain greedy output, token
 *             for token (the forward is batch-invariant: a row does not depend on the batch size).
 *   sampling: p = the target's distribution after the whole sampler chain, q = the draft's (one-hot
 *             for lookup and for a greedy draft); d_j is accepted with probability min(1, p/q), on
 *             reject one token is drawn from norm(max(0, p - q)) and the rest are dropped. The emitted
 *             token then has exactly the distribution p (Leviathan et al. 2023, Chen et al. 2023).
 *
 * After a reject the target's KV cache is cut back to the accepted length (herd_context_truncate);
 * the draft's cache is cut back to the prefix it shares with the accepted text at its next proposal. */
#ifndef HERD_SPEC_H
#define HERD_SPEC_H

#include <stdbool.h>
#include <stdint.h>

#include "herd.h"

/* ---- accept / reject (pure functions over distributions; tests/unit/test_spec.c) ------------- */

/* Decides on drafted token tok with target distribution p[n] and draft distribution q[n] (NULL: q is
 * one-hot at tok). u1, u2: independent uniform draws in [0, 1). Returns tok when accepted
 * (u1 < p[tok] / q[tok]); otherwise a token drawn with u2 from norm(max(0, p - q)) (q NULL: p without
 * tok). *accepted tells which. When the residual is empty (p <= q everywhere, so p == q and a reject
 * is impossible in exact arithmetic) the draw is from p. */
int32_t spec_accept_reject(const float *p, const float *q, int64_t n, int32_t tok, double u1, double u2,
                           bool *accepted);

/* ---- prompt lookup ------------------------------------------------------------------------------- */

/* Prompt-lookup drafting: for m = ngram_max down to 1, finds the latest earlier occurrence (at i) of the
 * last m tokens of hist[0..n) and copies the L = n - (i + m) tokens that followed it into out, at most
 * n_max; when hist ends in R >= 2 repeats of those L tokens, the copy continues through out itself (the
 * cycle goes on) to R * L tokens, at most n_max. Returns the number drafted (0: no m-gram recurs).
 * O(n * ngram_max). */
int64_t spec_lookup(const int32_t *hist, int64_t n, int ngram_max, int64_t n_max, int32_t *out);

/* ---- drafter ------------------------------------------------------------------------------------- */

typedef struct spec_drafter spec_drafter;

/* A drafter for generation in target context c, whose KV cache holds n0 positions when generation
 * starts; hist (positions n0..) is passed to each proposal. With a draft context (p->draft), its first
 * n0 positions must hold the same tokens as c's (herd_generate leaves both so). sampling: draft tokens
 * are drawn from the draft's own distribution under samp (no penalty, no constraint), else its argmax.
 * HERD_E_ARG when the vocabularies' sizes differ. OUT: *out. */
int spec_drafter_new(herd_context *c, const herd_generate_params *p, const herd_sampler_params *samp, bool sampling,
                     int64_t n0, spec_drafter **out);
void spec_drafter_free(spec_drafter *d);
/* Proposes up to n_max tokens continuing hist[0..n) (the text after position n0, the last token not
 * yet in the target's cache). OUT: draft[0..k), and for a sampling draft model the draft's
 * distribution of each, *q = k rows of n_vocab (owned by the drafter, valid until the next call;
 * NULL: one-hot). Returns k (0: no proposal), or a negative status if the draft's decode failed. */
int64_t spec_drafter_propose(spec_drafter *d, const int32_t *hist, int64_t n, int64_t n_max, int32_t *draft,
                             const float **q);
/* What became of the last proposal: k drafted, `accepted` of them taken. Prompt lookup sizes its next
 * proposals by it (the schedule of transformers' assisted generation, "heuristic"): a limit that starts
 * at SPEC_LOOKUP_START tokens, grows by 2 after a proposal taken whole and shrinks by 1 (not below 1)
 * after one cut short, so a text whose repeats keep holding drafts long and one whose repeats break
 * drafts short (each drafted token costs a share of a decode step to verify, accepted or not). A draft
 * model ignores it (its own probabilities stop it: --draft-p-min). */
#define SPEC_LOOKUP_START 4
void spec_drafter_feedback(spec_drafter *d, int64_t k, int64_t accepted);
/* That schedule: the limit after a proposal of k tokens (k > 0) of which `accepted` were taken, from cur,
 * kept within [lo, hi] (lo: the shortest draft that is verified at all, --draft-min, so that the limit
 * never falls where every proposal is dropped; hi: --draft-max, so that a long run of whole acceptances
 * does not leave it far above what can be proposed). The server's slots keep one each. */
int64_t spec_lookup_next_max(int64_t cur, int64_t k, int64_t accepted, int64_t lo, int64_t hi);
/* Leaves the draft context holding exactly the n0 + n positions of hist[0..n) (after generation, so
 * that the next herd_generate on the same pair starts in step). */
int spec_drafter_sync(spec_drafter *d, const int32_t *hist, int64_t n);

#endif
