/* A LoRA adapter with seeded random A and B (B nonzero, unlike a fresh one) for a base model, for the tests.
 *   cc -std=c11 -O2 -D_GNU_SOURCE -Iinclude -Isrc tests/tools/make_lora.c build/libherd.a \
 *      -lmicrohttpd -lcurl -ljansson -lm -lpthread -o build/make_lora
 *   build/make_lora BASE OUT [--peft] [--rank R] [--alpha A] [--seed S] [--std X] [--targets qkvoGUD]
 * OUT is llama.cpp's adapter GGUF, or with --peft a PEFT folder. --targets picks the matrices by letter
 * (q k v o, G gate, U up, D down; default all seven). Entries are uniform in [-X, X) (default 0.05). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herd.h"
#include "model/lora.h"
#include "model/model.h"

static uint64_t g_rng;
static float sym(void) { /* splitmix64 -> [-1, 1) */
    uint64_t z = (g_rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (float)((double)(z >> 11) * 0x1p-52 - 1.0);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: make_lora BASE OUT [--peft] [--rank R] [--alpha A] [--seed S] [--std X] [--targets qkvoGUD]\n");
        return 2;
    }
    bool peft = false;
    long rank = 8;
    float alpha = 16, x = 0.05f;
    const char *targets = "qkvoGUD";
    g_rng = 1;
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--peft")) peft = true;
        else if (i + 1 < argc && !strcmp(argv[i], "--rank")) rank = atol(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--alpha")) alpha = strtof(argv[++i], NULL);
        else if (i + 1 < argc && !strcmp(argv[i], "--seed")) g_rng = strtoull(argv[++i], NULL, 10);
        else if (i + 1 < argc && !strcmp(argv[i], "--std")) x = strtof(argv[++i], NULL);
        else if (i + 1 < argc && !strcmp(argv[i], "--targets")) targets = argv[++i];
        else {
            fprintf(stderr, "make_lora: unknown option '%s'\n", argv[i]);
            return 2;
        }
    }
    unsigned mask = 0;
    for (const char *p = targets; *p; p++) {
        const char *at = strchr("qkvoGUD", *p);
        if (!at) {
            fprintf(stderr, "make_lora: unknown target '%c'\n", *p);
            return 2;
        }
        mask |= 1u << (at - "qkvoGUD");
    }
    herd_model *m;
    if (model_load(argv[1], MODEL_LOAD_NO_REPACK, &m) != HERD_OK) {
        fprintf(stderr, "make_lora: %s\n", herd_last_error());
        return 1;
    }
    lora_adapter *a = lora_adapter_new(m, mask, rank, alpha);
    for (int64_t l = 0; l < a->n_layer; l++)
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            lora_matrix *mt = &a->m[l * LORA_N_TARGETS + t];
            if (mt->rank <= 0) continue;
            const weight *w = lora_target_weight(m, l, t);
            for (int64_t i = 0; i < mt->rank * w->n_in; i++) mt->a[i] = x * sym();
            for (int64_t i = 0; i < mt->rank * w->n_out; i++) mt->b[i] = x * sym();
        }
    int rc = peft ? lora_adapter_save_peft(a, m, argv[2]) : lora_adapter_save_gguf(a, m, argv[2]);
    if (rc) fprintf(stderr, "make_lora: %s\n", herd_last_error());
    lora_adapter_free(a);
    model_free(m);
    return rc ? 1 : 0;
}
