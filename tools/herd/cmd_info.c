/* herd info MODEL [--tensors] [-c CTX [--kv-type T] [--kv-type-k T] [--kv-type-v T] [-b N] [-t N]] */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static double gib(uint64_t b) {
    return (double)b / (1ull << 30);
}

/* The memory a context of -c N tokens takes (herd_context_memory_estimate), and whether it fits now. */
static int print_memory(const herd_model *m, const herd_context_params *p) {
    herd_context_memory mem;
    if (herd_context_memory_estimate(m, p, &mem) != HERD_OK) return cli_fail_lib("info");
    const uint64_t total = mem.weights + mem.packed + mem.kv + mem.scratch;
    printf("context:         %lld tokens x %lld sequences, batch %lld, %d threads\n", (long long)mem.n_ctx,
           (long long)mem.n_seq, (long long)mem.n_batch, mem.n_threads);
    printf("memory:          weights %.2f GiB (mapped)%s", gib(mem.weights), mem.packed ? "" : "\n");
    if (mem.packed) printf(" + %.2f GiB repacked\n", gib(mem.packed));
    printf("                 KV cache %.3f GiB (K %s, V %s)\n", gib(mem.kv), herd_type_name(mem.kv_type_k),
           herd_type_name(mem.kv_type_v));
    printf("                 scratch %.1f MiB (batch and threads; independent of the context)\n",
           (double)mem.scratch / (1 << 20));
    printf("                 total %.2f GiB; MemAvailable %.2f GiB: %s\n", gib(total), gib(mem.available),
           !mem.available ? "unknown" : mem.kv + mem.scratch > mem.available ? "the KV cache and scratch do NOT fit (herd refuses it)"
           : total > mem.available ? "fits, the weights paged from the file" : "fits");
    return 0;
}

int cmd_info(int argc, char **argv) {
    const char *path = NULL;
    bool tensors = false, want_mem = false;
    cli_common c;
    cli_common_init(&c);
    for (int i = 1; i < argc; i++) {
        int r;
        if (!strcmp(argv[i], "--tensors")) tensors = true;
        else if (!strcmp(argv[i], "-m")) {
            if (!cli_str("info", argc, argv, &i, &path)) return 1;
        } else if (!strcmp(argv[i], "-c") || !strcmp(argv[i], "--ctx-size") || !strncmp(argv[i], "--kv-type", 9) ||
                   !strcmp(argv[i], "-b") || !strcmp(argv[i], "--batch") || !strcmp(argv[i], "-t") ||
                   !strcmp(argv[i], "--threads")) {
            if ((r = cli_common_opt("info", &c, argc, argv, &i)) < 0) return 1;
            want_mem |= r > 0;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            return cli_help("info");
        } else if (argv[i][0] == '-') return cli_fail("info", "unknown option '%s'", argv[i]);
        else if (!path) path = argv[i];
        else return cli_fail("info", "unexpected argument '%s'", argv[i]);
    }
    if (!path) return cli_fail("info", "no model given (usage: herd info MODEL)");
    herd_model *m;
    /* a file without any tensors (a vocabulary GGUF) is described as such; any other file must
     * load completely, so that info reports what run would */
    if (herd_model_load_vocab(path, &m) != HERD_OK) return cli_fail_lib("info");
    herd_model_info in;
    herd_model_get_info(m, &in);
    if (in.n_tensors > 0) {
        herd_model_free(m);
        if (herd_model_load(path, &m) != HERD_OK) return cli_fail_lib("info");
    }
    herd_model_print_info(m, stdout, tensors);
    herd_model_get_info(m, &in);
    if (in.packed_bytes)
        printf("cpu kernels:     %s (%.1f MiB of weights repacked: 16 rows interleaved)\n", herd_cpu_backend(),
               (double)in.packed_bytes / (1 << 20));
    else printf("cpu kernels:     %s\n", herd_cpu_backend());
    char why[256];
    int nth = herd_default_threads(why, sizeof why);
    printf("threads:         %d (default; %s)\n", nth, why);
    const char *git = herd_version_git();
    printf("herd:            %s%s%s%s\n", herd_version(), *git ? " (git " : "", git, *git ? ")" : "");
    int rc = want_mem && in.n_tensors > 0 ? print_memory(m, &c.ctx) : 0;
    herd_model_free(m);
    cli_common_free(&c);
    return rc;
}
