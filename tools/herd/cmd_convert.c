/* herd convert IN OUT.gguf [--type T]
 * IN: a Hugging Face directory (config.json, safetensors, tokenizer) or a GGUF. Writes a llama GGUF;
 * --type fp8 applies Meta's FP8 scheme (herd extension; llama.cpp cannot read such a file). */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

int cmd_convert(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *type = NULL;
    herd_convert_params p = {.type = -1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--type")) {
            if (!cli_str("convert", argc, argv, &i, &type)) return 1;
        } else if (!strcmp(a, "--fp8-ub")) {
            if (!cli_f32("convert", argc, argv, &i, 1e-3f, 1e9f, &p.fp8_act_ub)) return 1;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            return cli_help("convert");
        } else if (a[0] == '-' && a[1]) {
            return cli_fail("convert", "unknown option '%s'", a);
        } else if (!in) {
            in = a;
        } else if (!out) {
            out = a;
        } else {
            return cli_fail("convert", "unexpected argument '%s'", a);
        }
    }
    if (!in || !out)
        return cli_fail("convert", "need IN and OUT.gguf (usage: herd convert IN OUT.gguf [--type T])");
    if (type) {
        p.type = !strcasecmp(type, "fp8") ? HERD_TYPE_FP8_E4M3 : herd_type_from_name(type);
        if (p.type < 0)
            return cli_fail("convert", "unknown type '%s' (f32, f16, bf16, q8_0, q4_0, fp8)", type);
    }
    if (herd_convert(in, out, &p) != HERD_OK) return cli_fail_lib("convert");
    return 0;
}
