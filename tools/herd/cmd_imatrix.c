/* herd imatrix: llama.cpp's llama-imatrix (importance matrix for quantizing), through herd_imatrix()
 * (src/api/imatrix_api.c); herd imatrix --show FILE checks and lists a file of either format. Options as
 * llama-imatrix names them. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static int imatrix_main(cli_common *c, int argc, char **argv) {
    const char *file = NULL, *out = "imatrix.gguf", *show = NULL, *format = NULL;
    herd_imatrix_params p = herd_imatrix_default_params();
    for (int i = 1; i < argc; i++) {
        int r = cli_common_opt("imatrix", c, argc, argv, &i);
        if (r < 0) return 1;
        if (r > 0) continue;
        if (!strcmp(argv[i], "-f") || !strcmp(argv[i], "--file")) {
            if (!cli_str("imatrix", argc, argv, &i, &file)) return 1;
        } else if (!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output-file")) {
            if (!cli_str("imatrix", argc, argv, &i, &out)) return 1;
        } else if (!strcmp(argv[i], "--chunks")) {
            if (!cli_i64("imatrix", argc, argv, &i, 1, INT32_MAX, &p.n_chunks)) return 1;
        } else if (!strcmp(argv[i], "--output-frequency")) {
            if (!cli_i64("imatrix", argc, argv, &i, 0, INT32_MAX, &p.save_every)) return 1;
        } else if (!strcmp(argv[i], "--output-format")) {
            if (!cli_str("imatrix", argc, argv, &i, &format)) return 1;
            if (strcmp(format, "gguf") && strcmp(format, "dat"))
                return cli_fail("imatrix", "--output-format is gguf or dat, not '%s'", format);
            p.dat = !strcmp(format, "dat");
        } else if (!strcmp(argv[i], "--process-output")) {
            p.process_output = true;
        } else if (!strcmp(argv[i], "--show")) {
            if (!cli_str("imatrix", argc, argv, &i, &show)) return 1;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            return cli_help("imatrix");
        } else return cli_fail("imatrix", "unknown option '%s'", argv[i]);
    }
    if (show) return herd_imatrix_show(show, stdout) == HERD_OK ? 0 : cli_fail_lib("imatrix");
    if (!c->model) return cli_fail("imatrix", "need -m MODEL");
    if (!file) return cli_fail("imatrix", "need -f TEXT");
    if (c->ctx.n_ctx) p.n_ctx = c->ctx.n_ctx;
    p.dataset = file;
    char *text = NULL;
    size_t len = 0;
    if (!cli_read_text("imatrix", NULL, file, &text, &len)) return 1;
    if (len > 0 && text[len - 1] == '\n') text[--len] = 0; /* as llama.cpp's -f does */
    herd_model *m = NULL;
    herd_context *ctx = NULL;
    int rc = 1;
    if (herd_model_load(c->model, &m) != HERD_OK) { cli_fail_lib("imatrix"); goto done; }
    c->ctx.n_ctx = p.n_ctx;
    c->ctx.n_seq = 1;
    if (c->ctx.n_batch > p.n_ctx) c->ctx.n_batch = p.n_ctx;
    if (herd_context_new(m, &c->ctx, &ctx) != HERD_OK) { cli_fail_lib("imatrix"); goto done; }
    if (herd_imatrix(ctx, text, len, &p, out, stderr) != HERD_OK) { cli_fail_lib("imatrix"); goto done; }
    rc = 0;
done:
    free(text);
    herd_context_free(ctx);
    herd_model_free(m);
    return rc;
}

int cmd_imatrix(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    int rc = imatrix_main(&c, argc, argv);
    cli_common_free(&c);
    return rc;
}
