/* libFuzzer target: herd sdg's seed-line parser (src/sdg/seeds.c, sdg_seed_parse_line) over arbitrary
 * bytes. A line that parses must give exactly one of a conversation (a JSON array ending in a user turn)
 * and a document; one that does not must say why and leave nothing allocated. Any outcome but a crash, a
 * leak or a sanitizer report is fine. Seeds: fuzz/seeds/fuzz_sdg_seeds/ (a prompt string, a prompt object
 * with an id, a conversation, a document, a few bad ones). Built by `make fuzz`. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "sdg/seeds.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sdg_seed s;
    char msg[256];
    msg[0] = 0;
    int rc = sdg_seed_parse_line((const char *)data, size, &s, msg, sizeof msg);
    if (rc == 0) {
        if ((s.messages != NULL) == (s.document != NULL)) abort();
        if (s.id && !*s.id) abort();
        if (s.messages) {
            json_t *m = json_loads(s.messages, 0, NULL);
            json_t *last = json_array_get(m, json_array_size(m) - 1);
            if (!json_is_array(m) || strcmp(json_string_value(json_object_get(last, "role")), "user"))
                abort();
            json_decref(m);
        }
        free(s.id), free(s.messages), free(s.document);
    } else if (rc != -1 || !*msg || s.id || s.messages || s.document)
        abort();
    return 0;
}
