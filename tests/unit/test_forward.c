/* Forward pass and generation invariants on small random models (every weight type):
 *  - a batch of tokens gives bit-identical logits to feeding them one by one, whatever n_batch and
 *    thread count, with an f32 and an f16 KV cache (each output is one dot kernel call on the same
 *    bytes, attention's arithmetic per query does not depend on its tile: batch invariance);
 *  - truncating the KV cache and re-decoding reproduces the same logits;
 *  - an f16 KV cache stays close to the f32 one;
 *  - errors: context overflow, bad token ids;
 *  - generation: stop strings cut the text exactly, streamed pieces add up to the text, n_predict. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "herd.h"
#include "testutil.h"
#include "testvocab.h"

static char g_dir[256];


static herd_model *make_model_hd(const char *vocab, int type, const char *name, int64_t head_dim) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s.gguf", g_dir, name);
    herd_synth_params p = {.vocab_path = vocab, .n_embd = 64, .n_layer = 2, .n_head = 4, .n_head_kv = 2,
                           .head_dim = head_dim, .n_ff = 96, .n_ctx_train = 256, .rope_theta = 10000, .norm_eps = 1e-5f,
                           .rope_scale = 8, .tied_output = false, .type = type, .output_type = -1,
                           .weight_scale = 0.08f, .seed = 3};
    CHECK(herd_synth_model(&p, path) == 0, "synth %s: %s", name, herd_last_error());
    herd_model *m = NULL;
    CHECK(herd_model_load(path, &m) == 0, "load %s: %s", name, herd_last_error());
    unlink(path); /* the mapping stays valid */
    return m;
}

static herd_model *make_model(const char *vocab, int type, const char *name) {
    return make_model_hd(vocab, type, name, 16);
}

static herd_context *make_ctx(herd_model *m, int n_ctx, int n_batch, int threads, int kv) {
    herd_context_params cp = herd_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_batch = n_batch;
    cp.n_threads = threads;
    cp.kv_type = kv;
    herd_context *c = NULL;
    CHECK(herd_context_new(m, &cp, &c) == 0, "context: %s", herd_last_error());
    return c;
}

#define NT 40

static void check_invariance(herd_model *m, const char *name) {
    int nv = herd_vocab_n_tokens(m);
    int32_t toks[NT];
    for (int i = 0; i < NT; i++) toks[i] = (int32_t)((i * 37 + 11) % nv);
    toks[0] = 1;
    float *all = malloc(sizeof(float) * NT * (size_t)nv), *one = malloc(sizeof(float) * (size_t)nv);
    float *other = malloc(sizeof(float) * NT * (size_t)nv);

    herd_context *c = make_ctx(m, 64, 512, 2, HERD_KV_F32);
    CHECK(herd_decode(c, toks, NT, HERD_LOGITS_ALL, all) == 0, "%s batch decode: %s", name, herd_last_error());
    CHECK(herd_context_n_past(c) == NT, "n_past advanced");
    bool finite = true;
    for (int i = 0; i < NT * nv; i++) finite &= isfinite(all[i]);
    CHECK(finite, "%s logits are finite", name);
    /* truncate and re-decode the second half: same logits */
    herd_context_truncate(c, NT / 2);
    CHECK(herd_decode(c, toks + NT / 2, NT / 2, HERD_LOGITS_ALL, other) == 0, "re-decode");
    CHECK(memcmp(other, all + (NT / 2) * nv, sizeof(float) * (NT / 2) * (size_t)nv) == 0,
          "%s: truncate + re-decode is bit-identical", name);
    herd_context_free(c);

    /* one token at a time, one thread */
    c = make_ctx(m, 64, 512, 1, HERD_KV_F32);
    int same = 1;
    for (int i = 0; i < NT; i++) {
        CHECK(herd_decode(c, toks + i, 1, HERD_LOGITS_LAST, one) == 0, "single decode");
        same &= memcmp(one, all + i * nv, sizeof(float) * (size_t)nv) == 0;
    }
    CHECK(same, "%s: token-by-token (1 thread) is bit-identical to one batch (2 threads)", name);
    herd_context_free(c);

    /* ragged batches */
    c = make_ctx(m, 64, 7, 2, HERD_KV_F32);
    CHECK(herd_decode(c, toks, NT, HERD_LOGITS_ALL, other) == 0, "n_batch 7 decode");
    CHECK(memcmp(other, all, sizeof(float) * NT * (size_t)nv) == 0, "%s: n_batch 7 is bit-identical", name);
    herd_context_free(c);

    /* f16 KV cache: close to f32 */
    c = make_ctx(m, 64, 512, 2, HERD_KV_F16);
    CHECK(herd_decode(c, toks, NT, HERD_LOGITS_ALL, other) == 0, "f16 kv decode");
    double maxd = 0, maxa = 0;
    for (int i = 0; i < NT * nv; i++) {
        maxd = fmax(maxd, fabs(other[i] - all[i]));
        maxa = fmax(maxa, fabs(all[i]));
    }
    CHECK(maxd < 0.02 * maxa + 1e-3, "%s: f16 KV within 2%% (max diff %.2e, max |logit| %.2f)", name, maxd, maxa);
    herd_context_free(c);
    /* f16 KV (the server's default): token by token on 1 thread is bit-identical to the batch too */
    c = make_ctx(m, 64, 512, 1, HERD_KV_F16);
    same = 1;
    for (int i = 0; i < NT; i++) {
        CHECK(herd_decode(c, toks + i, 1, HERD_LOGITS_LAST, one) == 0, "single decode, f16 kv");
        same &= memcmp(one, other + i * nv, sizeof(float) * (size_t)nv) == 0;
    }
    CHECK(same, "%s: f16 KV token-by-token (1 thread) is bit-identical to one batch (2 threads)", name);
    herd_context_free(c);
    free(all);
    free(one);
    free(other);
}

static void check_errors(herd_model *m) {
    herd_context *c = make_ctx(m, 16, 8, 1, HERD_KV_AUTO);
    int32_t t[20] = {1};
    float *lg = malloc(sizeof(float) * (size_t)herd_vocab_n_tokens(m));
    CHECK(herd_decode(c, t, 17, HERD_LOGITS_LAST, lg) == HERD_E_RANGE, "overflow rejected");
    CHECK(strstr(herd_last_error(), "16") != NULL, "overflow message gives the numbers: %s", herd_last_error());
    CHECK(herd_context_n_past(c) == 0, "nothing cached after a rejected decode");
    int32_t bad[2] = {1, 1 << 20};
    CHECK(herd_decode(c, bad, 2, HERD_LOGITS_LAST, lg) == HERD_E_ARG, "bad token id rejected");
    int32_t neg[1] = {-1};
    CHECK(herd_decode(c, neg, 1, HERD_LOGITS_LAST, lg) == HERD_E_ARG, "negative token id rejected");
    CHECK(herd_decode(c, t, 16, HERD_LOGITS_LAST, lg) == 0, "exactly full context is fine");
    CHECK(herd_decode(c, t, 1, HERD_LOGITS_LAST, lg) == HERD_E_RANGE, "one more is not");
    herd_context_free(c);
    herd_context_params cp = herd_context_default_params();
    cp.n_ctx = 1 << 20;
    CHECK(herd_context_new(m, &cp, &c) == HERD_E_ARG, "context beyond the model's maximum rejected");
    free(lg);
}

/* Quantized KV caches (head_dim 32: one block per head): batch invariance as for f32/f16 (one batch on 2
 * threads, token by token on 1, ragged batches of 7: bit-identical), close to the f32 cache, and not equal
 * to it (the cache really is quantized). */
static void check_quant_kv(herd_model *m) {
    int nv = herd_vocab_n_tokens(m);
    int32_t toks[NT];
    for (int i = 0; i < NT; i++) toks[i] = (int32_t)((i * 53 + 7) % nv);
    float *ref = malloc(sizeof(float) * NT * (size_t)nv), *all = malloc(sizeof(float) * NT * (size_t)nv);
    float *other = malloc(sizeof(float) * NT * (size_t)nv), *one = malloc(sizeof(float) * (size_t)nv);
    herd_context *c = make_ctx(m, 64, 512, 2, HERD_KV_F32);
    CHECK(herd_decode(c, toks, NT, HERD_LOGITS_ALL, ref) == 0, "f32 kv decode");
    herd_context_free(c);
    const int kvs[] = {HERD_KV_Q8_0, HERD_KV_Q4_0, HERD_KV_PAIR(HERD_KV_Q8_0, HERD_KV_BF16), HERD_KV_PAIR(HERD_KV_F16, HERD_KV_Q4_0)};
    for (size_t k = 0; k < sizeof kvs / sizeof kvs[0]; k++) {
        char name[64];
        snprintf(name, sizeof name, "K %s V %s", herd_type_name(HERD_KV_TYPE_K(kvs[k])), herd_type_name(HERD_KV_TYPE_V(kvs[k])));
        c = make_ctx(m, 64, 512, 2, kvs[k]);
        if (!c) continue;
        CHECK(herd_decode(c, toks, NT, HERD_LOGITS_ALL, all) == 0, "%s batch decode", name);
        herd_context_free(c);
        c = make_ctx(m, 64, 512, 1, kvs[k]);
        int same = 1;
        for (int i = 0; i < NT; i++) {
            CHECK(herd_decode(c, toks + i, 1, HERD_LOGITS_LAST, one) == 0, "%s single decode", name);
            same &= memcmp(one, all + i * nv, sizeof(float) * (size_t)nv) == 0;
        }
        CHECK(same, "%s: token-by-token (1 thread) is bit-identical to one batch (2 threads)", name);
        herd_context_free(c);
        c = make_ctx(m, 64, 7, 2, kvs[k]);
        CHECK(herd_decode(c, toks, NT, HERD_LOGITS_ALL, other) == 0, "%s n_batch 7 decode", name);
        CHECK(memcmp(other, all, sizeof(float) * NT * (size_t)nv) == 0, "%s: n_batch 7 is bit-identical", name);
        herd_context_free(c);
        double maxd = 0, maxa = 0;
        for (int i = 0; i < NT * nv; i++) {
            maxd = fmax(maxd, fabs(all[i] - ref[i]));
            maxa = fmax(maxa, fabs(ref[i]));
        }
        /* q4_0 steps are 1/8 of a block's largest value (q8_0: 1/127): a coarser bound */
        const double bound = HERD_KV_TYPE_K(kvs[k]) == HERD_KV_Q4_0 || HERD_KV_TYPE_V(kvs[k]) == HERD_KV_Q4_0 ? 0.3 : 0.05;
        CHECK(maxd > 0 && maxd < bound * maxa, "%s: within %g of the f32 cache x max |logit| and not equal (max diff %.2e, max |logit| %.2f)",
              name, bound, maxd, maxa);
    }
    free(ref);
    free(all);
    free(other);
    free(one);
}

/* Three sequences decoded together (interleaved, ragged) give bit-identical logits to each alone;
 * a prefix copied between sequences continues exactly like a fresh decode. */
static void check_multi_seq(herd_model *m) {
    int nv = herd_vocab_n_tokens(m);
    enum { NS = 3, L = 12 };
    int32_t toks[NS][L];
    for (int s = 0; s < NS; s++)
        for (int i = 0; i < L; i++) toks[s][i] = (int32_t)((s * 101 + i * 37 + 5) % nv);
    float *solo = malloc(sizeof(float) * NS * L * (size_t)nv);
    for (int s = 0; s < NS; s++) {
        herd_context *c = make_ctx(m, 32, 512, 2, HERD_KV_F32);
        CHECK(herd_decode(c, toks[s], L, HERD_LOGITS_ALL, solo + (size_t)s * L * nv) == 0, "solo decode");
        herd_context_free(c);
    }
    herd_context_params cp = herd_context_default_params();
    cp.n_ctx = 32;
    cp.n_seq = NS;
    cp.n_threads = 2;
    cp.kv_type = HERD_KV_F32;
    herd_context *c = NULL;
    CHECK(herd_context_new(m, &cp, &c) == 0 && herd_context_n_seq(c) == NS, "multi-seq context: %s", herd_last_error());
    if (!c) return;
    /* round 1: 5 tokens of seq 0, 2 of seq 1, 7 of seq 2 interleaved; round 2: the rest */
    int32_t bt[NS * L], bs[NS * L];
    bool want[NS * L];
    int done[NS] = {0}, first[NS] = {5, 2, 7};
    float *out = malloc(sizeof(float) * NS * L * (size_t)nv);
    int same = 1;
    for (int round = 0; round < 2; round++) {
        int n = 0, idx[NS * L][2];
        for (int step = 0; step < L; step++)
            for (int s = 0; s < NS; s++) {
                int lim = round == 0 ? first[s] : L;
                if (done[s] < lim) {
                    bt[n] = toks[s][done[s]];
                    bs[n] = s;
                    want[n] = true;
                    idx[n][0] = s;
                    idx[n][1] = done[s]++;
                    n++;
                }
            }
        CHECK(herd_decode_batch(c, bt, bs, n, want, out) == 0, "batch decode: %s", herd_last_error());
        for (int r = 0; r < n; r++)
            same &= memcmp(out + (size_t)r * nv, solo + ((size_t)idx[r][0] * L + idx[r][1]) * nv, sizeof(float) * nv) == 0;
    }
    CHECK(same, "interleaved multi-sequence logits are bit-identical to solo runs");
    CHECK(herd_seq_n_past(c, 1) == L, "n_past per sequence");
    /* prefix reuse: seq 1 takes seq 0's first 6 positions, then decodes seq 0's tokens 6.. */
    CHECK(herd_seq_copy(c, 0, 1, 6) == 0 && herd_seq_n_past(c, 1) == 6, "seq copy");
    int32_t s1[L - 6];
    bool w1[L - 6];
    for (int i = 0; i < L - 6; i++) s1[i] = 1, w1[i] = true;
    CHECK(herd_decode_batch(c, toks[0] + 6, s1, L - 6, w1, out) == 0, "decode after copy");
    CHECK(memcmp(out, solo + 6 * (size_t)nv, sizeof(float) * (L - 6) * nv) == 0, "copied prefix continues exactly");
    /* overflow of one sequence is refused, naming it */
    int32_t many[40], s2[40];
    for (int i = 0; i < 40; i++) many[i] = 1, s2[i] = 2;
    CHECK(herd_decode_batch(c, many, s2, 40, NULL, NULL) == HERD_E_RANGE && strstr(herd_last_error(), "sequence 2"),
          "per-sequence overflow: %s", herd_last_error());
    s2[0] = 9;
    CHECK(herd_decode_batch(c, many, s2, 1, NULL, NULL) == HERD_E_ARG, "unknown sequence rejected");
    herd_context_free(c);
    free(out);
    free(solo);
}

typedef struct {
    char buf[4096];
    size_t n;
} sink;

static bool collect(const char *s, size_t n, void *u) {
    sink *k = u;
    if (k->n + n < sizeof k->buf) memcpy(k->buf + k->n, s, n);
    k->n += n;
    return true;
}

static void check_generate(herd_model *m) {
    herd_sampler_params sp = herd_sampler_default_params();
    sp.temp = 0;
    int32_t prompt[3] = {1, 3 + 'h', 3 + 'i'};
    herd_generate_result r1, r2;
    sink s1 = {0}, s2 = {0};
    herd_context *c = make_ctx(m, 64, 16, 2, HERD_KV_AUTO);
    herd_sampler *s = herd_sampler_new(&sp, herd_vocab_n_tokens(m));
    herd_generate_params gp = {.n_predict = 24, .on_text = collect, .user = &s1};
    CHECK(herd_generate(c, s, prompt, 3, &gp, &r1) == 0, "generate: %s", herd_last_error());
    CHECK(r1.n_ids <= 24 && (r1.n_ids == 24 || r1.stop_reason == HERD_STOP_EOG), "n_predict respected");
    CHECK(s1.n == r1.text_len && memcmp(s1.buf, r1.text, r1.text_len) == 0, "streamed pieces == text");
    herd_sampler_free(s);
    herd_context_free(c);
    /* stop at a string from the middle of that text */
    CHECK(r1.text_len >= 6, "the random model generated text to cut (%zu bytes)", r1.text_len);
    if (r1.text_len >= 6) {
        char stop[4];
        size_t at = r1.text_len / 2;
        memcpy(stop, r1.text + at, 3);
        stop[3] = 0;
        const char *first = strstr(r1.text, stop); /* the stop fires at its first occurrence */
        size_t want = (size_t)(first - r1.text);
        const char *stops[2] = {"\x01never", stop};
        c = make_ctx(m, 64, 16, 2, HERD_KV_AUTO);
        s = herd_sampler_new(&sp, herd_vocab_n_tokens(m));
        herd_generate_params gp2 = {.n_predict = 24, .stop = stops, .n_stop = 2, .on_text = collect, .user = &s2};
        CHECK(herd_generate(c, s, prompt, 3, &gp2, &r2) == 0, "generate with stop");
        CHECK(r2.stop_reason == HERD_STOP_STRING, "stopped by the string (%d)", r2.stop_reason);
        CHECK(r2.text_len == want && memcmp(r2.text, r1.text, want) == 0, "text cut before the stop string (%zu vs %zu)",
              r2.text_len, want);
        CHECK(s2.n == r2.text_len && memcmp(s2.buf, r2.text, s2.n) == 0, "no part of the stop string was streamed");
        herd_generate_result_free(&r2);
        herd_sampler_free(s);
        herd_context_free(c);
    }
    herd_generate_result_free(&r1);
}

/* herd_context_read_weights reads exactly the bytes a decode step streams (herd_model_info.decode_bytes),
 * whichever thread count shares them out, and takes a positive time */
static void check_read_weights(herd_model *m, const char *name) {
    herd_model_info in;
    herd_model_get_info(m, &in);
    for (int threads = 1; threads <= 3; threads++) {
        herd_context *c = make_ctx(m, 16, 4, threads, HERD_KV_AUTO);
        if (!c) return;
        uint64_t bytes = 0;
        double s = herd_context_read_weights(c, &bytes);
        CHECK(bytes == in.decode_bytes && bytes > 0 && s > 0 && s < 60,
              "%s, %d threads: read_weights read %llu bytes in %g s; decode reads %llu", name, threads,
              (unsigned long long)bytes, s, (unsigned long long)in.decode_bytes);
        herd_context_free(c);
    }
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "%s/herd-test-fwd-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(g_dir)) return 1;
    char vocab[512];
    snprintf(vocab, sizeof vocab, "%s/vocab.gguf", g_dir);
    write_vocab(vocab);
    const int types[] = {HERD_TYPE_F32, HERD_TYPE_F16, HERD_TYPE_BF16, HERD_TYPE_Q8_0, HERD_TYPE_Q4_0};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        herd_model *m = make_model(vocab, types[i], herd_type_name(types[i]));
        if (!m) continue;
        check_invariance(m, herd_type_name(types[i]));
        check_read_weights(m, herd_type_name(types[i]));
        if (i == 0) {
            check_errors(m);
            check_generate(m);
            check_multi_seq(m);
        }
        herd_model_free(m);
    }
    herd_model *m = make_model_hd(vocab, HERD_TYPE_F32, "hd32", 32);
    if (m) check_quant_kv(m);
    herd_model_free(m);
    unlink(vocab);
    rmdir(g_dir);
    return TU_DONE("test_forward");
}
