/* herd export -m BASE --lora A[:SCALE] [--lora ...] --out MERGED.gguf [--type T]
 * The base with the adapters merged into its weights (herd_export_lora): a plain model that needs no adapter. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cmd_export(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    const char *out = NULL, *type = NULL;
    int rc = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-m") || !strcmp(a, "--model") || !strcmp(a, "--lora")) {
            if (cli_common_opt("export", &c, argc, argv, &i) < 0) goto done;
        } else if (!strcmp(a, "--out") || !strcmp(a, "-o")) {
            if (!cli_str("export", argc, argv, &i, &out)) goto done;
        } else if (!strcmp(a, "--type")) {
            if (!cli_str("export", argc, argv, &i, &type)) goto done;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            rc = cli_help("export");
            goto done;
        } else {
            cli_fail("export", "unknown option '%s'", a);
            goto done;
        }
    }
    if (!c.model || !out || c.n_lora == 0) {
        cli_fail("export", "need -m BASE, at least one --lora ADAPTER and --out MERGED.gguf");
        goto done;
    }
    const char **paths = calloc((size_t)c.n_lora, sizeof *paths);
    float *scales = calloc((size_t)c.n_lora, sizeof *scales);
    for (int i = 0; i < c.n_lora; i++) paths[i] = c.lora[i].path, scales[i] = c.lora[i].scale;
    if (herd_export_lora(c.model, paths, scales, c.n_lora, out, type) != HERD_OK) cli_fail_lib("export");
    else rc = 0;
    free(paths);
    free(scales);
done:
    cli_common_free(&c);
    return rc;
}
