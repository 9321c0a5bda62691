/* Public API: fitting a conversation into a context by leaving out its oldest turns (the context-full
 * policy "shift" of herd chat and herd serve, docs/CONTEXT.md).
 *
 * Exact and simple over clever: the kept messages are re-templated and re-tokenized from scratch, so the
 * prompt is exactly what the official template gives for the shorter conversation (no KV surgery, no
 * position shifting); callers re-prefill what their cache does not share with it. */
#include <stdlib.h>
#include <string.h>

#include "../base/log.h"
#include "herd.h"

/* The index of the first user message after i, or n. */
static size_t next_user(const herd_chat_message *msgs, size_t n, size_t i) {
    for (size_t k = i + 1; k < n; k++)
        if (msgs[k].role && !strcmp(msgs[k].role, "user")) return k;
    return n;
}

int herd_chat_tokenize_fit(const herd_model *m, const herd_chat_message *msgs, size_t n, const herd_chat_params *p,
                           int64_t n_ctx, int64_t reserve, size_t *drop_from, size_t *n_dropped, int32_t **ids,
                           int64_t *n_ids) {
    *ids = NULL;
    *n_ids = 0;
    *n_dropped = 0;
    size_t k0 = 0; /* the leading system messages stay */
    while (k0 < n && msgs[k0].role && !strcmp(msgs[k0].role, "system")) k0++;
    *drop_from = k0;
    if (reserve < 1) reserve = 1; /* at least one position to generate in */
    /* view: the system messages, then msgs[k0 + dropped ..) */
    herd_chat_message *view = herd_xmalloc((n ? n : 1) * sizeof *view);
    memcpy(view, msgs, k0 * sizeof *view);
    size_t dropped = 0;
    int rc;
    for (;;) {
        memcpy(view + k0, msgs + k0 + dropped, (n - k0 - dropped) * sizeof *view);
        if ((rc = herd_chat_tokenize(m, view, n - dropped, p, ids, n_ids)) != HERD_OK) break;
        if (*n_ids + reserve <= n_ctx) break;
        size_t next = next_user(msgs, n, k0 + dropped); /* the end of the oldest turn left */
        if (next >= n) break;                              /* only the last turn is left */
        free(*ids);
        *ids = NULL;
        dropped = next - k0;
    }
    free(view);
    *n_dropped = dropped;
    if (rc == HERD_OK && *n_ids >= n_ctx) {
        int64_t got = *n_ids;
        free(*ids);
        *ids = NULL;
        *n_ids = 0;
        return herd_err(HERD_E_RANGE,
                        "the conversation needs %lld tokens even without its %zu oldest messages (the system "
                        "prompt and the last turn are kept) but the context holds %lld",
                        (long long)got, dropped, (long long)n_ctx);
    }
    return rc;
}
