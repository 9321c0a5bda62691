/* herd — the Llama 3.1 system in C. Command-line entry point. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#ifdef HERD_MPI
#include "../../src/dist/dist.h"
#endif

/* The commands, in the order `herd --help` and herd(1) list them. tools/gen_help.sh reads this
 * table (one row per line: the command word in quotes, then its cmd_ function): a command's help
 * text, its `herd --help` line and its man page come from tools/herd/help/NAME.txt, which the build
 * requires for every row here. */
static const struct {
    const char *name;
    int (*fn)(int, char **);
} k_cmds[] = {
    {"info", cmd_info},
    {"tokenize", cmd_tokenize},
    {"detokenize", cmd_detokenize},
    {"classify", cmd_classify},
    {"run", cmd_run},
    {"logits", cmd_logits},
    {"chat", cmd_chat},
    {"serve", cmd_serve},
    {"format", cmd_format},
    {"guard", cmd_guard},
    {"bench", cmd_bench},
    {"perplexity", cmd_perplexity},
    {"imatrix", cmd_imatrix},
    {"batch", cmd_batch},
    {"sdg", cmd_sdg},
    {"eval", cmd_eval},
    {"convert", cmd_convert},
    {"quantize", cmd_quantize},
    {"train", cmd_train},
    {"export", cmd_export},
    {"synth", cmd_synth},
    {"embed", cmd_embed},
    {"rag", cmd_rag},
};

/* cli_help_main (tools/herd/help/herd.txt) with its line @COMMANDS@ and its @CPU@ filled in */
static void usage(FILE *fp) {
    const char *s = cli_help_main, *at;
    while ((at = strchr(s, '@'))) {
        fwrite(s, 1, (size_t)(at - s), fp);
        if (!strncmp(at, "@COMMANDS@\n", 11)) {
            for (size_t i = 0; i < sizeof k_cmds / sizeof k_cmds[0]; i++) {
                const cli_help_entry *h = cli_help_find(k_cmds[i].name);
                fprintf(fp, "  herd %-11s %s\n", k_cmds[i].name, h ? h->list : "");
            }
            s = at + 11;
        } else if (!strncmp(at, "@CPU@", 5)) {
            fputs(herd_cpu_backend(), fp);
            s = at + 5;
        } else {
            fputc('@', fp);
            s = at + 1;
        }
    }
    fputs(s, fp);
}

static int herd_main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        const char *git = herd_version_git();
        if (*git) printf("herd %s (git %s)\n", herd_version(), git);
        else printf("herd %s\n", herd_version());
        return 0;
    }
    for (size_t i = 0; i < sizeof k_cmds / sizeof k_cmds[0]; i++)
        if (!strcmp(argv[1], k_cmds[i].name)) return k_cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "herd: error: unknown command '%s' (try 'herd --help')\n", argv[1]);
    return 2;
}

int main(int argc, char **argv) {
#ifdef HERD_MPI
    return dist_main(argc, argv, herd_main); /* build/herd-mpi: --tp N under mpirun (src/dist/dist.h) */
#else
    return herd_main(argc, argv);
#endif
}
