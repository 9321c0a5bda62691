/* The server's prefix cache (src/engine/prefix_cache.h), randomized against a naive model:
 *   - with an unbounded budget, match gives exactly the longest whole-block prefix shared with any
 *     sequence ever inserted (the naive model: a list of all inserted sequences), per namespace;
 *   - with a small budget, match never claims more than the naive model, every block it returns
 *     holds the data filled for exactly that prefix (data = a hash of namespace and all tokens up to
 *     the block's end, so a block reached by a wrong path is caught), the structural invariants
 *     (prefix_cache_check: links, LRU order parent-before-child, byte count <= budget) hold after
 *     every operation, and LRU keeps what was used last: a sequence just inserted survives the
 *     insert of another when both fit together;
 *   - fill is called only for blocks that were missing. */
#include "engine/prefix_cache.h"
#include "testutil.h"

#define BB 24 /* block bytes */

typedef struct {
    int ns;
    const int32_t *tok;
    int64_t fills;
} fill_ctx;

static void expect_block(int ns, const int32_t *tok, int64_t block, int64_t B, uint8_t *out) {
    uint64_t h = 1469598103934665603ull ^ (uint64_t)ns;
    for (int64_t i = 0; i < (block + 1) * B; i++) h = (h ^ (uint32_t)tok[i]) * 1099511628211ull;
    for (int i = 0; i < BB; i++) {
        h = h * 6364136223846793005ull + 1442695040888963407ull;
        out[i] = (uint8_t)(h >> 56);
    }
}

static void fill(void *user, int64_t block, void *dst) {
    fill_ctx *f = user;
    f->fills++;
    expect_block(f->ns, f->tok, block, 4, dst);
}

typedef struct {
    int ns;
    int32_t tok[64];
    int64_t n;
} seq;

static int64_t naive_match(const seq *all, int n_all, int ns, const int32_t *t, int64_t n, int64_t B) {
    int64_t best = 0;
    for (int i = 0; i < n_all; i++) {
        if (all[i].ns != ns) continue;
        int64_t l = 0;
        while (l < n && l < all[i].n && t[l] == all[i].tok[l]) l++;
        if (l / B > best) best = l / B;
    }
    return best;
}

static void random_seq(seq *s, const seq *all, int n_all) {
    s->ns = (int)(tu_u64() % 2);
    int64_t keep = 0;
    if (n_all > 0 && tu_u64() % 4 != 0) { /* extend a prefix of an earlier one: shared prefixes */
        const seq *o = &all[tu_u64() % (uint64_t)n_all];
        s->ns = o->ns;
        keep = (int64_t)(tu_u64() % (uint64_t)(o->n + 1));
        memcpy(s->tok, o->tok, (size_t)keep * sizeof *s->tok);
    }
    s->n = keep + (int64_t)(tu_u64() % (uint64_t)(64 - keep + 1));
    for (int64_t i = keep; i < s->n; i++) s->tok[i] = (int32_t)(tu_u64() % 3);
}

static void run(uint64_t budget_blocks, int iters) {
    const int64_t B = 4;
    prefix_cache *pc = prefix_cache_new(B, BB, budget_blocks * BB);
    seq *all = calloc((size_t)iters, sizeof *all);
    int n_all = 0, bad_data = 0, bad_inv = 0, over = 0, unbounded_mismatch = 0, fills_wrong = 0, lru_lost = 0;
    const void *blocks[16];
    for (int it = 0; it < iters; it++) {
        seq q;
        random_seq(&q, all, n_all);
        if (tu_u64() % 2) { /* match */
            int64_t m = prefix_cache_match(pc, q.ns, q.tok, q.n, blocks, 16);
            int64_t want = naive_match(all, n_all, q.ns, q.tok, q.n, B);
            if (m > want) over++;
            if (budget_blocks >= 1000000 && m != want) unbounded_mismatch++;
            for (int64_t i = 0; i < m; i++) {
                uint8_t e[BB];
                expect_block(q.ns, q.tok, i, B, e);
                if (memcmp(e, blocks[i], BB)) bad_data++;
            }
        } else { /* insert, then it must match in full when it fits */
            int64_t had = prefix_cache_match(pc, q.ns, q.tok, q.n, blocks, 16);
            fill_ctx f = {.ns = q.ns, .tok = q.tok};
            int64_t k = prefix_cache_insert(pc, q.ns, q.tok, q.n, fill, &f);
            int64_t nb = q.n / B;
            if ((uint64_t)nb <= budget_blocks && k != nb) lru_lost++;
            if (f.fills != (k > had ? k - had : 0)) fills_wrong++;
            all[n_all++] = q;
            /* LRU: insert another sequence that fits together with q; q must survive it */
            seq r;
            random_seq(&r, all, n_all);
            if ((uint64_t)(nb + r.n / B) <= budget_blocks) {
                fill_ctx g = {.ns = r.ns, .tok = r.tok};
                prefix_cache_insert(pc, r.ns, r.tok, r.n, fill, &g);
                all[n_all - 1] = q; /* r is not recorded in the naive model: it may only add */
                if (prefix_cache_match(pc, q.ns, q.tok, q.n, blocks, 16) != nb) lru_lost++;
                /* r's blocks are now in the cache but not in the naive model: record it too */
                all = realloc(all, (size_t)(iters + n_all + 1) * sizeof *all);
                all[n_all++] = r;
            }
        }
        if (prefix_cache_check(pc)) bad_inv++;
    }
    prefix_cache_stats st;
    prefix_cache_get_stats(pc, &st);
    CHECK(bad_inv == 0, "budget %llu blocks: invariants broken %d times (first code %d)",
          (unsigned long long)budget_blocks, bad_inv, prefix_cache_check(pc));
    CHECK(over == 0, "budget %llu: match claimed more than was ever inserted %d times",
          (unsigned long long)budget_blocks, over);
    CHECK(bad_data == 0, "budget %llu: %d blocks held another prefix's data",
          (unsigned long long)budget_blocks, bad_data);
    CHECK(unbounded_mismatch == 0, "unbounded: %d matches differ from the naive model", unbounded_mismatch);
    CHECK(fills_wrong == 0, "budget %llu: fill called for present blocks %d times",
          (unsigned long long)budget_blocks, fills_wrong);
    CHECK(lru_lost == 0, "budget %llu: the most recent sequence was evicted %d times",
          (unsigned long long)budget_blocks, lru_lost);
    CHECK(st.bytes <= budget_blocks * BB, "bytes %llu over the budget", (unsigned long long)st.bytes);
    if (budget_blocks > 0 && budget_blocks < 1000)
        CHECK(st.evictions > 0, "budget %llu: nothing was evicted", (unsigned long long)budget_blocks);
    printf("  budget %llu blocks: %lld held, %llu inserted, %llu evicted\n",
           (unsigned long long)budget_blocks, (long long)st.n_blocks, (unsigned long long)st.inserted,
           (unsigned long long)st.evictions);
    prefix_cache_free(pc);
    free(all);
}

int main(void) {
    tu_rng = 0x5eedcace;
    run(1000000, 1500); /* unbounded */
    run(40, 3000);
    run(16, 3000);
    run(3, 1000);
    run(0, 200); /* caches nothing */

    /* a budget of zero caches nothing; a block that is not whole is not cached */
    prefix_cache *pc = prefix_cache_new(4, BB, 10 * BB);
    int32_t t[7] = {1, 2, 3, 4, 5, 6, 7};
    fill_ctx f = {.ns = 0, .tok = t};
    CHECK(prefix_cache_insert(pc, 0, t, 7, fill, &f) == 1, "7 tokens are one whole block of 4");
    const void *b[2];
    CHECK(prefix_cache_match(pc, 0, t, 3, b, 2) == 0, "3 tokens match no whole block");
    CHECK(prefix_cache_match(pc, 1, t, 7, b, 2) == 0, "another namespace shares nothing");
    CHECK(prefix_cache_match(pc, 0, t, 7, b, 2) == 1, "the block matches");
    prefix_cache_free(pc);
    CHECK(prefix_cache_new(0, 1, 1) == NULL, "block of 0 tokens refused");
    return TU_DONE("test_prefix_cache");
}
