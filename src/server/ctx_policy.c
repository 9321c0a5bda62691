/* The context-full policy of chat completions: see ctx_policy.h. */
#include "ctx_policy.h"

#include <stdio.h>
#include <string.h>

#include "../base/log.h"
#include "../engine/engine.h"

bool ctx_policy_parse(json_t *body, int def, int *out, char *err, size_t cap) {
    json_t *v = json_object_get(body, "context_policy");
    *out = def;
    if (!v || json_is_null(v)) return true;
    const char *s = json_is_string(v) ? json_string_value(v) : "";
    if (!strcmp(s, "stop")) *out = CTX_POLICY_STOP;
    else if (!strcmp(s, "shift")) *out = CTX_POLICY_SHIFT;
    else {
        snprintf(err, cap, "'context_policy' must be \"stop\" or \"shift\"");
        return false;
    }
    return true;
}

int ctx_policy_tokenize(int policy, const herd_model *m, chat_messages *conv, const herd_chat_params *cp,
                        int64_t n_ctx, int64_t max_tokens, int32_t **ids, int64_t *n, int64_t *n_dropped) {
    *n_dropped = 0;
    if (policy != CTX_POLICY_SHIFT) return herd_chat_tokenize(m, conv->msgs, conv->n, cp, ids, n);
    size_t from, k;
    int rc = herd_chat_tokenize_fit(m, conv->msgs, conv->n, cp, n_ctx, max_tokens > 0 ? max_tokens : n_ctx / 4, &from,
                                    &k, ids, n);
    if (rc != HERD_OK) return rc;
    memmove(conv->msgs + from, conv->msgs + from + k, (conv->n - from - k) * sizeof *conv->msgs);
    conv->n -= k;
    *n_dropped = (int64_t)k;
    return HERD_OK;
}

void ctx_policy_shift_prompts(int policy, const herd_model *m, const chat_messages *conv, const herd_chat_params *cp,
                              int64_t n_ids, engine_shift_prompt **out, int *n) {
    *out = NULL;
    *n = 0;
    if (policy != CTX_POLICY_SHIFT || conv->n < 2) return;
    /* a shallow copy of the messages (the strings stay conv's), losing one turn per round: the fit with
     * n_ctx = the current length and reserve 1 leaves out exactly the oldest turn */
    herd_chat_message *msgs = herd_xmalloc(conv->n * sizeof *msgs);
    memcpy(msgs, conv->msgs, conv->n * sizeof *msgs);
    size_t nm = conv->n;
    int64_t cur = n_ids, dropped = 0;
    for (;;) {
        size_t from, k;
        int32_t *ids;
        int64_t ni;
        if (herd_chat_tokenize_fit(m, msgs, nm, cp, cur, 1, &from, &k, &ids, &ni) != HERD_OK) break;
        if (k == 0) {
            free(ids);
            break;
        }
        memmove(msgs + from, msgs + from + k, (nm - from - k) * sizeof *msgs);
        nm -= k;
        dropped += (int64_t)k;
        *out = herd_xrealloc(*out, (size_t)(*n + 1) * sizeof **out);
        (*out)[(*n)++] = (engine_shift_prompt){.ids = ids, .n = ni, .n_dropped = dropped};
        cur = ni;
    }
    free(msgs);
}

void ctx_policy_mark(json_t *choice, int finish) {
    if (finish == ENGINE_FINISH_CONTEXT) json_object_set_new(choice, "stop_reason", json_string("context"));
}
