/* libFuzzer target: the JSON Schema compiler of constrained decoding (src/constrain/schema.c) and its
 * recognizer. The input is a schema, optionally followed by a NUL byte and a document that is then
 * fed to the recognizer byte by byte. Built by `make fuzz`. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "constrain/grammar.h"
#include "constrain/schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 1 << 16) return 0;
    const uint8_t *nul = memchr(data, 0, size);
    size_t n = nul ? (size_t)(nul - data) : size;
    char *schema = malloc(n + 1);
    memcpy(schema, data, n);
    schema[n] = 0;
    grammar g;
    if (schema_compile(schema, &g) == 0) {
        gr_arena a;
        gra_init(&a, &g);
        gr_state s, t;
        gr_start(&a, &s);
        if (nul) {
            for (size_t i = n + 1; i < size && s.n > 0; i++) {
                gr_step(&a, &s, data[i], &t);
                s = t;
                (void)gr_string_room(&a, &s);
            }
        }
        (void)gr_complete(&s);
        gra_free(&a);
        grammar_free(&g);
    }
    free(schema);
    return 0;
}
