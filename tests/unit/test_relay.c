/* The decode relay (src/model/relay.h): a single-token step carried by whichever thread runs gives the
 * plain pass's results bit for bit:
 *   - logits of every decode step with 2, 3 and 4 threads (HERD_RELAY=1) equal the plain pass's with 1
 *     thread (HERD_RELAY=0), for q8_0 (packed kernels), q4_k, f16, f32 and a Q4_K_M mix (Q/K/V and gate/up
 *     of different types: separate passes); the same next to busy-loop processes with more threads than
 *     CPUs, where threads are descheduled mid-chunk, chunks are recomputed by others and late copies are
 *     thrown away (the counters must show both happened);
 *   - steps without logits (the cache only), another sequence than 0, and the final hidden state
 *     (embeddings) agree too. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "herd.h"
#include "model/relay.h"
#include "testutil.h"
#include "testvocab.h"

static char g_dir[256];

#define PROMPT 5
#define STEPS 24

static herd_model *load(const char *path) {
    herd_model *m = NULL;
    CHECK(herd_model_load(path, &m) == 0, "load %s: %s", path, herd_last_error());
    return m;
}

static void synth(const char *vocab, int type, const char *path) {
    herd_synth_params p = {.vocab_path = vocab, .n_embd = 512, .n_layer = 2, .n_head = 8, .n_head_kv = 2,
                           .head_dim = 64, .n_ff = 4352, .n_ctx_train = 256, .rope_theta = 500000, .norm_eps = 1e-5f,
                           .rope_scale = 8, .tied_output = false, .type = type, .output_type = -1,
                           .weight_scale = 0.05f, .seed = 7};
    CHECK(herd_synth_model(&p, path) == 0, "synth %s: %s", path, herd_last_error());
}

static herd_context *make_ctx(herd_model *m, int threads, const char *mode) {
    setenv("HERD_RELAY", mode, 1);
    herd_context_params cp = herd_context_default_params();
    cp.n_ctx = 64;
    cp.n_batch = 8;
    cp.n_seq = 2;
    cp.n_threads = threads;
    herd_context *c = NULL;
    CHECK(herd_context_new(m, &cp, &c) == 0, "context: %s", herd_last_error());
    unsetenv("HERD_RELAY");
    return c;
}

/* The logits of STEPS decode steps after a prompt (sequence 0; steps 3 and 4 without logits, step 10 also
 * in sequence 1 after copying the prompt there), then an embedding of one token: [STEPS + 1][nv] + n_embd. */
static void run(herd_model *m, int threads, const char *mode, float *out) {
    herd_context *c = make_ctx(m, threads, mode);
    const int nv = herd_vocab_n_tokens(m);
    int32_t prompt[PROMPT] = {1, 40, 77, 123, 250};
    CHECK(herd_decode(c, prompt, PROMPT, HERD_LOGITS_LAST, out) == 0, "prompt: %s", herd_last_error());
    int32_t tok = 5;
    for (int i = 0; i < STEPS; i++) {
        tok = (tok * 31 + 17) % nv;
        float *row = out + (size_t)(i + 1) * (size_t)nv;
        if (i == 3 || i == 4) {
            CHECK(herd_decode(c, &tok, 1, HERD_LOGITS_NONE, NULL) == 0, "step %d: %s", i, herd_last_error());
            memset(row, 0, (size_t)nv * sizeof(float));
            continue;
        }
        CHECK(herd_decode(c, &tok, 1, HERD_LOGITS_LAST, row) == 0, "step %d: %s", i, herd_last_error());
        if (i == 10) { /* the same token in sequence 1 (a copy of the prompt): its own logits row replaces */
            CHECK(herd_seq_copy(c, 0, 1, PROMPT) == 0, "seq copy: %s", herd_last_error());
            int32_t seq = 1;
            bool want = true;
            CHECK(herd_decode_batch(c, &tok, &seq, 1, &want, row) == 0, "seq 1: %s", herd_last_error());
        }
    }
    int32_t one = 42;
    CHECK(herd_embed(c, 1, &one, 1, out + (size_t)(STEPS + 1) * (size_t)nv) == 0, "embed: %s", herd_last_error());
    herd_context_free(c);
}

static size_t out_floats(herd_model *m) {
    return (size_t)(STEPS + 1) * (size_t)herd_vocab_n_tokens(m) + 512;
}

static void check_same(const float *ref, const float *got, size_t n, const char *what) {
    if (!memcmp(ref, got, n * sizeof(float))) return;
    size_t i = 0;
    while (i < n && !memcmp(&ref[i], &got[i], sizeof(float))) i++;
    CHECK(0, "%s: first difference at float %zu: %.9g vs %.9g", what, i, (double)ref[i], (double)got[i]);
}

static pid_t g_busy[8];
static int g_n_busy;

static void start_busy(int n) {
    const pid_t parent = getpid();
    for (int i = 0; i < n && g_n_busy < 8; i++) {
        pid_t k = fork();
        if (k == 0) {
            /* a failed assertion in the test must not leave it spinning (nor a test gone before the prctl) */
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent) _exit(0);
            for (;;) {
            }
        }
        g_busy[g_n_busy++] = k;
    }
}

static void stop_busy(void) {
    for (int i = 0; i < g_n_busy; i++) kill(g_busy[i], SIGKILL);
    for (int i = 0; i < g_n_busy; i++) waitpid(g_busy[i], NULL, 0);
    g_n_busy = 0;
}

static void check_model(herd_model *m, const char *name) {
    size_t n = out_floats(m);
    float *ref = calloc(n, sizeof(float)), *got = calloc(n, sizeof(float));
    run(m, 1, "0", ref);
    char what[128];
    for (int t = 2; t <= 4; t++) {
        memset(got, 0, n * sizeof(float));
        run(m, t, "1", got);
        snprintf(what, sizeof what, "%s, relay, %d threads", name, t);
        check_same(ref, got, n, what);
    }
    /* busy neighbours: more runnable threads than CPUs; every relay thread is descheduled now and then */
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    start_busy(cpus < 2 ? 2 : (int)cpus);
    for (int t = 2; t <= 4; t += 2) {
        memset(got, 0, n * sizeof(float));
        run(m, t, "1", got);
        snprintf(what, sizeof what, "%s, relay, %d threads next to busy loops", name, t);
        check_same(ref, got, n, what);
    }
    memset(got, 0, n * sizeof(float));
    run(m, 4, "", got); /* as the pool chooses: the relay while the neighbours are there */
    snprintf(what, sizeof what, "%s, 4 threads as the pool chooses next to busy loops", name);
    check_same(ref, got, n, what);
    stop_busy();
    printf("ok   %s: %d decode steps, another sequence, an embedding: bit-identical through the relay\n", name, STEPS);
    free(ref);
    free(got);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "%s/herd-test-relay-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(g_dir)) return 1;
    char vocab[300], path[300], mix[300];
    snprintf(vocab, sizeof vocab, "%s/vocab.gguf", g_dir);
    write_vocab_variant(vocab, 0);
    const struct {
        int type;
        const char *name;
    } types[] = {{HERD_TYPE_Q8_0, "q8_0"}, {HERD_TYPE_Q4_K, "q4_k"}, {HERD_TYPE_F16, "f16"}, {HERD_TYPE_F32, "f32"}};
    uint64_t s0, b0, l0;
    relay_stats(&s0, &b0, &l0);
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        snprintf(path, sizeof path, "%s/%s.gguf", g_dir, types[i].name);
        synth(vocab, types[i].type, path);
        if (types[i].type == HERD_TYPE_F16) { /* the mix: Q4_K with Q6_K for some V and down matrices */
            snprintf(mix, sizeof mix, "%s/q4_k_m.gguf", g_dir);
            herd_quantize_params qp = herd_quantize_default_params();
            CHECK(herd_quantize_model(path, mix, "Q4_K_M", &qp, NULL) == 0, "quantize: %s", herd_last_error());
            herd_model *mm = load(mix);
            unlink(mix);
            check_model(mm, "q4_k_m");
            herd_model_free(mm);
        }
        herd_model *m = load(path);
        unlink(path);
        check_model(m, types[i].name);
        herd_model_free(m);
    }
    uint64_t s1, b1, l1;
    relay_stats(&s1, &b1, &l1);
    printf("relay: %llu steps, %llu chunks recomputed for a descheduled holder, %llu late copies thrown away\n",
           (unsigned long long)(s1 - s0), (unsigned long long)(b1 - b0), (unsigned long long)(l1 - l0));
    CHECK(s1 - s0 >= 5 * 5 * STEPS, "relay steps: %llu", (unsigned long long)(s1 - s0));
    CHECK(b1 > b0 && l1 > l0, "the busy runs never recomputed a chunk or threw one away: the recovery path went untested");
    unlink(vocab);
    rmdir(g_dir);
    return TU_DONE("test_relay");
}
