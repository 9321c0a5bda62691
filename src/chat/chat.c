#include "chat.h"

#include <stdlib.h>
#include <string.h>

#include "../base/log.h"
#include "../base/strbuf.h"
#include "herd.h"

/* JavaScript's trim set: TAB VT FF SP NBSP ZWNBSP(FEFF) + Zs, and LF CR LS PS. */
static bool js_space(uint32_t c) {
    switch (c) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x20: case 0xA0: case 0x1680:
    case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000: case 0xFEFF:
        return true;
    default:
        return c >= 0x2000 && c <= 0x200A;
    }
}

/* Decodes the UTF-8 code point at s[i]; an invalid or truncated sequence decodes as its first
 * byte with *n = 1 (never a space, so it is kept). */
static uint32_t decode(const unsigned char *s, size_t len, size_t i, size_t *n) {
    unsigned c = s[i];
    size_t k = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : 0;
    *n = 1;
    if (k == 0 || i + k >= len) return c;
    uint32_t v = c & (0x3Fu >> k);
    for (size_t j = 1; j <= k; j++) {
        if ((s[i + j] & 0xC0) != 0x80) return c;
        v = (v << 6) | (s[i + j] & 0x3F);
    }
    *n = k + 1;
    return v;
}

void chat_trim(const char *str, size_t len, size_t *begin, size_t *end) {
    const unsigned char *s = (const unsigned char *)str;
    size_t b = 0, e = 0, i = 0, n;
    bool any = false;
    /* one pass: the first non-space start and the end of the last non-space character */
    while (i < len) {
        uint32_t c = decode(s, len, i, &n);
        if (!js_space(c)) {
            if (!any) b = i;
            any = true;
            e = i + n;
        }
        i += n;
    }
    *begin = any ? b : 0;
    *end = any ? e : 0;
}

static void put_trimmed(strbuf *b, const char *s) {
    size_t len = strlen(s), i, j;
    chat_trim(s, len, &i, &j);
    strbuf_put(b, s + i, j - i);
}

/* Appends a special token's text and records its span. */
static void sp(chat_rendered *r, const char *tok) {
    if (r->n_sp == r->cap_sp) {
        r->cap_sp = r->cap_sp ? r->cap_sp * 2 : 32;
        r->sp_off = herd_xrealloc(r->sp_off, r->cap_sp * sizeof *r->sp_off);
        r->sp_len = herd_xrealloc(r->sp_len, r->cap_sp * sizeof *r->sp_len);
    }
    r->sp_off[r->n_sp] = r->text.n;
    r->sp_len[r->n_sp++] = strlen(tok);
    strbuf_puts(&r->text, tok);
}

int chat_render(const herd_chat_message *msgs, size_t n, const herd_chat_params *p, chat_rendered *r) {
    memset(r, 0, sizeof *r);
    for (size_t i = 0; i < n; i++)
        if (!msgs[i].role || !msgs[i].content || !*msgs[i].role)
            return herd_err(HERD_E_ARG, "chat: message %zu has no role or no content", i);
    strbuf *b = &r->text;
    strbuf_put(b, "", 0);
    sp(r, "<|begin_of_text|>");
    sp(r, "<|start_header_id|>");
    strbuf_puts(b, "system");
    sp(r, "<|end_header_id|>");
    strbuf_puts(b, "\n\nCutting Knowledge Date: December 2023\nToday Date: ");
    strbuf_puts(b, p && p->date_string ? p->date_string : CHAT_DEFAULT_DATE);
    strbuf_puts(b, "\n\n");
    size_t first = 0;
    if (n > 0 && strcmp(msgs[0].role, "system") == 0) {
        put_trimmed(b, msgs[0].content);
        first = 1;
    }
    sp(r, "<|eot_id|>");
    for (size_t i = first; i < n; i++) {
        /* the official template writes tool results under the ipython header */
        const char *role = strcmp(msgs[i].role, "tool") == 0 ? "ipython" : msgs[i].role;
        sp(r, "<|start_header_id|>");
        strbuf_puts(b, role);
        sp(r, "<|end_header_id|>");
        strbuf_puts(b, "\n\n");
        if (strcmp(role, "ipython") == 0) strbuf_puts(b, msgs[i].content); /* not trimmed there */
        else put_trimmed(b, msgs[i].content);
        sp(r, "<|eot_id|>");
    }
    if (!p || p->add_generation_prompt) {
        sp(r, "<|start_header_id|>");
        strbuf_puts(b, "assistant");
        sp(r, "<|end_header_id|>");
        strbuf_puts(b, "\n\n");
    }
    return HERD_OK;
}

void chat_rendered_free(chat_rendered *r) {
    free(r->text.p);
    free(r->sp_off);
    free(r->sp_len);
    memset(r, 0, sizeof *r);
}

int herd_chat_format(const herd_chat_message *msgs, size_t n, const herd_chat_params *p, char **text) {
    chat_rendered r;
    *text = NULL;
    int rc = chat_render(msgs, n, p, &r);
    if (rc) return rc;
    *text = r.text.p;
    r.text.p = NULL;
    chat_rendered_free(&r);
    return HERD_OK;
}
