/* herd info MODEL [--tensors] */
#include <stdio.h>
#include <string.h>

#include "cli.h"

int cmd_info(int argc, char **argv) {
    const char *path = NULL;
    bool tensors = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tensors")) tensors = true;
        else if (!strcmp(argv[i], "-m")) {
            if (!cli_str("info", argc, argv, &i, &path)) return 1;
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
    herd_model_free(m);
    return 0;
}
