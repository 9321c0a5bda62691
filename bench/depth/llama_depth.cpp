// llama.cpp's decode at depth D, timed as llama-bench times it, with the D positions filled in chunks that
// do not attend to each other (bench/depth/run.sh, FILL=chunked; issue 16). Never part of make test.
//
// Why: llama-bench fills its depth as one causal prompt, whose attention grows as D^2: on 2 cores its
// 65,536-position fill runs 2-2.5 hours (timed 2026-12-04), while the decode after it takes seconds. A
// decode step's cost does not depend on what the cache holds, only on how many positions it attends to, so
// this tool fills positions [k*C, k*C + C) as sequence k (C = 2048: each chunk attends only to itself, the
// fill's attention C^2 per chunk instead of D^2 / 2 in all), then moves every chunk's cells to sequence 0
// (llama_memory_seq_cp, then seq_rm of k): sequence 0 then holds positions 0..D-1 in cells 0..D-1 of one
// unified cache, as after llama-bench's fill, and the decode after it attends to all D of them.
// `--fill causal` fills as llama-bench does (one sequence, batches of 2048) to check that both fills give the
// same decode speed (docs/BENCHMARKS.md has the check at 16K).
//
// Timed part, as llama-bench -p 0 -n N -d D -r R: one warm-up decode, then R repetitions of N single-token
// decodes at positions D..D+N-1 (random token ids, llama_synchronize after each), the N positions removed
// after each repetition (llama-bench restores the depth's saved state instead); tokens/s is the mean over the
// repetitions of N / time, as llama-bench's avg_ts. Threads through an attached ggml threadpool, as
// llama-bench. Flash attention on (a quantized V cache needs it); ubatch 512, batch 2048 (llama-bench's).
//
// Usage: llama_depth MODEL DEPTH N R THREADS KV_TYPE [--fill chunked|causal]   (KV_TYPE: f16 | q8_0 | q4_0;
//        DEPTH below 2048 (one chunk) or a multiple of 2048)
// Prints one JSON line: {"depth":D,"n_gen":N,"reps":R,"threads":T,"kv":"q8_0","fill":"chunked",
//                        "fill_s":..., "avg_ts":..., "samples_ts":[...]}
#include "llama.h"
#include "ggml-cpu.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

static double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

static void quiet_log(enum ggml_log_level level, const char * text, void *) {
    if (level == GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

static bool decode_chunk(llama_context * ctx, llama_batch & b, int n, int pos0, int seq, int n_vocab, bool bos) {
    b.n_tokens = n;
    for (int i = 0; i < n; i++) {
        b.token[i]     = i == 0 && bos ? llama_vocab_bos(llama_model_get_vocab(llama_get_model(ctx))) : std::rand() % n_vocab;
        b.pos[i]       = pos0 + i;
        b.n_seq_id[i]  = 1;
        b.seq_id[i][0] = seq;
        b.logits[i]    = i == n - 1;
    }
    return llama_decode(ctx, b) == 0;
}

int main(int argc, char ** argv) {
    if (argc < 7) {
        fprintf(stderr, "usage: %s MODEL DEPTH N R THREADS KV_TYPE [--fill chunked|causal]\n", argv[0]);
        return 2;
    }
    const char * path = argv[1];
    const int depth = atoi(argv[2]), n_gen = atoi(argv[3]), reps = atoi(argv[4]), threads = atoi(argv[5]);
    const std::string kv = argv[6];
    std::string fill = "chunked";
    if (argc == 9 && strcmp(argv[7], "--fill") == 0) fill = argv[8];
    else if (argc != 7) {
        fprintf(stderr, "llama_depth: after KV_TYPE only --fill chunked|causal\n");
        return 2;
    }
    const int C = depth < 2048 ? depth : 2048; /* positions per chunk */
    if (depth < 1 || depth % C != 0 || n_gen < 1 || reps < 1 || threads < 1 || (fill != "chunked" && fill != "causal")) {
        fprintf(stderr, "llama_depth: DEPTH must be below 2048 or a multiple of it, N, R, THREADS positive, --fill chunked|causal\n");
        return 2;
    }
    ggml_type type;
    if (kv == "f16") type = GGML_TYPE_F16;
    else if (kv == "q8_0") type = GGML_TYPE_Q8_0;
    else if (kv == "q4_0") type = GGML_TYPE_Q4_0;
    else { fprintf(stderr, "llama_depth: KV_TYPE %s is not f16, q8_0 or q4_0\n", kv.c_str()); return 2; }
    const int n_chunks = depth / C;
    if (fill == "chunked" && n_chunks > 256) { fprintf(stderr, "llama_depth: at most 256 chunks\n"); return 2; }

    llama_log_set(quiet_log, nullptr);
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    llama_model * model = llama_model_load_from_file(path, mp);
    if (!model) { fprintf(stderr, "llama_depth: cannot load %s\n", path); return 1; }
    const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));

    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = depth + n_gen;
    cp.n_batch = C;
    cp.n_ubatch = 512;
    cp.type_k = type;
    cp.type_v = type;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_ENABLED;
    cp.n_seq_max = fill == "chunked" ? n_chunks : 1;
    cp.kv_unified = true;  // one cache whose cells any sequence may own (seq_cp adds an owner to a cell)
    cp.n_threads = cp.n_threads_batch = threads;
    llama_context * ctx = llama_init_from_model(model, cp);
    if (!ctx) { fprintf(stderr, "llama_depth: cannot create a context of %d positions\n", depth + n_gen); return 1; }
    ggml_threadpool_params tpp = ggml_threadpool_params_default(threads);
    ggml_threadpool * tp = ggml_threadpool_new(&tpp);
    llama_attach_threadpool(ctx, tp, nullptr);
    llama_memory_t mem = llama_get_memory(ctx);

    std::srand(1);
    llama_batch b = llama_batch_init(C, 0, 1);
    const double t0 = now_s();
    for (int k = 0; k < n_chunks; k++) {
        const int seq = fill == "chunked" ? k : 0;
        if (!decode_chunk(ctx, b, C, k * C, seq, n_vocab, k == 0)) { fprintf(stderr, "llama_depth: fill failed at chunk %d\n", k); return 1; }
        llama_synchronize(ctx);
    }
    if (fill == "chunked")
        for (int k = 1; k < n_chunks; k++) {
            llama_memory_seq_cp(mem, k, 0, -1, -1);
            llama_memory_seq_rm(mem, k, -1, -1);
        }
    const double fill_s = now_s() - t0;
    if (llama_memory_seq_pos_min(mem, 0) != 0 || llama_memory_seq_pos_max(mem, 0) != depth - 1) {
        fprintf(stderr, "llama_depth: sequence 0 holds %d..%d, not 0..%d\n", llama_memory_seq_pos_min(mem, 0),
                llama_memory_seq_pos_max(mem, 0), depth - 1);
        return 1;
    }
    for (int k = 1; k < (int) cp.n_seq_max; k++)
        if (llama_memory_seq_pos_max(mem, k) != -1) { fprintf(stderr, "llama_depth: sequence %d not emptied\n", k); return 1; }

    // warm-up: one decode after the depth, removed
    if (!decode_chunk(ctx, b, 1, depth, 0, n_vocab, false)) { fprintf(stderr, "llama_depth: warm-up decode failed\n"); return 1; }
    llama_synchronize(ctx);
    llama_memory_seq_rm(mem, 0, depth, -1);

    std::vector<double> ts;
    for (int r = 0; r < reps; r++) {
        const double t = now_s();
        for (int i = 0; i < n_gen; i++) {
            if (!decode_chunk(ctx, b, 1, depth + i, 0, n_vocab, false)) { fprintf(stderr, "llama_depth: decode failed\n"); return 1; }
            llama_synchronize(ctx);
        }
        ts.push_back(n_gen / (now_s() - t));
        llama_memory_seq_rm(mem, 0, depth, -1);
    }
    double avg = 0;
    for (double v : ts) avg += v;
    avg /= ts.size();
    printf("{\"depth\":%d,\"n_gen\":%d,\"reps\":%d,\"threads\":%d,\"kv\":\"%s\",\"fill\":\"%s\",\"fill_s\":%.1f,\"avg_ts\":%.3f,\"samples_ts\":[",
           depth, n_gen, reps, threads, kv.c_str(), fill.c_str(), fill_s, avg);
    for (size_t i = 0; i < ts.size(); i++) printf("%s%.3f", i ? "," : "", ts[i]);
    printf("]}\n");
    llama_batch_free(b);
    llama_free(ctx);
    ggml_threadpool_free(tp);
    llama_model_free(model);
    return 0;
}
