/* herd synth --vocab VOCAB.gguf -o OUT.gguf [--shape tiny|1b|3b|8b|70b] [--type T] [...]
 * Writes a llama GGUF with random weights and the vocabulary's tokenizer: for tests, demos and
 * benchmarks (the weights are random: it produces gibberish, at the real speed of the shape). */
#include <stdio.h>
#include <string.h>

#include "cli.h"

typedef struct {
    const char *name;
    int64_t n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff;
    float rope_scale;
    bool tied;
} shape;

/* LLAMA31.md, Model shapes */
static const shape k_shapes[] = {
    {"tiny", 256, 4, 8, 2, 32, 768, 8, false},
    {"1b", 2048, 16, 32, 8, 64, 8192, 32, true},
    {"3b", 3072, 28, 24, 8, 128, 8192, 32, true},
    {"8b", 4096, 32, 32, 8, 128, 14336, 8, false},
    {"70b", 8192, 80, 64, 8, 128, 28672, 8, false},
};

int cmd_synth(int argc, char **argv) {
    herd_synth_params p = {0};
    const char *out = NULL, *shape_name = "tiny", *type = "f16", *out_type = NULL;
    int64_t v;
    float f;
    /* explicit dimensions override the shape's; -1 = from the shape */
    int64_t dims[6] = {-1, -1, -1, -1, -1, -1};
    int tied = -1;
    float rope_scale = -1;
    p.seed = 1;
    p.n_ctx_train = 131072;
    p.rope_theta = 500000;
    p.norm_eps = 1e-5f;
    static const char *dim_opts[6] = {"--n-embd", "--n-layer", "--n-head", "--n-head-kv", "--head-dim", "--n-ff"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int d;
        for (d = 0; d < 6; d++)
            if (!strcmp(a, dim_opts[d])) break;
        if (d < 6) {
            if (!cli_i64("synth", argc, argv, &i, 1, 1 << 20, &dims[d])) return 1;
        } else if (!strcmp(a, "--vocab")) { if (!cli_str("synth", argc, argv, &i, &p.vocab_path)) return 1; }
        else if (!strcmp(a, "-o")) { if (!cli_str("synth", argc, argv, &i, &out)) return 1; }
        else if (!strcmp(a, "--shape")) { if (!cli_str("synth", argc, argv, &i, &shape_name)) return 1; }
        else if (!strcmp(a, "--type")) { if (!cli_str("synth", argc, argv, &i, &type)) return 1; }
        else if (!strcmp(a, "--output-type")) { if (!cli_str("synth", argc, argv, &i, &out_type)) return 1; }
        else if (!strcmp(a, "--name")) { if (!cli_str("synth", argc, argv, &i, &p.name)) return 1; }
        else if (!strcmp(a, "--random-blocks")) p.random_blocks = true;
        else if (!strcmp(a, "--tied")) tied = 1;
        else if (!strcmp(a, "--untied")) tied = 0;
        else if (!strcmp(a, "--rope-scale")) { if (!cli_f32("synth", argc, argv, &i, 0, 1024, &rope_scale)) return 1; }
        else if (!strcmp(a, "--rope-theta")) { if (!cli_f32("synth", argc, argv, &i, 1, 1e9f, &p.rope_theta)) return 1; }
        else if (!strcmp(a, "--scale")) { if (!cli_f32("synth", argc, argv, &i, 1e-6f, 100, &f)) return 1; p.weight_scale = f; }
        else if (!strcmp(a, "--ctx")) { if (!cli_i64("synth", argc, argv, &i, 1, 1 << 24, &p.n_ctx_train)) return 1; }
        else if (!strcmp(a, "--seed")) { if (!cli_i64("synth", argc, argv, &i, 0, INT64_MAX, &v)) return 1; p.seed = (uint64_t)v; }
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            return cli_help("synth");
        } else return cli_fail("synth", "unknown option '%s'", a);
    }
    if (!p.vocab_path || !out) return cli_fail("synth", "need --vocab VOCAB.gguf and -o OUT.gguf");
    const shape *sh = NULL;
    for (size_t i = 0; i < sizeof k_shapes / sizeof k_shapes[0]; i++)
        if (!strcmp(k_shapes[i].name, shape_name)) sh = &k_shapes[i];
    if (!sh) return cli_fail("synth", "unknown shape '%s' (tiny, 1b, 3b, 8b, 70b)", shape_name);
    p.n_embd = dims[0] > 0 ? dims[0] : sh->n_embd;
    p.n_layer = dims[1] > 0 ? dims[1] : sh->n_layer;
    p.n_head = dims[2] > 0 ? dims[2] : sh->n_head;
    p.n_head_kv = dims[3] > 0 ? dims[3] : sh->n_head_kv;
    p.head_dim = dims[4] > 0 ? dims[4] : (dims[0] > 0 || dims[2] > 0 ? p.n_embd / p.n_head : sh->head_dim);
    p.n_ff = dims[5] > 0 ? dims[5] : sh->n_ff;
    p.tied_output = tied >= 0 ? tied == 1 : sh->tied;
    p.rope_scale = rope_scale >= 0 ? rope_scale : sh->rope_scale;
    p.type = herd_type_from_name(type);
    p.output_type = out_type ? herd_type_from_name(out_type) : -1;
    if (p.type < 0 || (out_type && p.output_type < 0))
        return cli_fail("synth", "unknown type '%s'", p.type < 0 ? type : out_type);
    if (herd_synth_model(&p, out) != HERD_OK) return cli_fail_lib("synth");
    return 0;
}
