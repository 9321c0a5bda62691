/* herd — the Llama 3.1 system in C. Command-line entry point. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} k_cmds[] = {
    {"info", cmd_info, "MODEL [--tensors]                 architecture, shapes, types, tokenizer"},
    {"tokenize", cmd_tokenize, "-m MODEL [-p TEXT|-f FILE] [--no-bos] [--special] [--jsonl]   text -> JSON ids"},
    {"detokenize", cmd_detokenize, "-m MODEL [--ids JSON] [--no-special]  JSON ids -> text"},
    {"run", cmd_run, "-m MODEL (-p TEXT|-f FILE|--prompt-ids JSON) [-n N] [sampling] [--json]  raw completion"},
    {"logits", cmd_logits, "-m MODEL --prompt-ids JSON -o FILE   float32 logits of every prompt position"},
    {"chat", cmd_chat, "-m MODEL [--system TEXT] [-p TEXT]   Llama 3.1 chat (one-shot or interactive)"},
    {"serve", cmd_serve, "-m MODEL [--host H] [--port P] [--parallel N] [--api-key K]  OpenAI/Llama Stack server"},
    {"format", cmd_format, "--messages FILE.json [--date D]      render a Llama 3.1 prompt (BOS included)"},
    {"bench", cmd_bench, "-m MODEL [-p 512] [-n 128] [-t N] [-r REPS] [--json]  prompt/decode tokens/s"},
    {"convert", cmd_convert, "IN OUT.gguf [--type T]               HF directory or GGUF -> GGUF (T: f32..q4_0, fp8)"},
    {"quantize", cmd_quantize, "IN.gguf OUT.gguf TYPE [-t N] [--pure]   Q4_K_M Q5_K_M Q6_K Q8_0 Q4_0 FP8 ..."},
    {"train", cmd_train, "-m BASE --data FILE --objective O --method lora|full --out F  fine-tune (LoRA, full, DPO, distill)"},
    {"export", cmd_export, "-m BASE --lora A[:SCALE]... --out OUT.gguf [--type T]  merge LoRA adapters into the weights"},
    {"synth", cmd_synth, "--vocab VOCAB.gguf -o OUT.gguf [--shape S] [--type T] ...  random-weight model"},
};

static void usage(FILE *fp) {
    fprintf(fp, "herd — the Llama 3.1 system in C\n\nusage: herd COMMAND [options]\n\n");
    for (size_t i = 0; i < sizeof k_cmds / sizeof k_cmds[0]; i++)
        fprintf(fp, "  herd %-11s %s\n", k_cmds[i].name, k_cmds[i].help);
    fprintf(fp, "\nSampling options: --temp T (0 = greedy) --top-k K --top-p P --min-p P --repeat-penalty R\n"
                "  --repeat-last-n N --seed S.  Context: -c CTX -t THREADS -b BATCH --kv-type f32|f16.\n"
                "LoRA (run, chat, logits, bench, serve): --lora FILE[:SCALE], repeatable (serve: [NAME=]FILE).\n"
                "Run 'herd COMMAND --help' for a command's options. CPU kernels: %s.\n",
            herd_cpu_backend());
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof k_cmds / sizeof k_cmds[0]; i++)
        if (!strcmp(argv[1], k_cmds[i].name)) return k_cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "herd: error: unknown command '%s' (try 'herd --help')\n", argv[1]);
    return 2;
}
