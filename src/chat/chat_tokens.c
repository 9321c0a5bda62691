#include "chat_tokens.h"

#include <stdlib.h>
#include <string.h>

#include "../base/log.h"
#include "chat.h"

typedef struct {
    int32_t *ids;
    size_t *off; /* [n] byte offset in the rendered text where each token starts */
    int64_t n, cap;
} tok_list;

static void push(tok_list *t, int32_t id, size_t off) {
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 256;
        t->ids = herd_xrealloc(t->ids, (size_t)t->cap * sizeof *t->ids);
        t->off = herd_xrealloc(t->off, (size_t)t->cap * sizeof *t->off);
    }
    t->ids[t->n] = id;
    t->off[t->n++] = off;
}

/* The first token in [lo, hi) that starts at or after byte `at` (hi when none). */
static int64_t first_from(const tok_list *t, int64_t lo, int64_t hi, size_t at) {
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (t->off[mid] < at)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int chat_tokenize(const herd_vocab *v, const herd_chat_message *msgs, size_t n, const herd_chat_params *p,
                  chat_tokens *out) {
    memset(out, 0, sizeof *out);
    chat_rendered r;
    int rc = chat_render(msgs, n, p, &r);
    if (rc) return rc;
    tok_list t = {0};
    size_t at = 0;
    for (size_t i = 0; i <= r.n_sp && rc == 0; i++) {
        size_t end = i < r.n_sp ? r.sp_off[i] : r.text.n;
        if (end > at) { /* the plain text before special span i */
            int32_t *part = NULL;
            int64_t np = 0;
            rc = vocab_tokenize(v, r.text.p + at, end - at, false, false, &part, &np);
            size_t off = at;
            for (int64_t k = 0; k < np; k++) {
                push(&t, part[k], off < end ? off : end);
                int64_t len = vocab_token_to_piece(v, part[k], true, NULL, 0);
                off += len > 0 ? (size_t)len : 0;
            }
            free(part);
        }
        if (rc == 0 && i < r.n_sp) {
            int32_t sid = vocab_find(v, r.text.p + r.sp_off[i], r.sp_len[i]);
            if (sid < 0)
                rc = herd_err(HERD_E_UNSUPPORTED,
                              "chat: the vocabulary has no token '%.*s' (not a Llama 3 chat model)",
                              (int)r.sp_len[i], r.text.p + r.sp_off[i]);
            else
                push(&t, sid, r.sp_off[i]);
            at = r.sp_off[i] + r.sp_len[i];
        }
    }
    if (rc == 0) {
        out->msg = herd_xcalloc(n ? n : 1, sizeof *out->msg);
        out->n_msg = n;
        for (size_t i = 0; i < n; i++) {
            const chat_msg_place *pl = &r.msg[i];
            chat_msg_span *s = &out->msg[i];
            /* begin and end sit on special tokens, so they are token boundaries; body is the token
             * that holds the body's first byte (the last one starting at or before it) */
            s->begin = first_from(&t, 0, t.n, pl->begin);
            s->end = first_from(&t, s->begin, t.n, pl->end);
            s->body = first_from(&t, s->begin, s->end, pl->body);
            if (s->body == s->end || (s->body > s->begin && t.off[s->body] > pl->body)) s->body--;
            s->assistant = pl->assistant;
        }
        out->ids = t.ids;
        out->n_ids = t.n;
        t.ids = NULL;
    }
    free(t.ids);
    free(t.off);
    chat_rendered_free(&r);
    if (rc) chat_tokens_free(out);
    return rc;
}

void chat_tokens_free(chat_tokens *t) {
    free(t->ids);
    free(t->msg);
    memset(t, 0, sizeof *t);
}
