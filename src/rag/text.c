/* HTML to text, file loading and token windows for src/rag (see text.h). */
#include "text.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>

#include "../base/log.h"
#include "herd.h"

int rag_text_kind_of(const char *path) {
    const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    if (!dot || (slash && dot < slash)) return -1;
    static const struct { const char *ext; int kind; } k[] = {
        {".txt", RAG_TEXT_PLAIN},  {".text", RAG_TEXT_PLAIN}, {".md", RAG_TEXT_MARKDOWN}, {".markdown", RAG_TEXT_MARKDOWN},
        {".html", RAG_TEXT_HTML},  {".htm", RAG_TEXT_HTML},   {".xhtml", RAG_TEXT_HTML},  {".pdf", RAG_TEXT_PDF},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        if (!strcasecmp(dot, k[i].ext)) return k[i].kind;
    return -1;
}

/* ---- HTML ------------------------------------------------------------------------------------------ */

typedef struct {
    char *p;
    size_t n, cap;
} obuf;

static void ob_put(obuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = herd_xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

/* Appends code point c as UTF-8 (invalid ones as U+FFFD). */
static void ob_utf8(obuf *b, unsigned long c) {
    char u[4];
    if (c == 0 || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) c = 0xFFFD;
    if (c < 0x80) u[0] = (char)c, ob_put(b, u, 1);
    else if (c < 0x800) u[0] = (char)(0xC0 | c >> 6), u[1] = (char)(0x80 | (c & 63)), ob_put(b, u, 2);
    else if (c < 0x10000)
        u[0] = (char)(0xE0 | c >> 12), u[1] = (char)(0x80 | (c >> 6 & 63)), u[2] = (char)(0x80 | (c & 63)), ob_put(b, u, 3);
    else
        u[0] = (char)(0xF0 | c >> 18), u[1] = (char)(0x80 | (c >> 12 & 63)), u[2] = (char)(0x80 | (c >> 6 & 63)),
        u[3] = (char)(0x80 | (c & 63)), ob_put(b, u, 4);
}

/* Decodes the entity at s[0] == '&' (at most n bytes); returns bytes consumed, 0 if not an entity. */
static size_t entity(obuf *b, const char *s, size_t n) {
    static const struct { const char *name; unsigned long cp; } named[] = {
        {"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}, {"nbsp", ' '},
        {"copy", 0xA9}, {"reg", 0xAE}, {"mdash", 0x2014}, {"ndash", 0x2013}, {"hellip", 0x2026},
        {"lsquo", 0x2018}, {"rsquo", 0x2019}, {"ldquo", 0x201C}, {"rdquo", 0x201D},
    };
    size_t e = 1;
    while (e < n && e < 12 && s[e] != ';') e++;
    if (e >= n || s[e] != ';' || e < 2) return 0;
    if (s[1] == '#') {
        bool hex = e > 2 && (s[2] == 'x' || s[2] == 'X');
        unsigned long c = 0;
        size_t i = hex ? 3 : 2;
        if (i >= e) return 0;
        for (; i < e; i++) {
            int d = hex ? (isdigit((unsigned char)s[i]) ? s[i] - '0' : isxdigit((unsigned char)s[i]) ? (tolower((unsigned char)s[i]) - 'a' + 10) : -1)
                        : (isdigit((unsigned char)s[i]) ? s[i] - '0' : -1);
            if (d < 0) return 0;
            c = c * (hex ? 16 : 10) + (unsigned long)d;
            if (c > 0x10FFFF) c = 0x110000;
        }
        ob_utf8(b, c);
        return e + 1;
    }
    for (size_t k = 0; k < sizeof named / sizeof named[0]; k++)
        if (strlen(named[k].name) == e - 1 && !memcmp(s + 1, named[k].name, e - 1)) {
            ob_utf8(b, named[k].cp);
            return e + 1;
        }
    return 0;
}

static bool is_block(const char *t, size_t n) {
    static const char *blocks[] = {"p", "br", "div", "li", "ul", "ol", "tr", "table", "h1", "h2", "h3", "h4", "h5",
                                   "h6", "section", "article", "header", "footer", "blockquote", "pre", "hr",
                                   "title", "dt", "dd", "nav", "main", "aside", "figure", "td", "th"};
    for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++)
        if (strlen(blocks[i]) == n && !strncasecmp(t, blocks[i], n)) return true;
    return false;
}

/* Finds "</name" (case-insensitive) from s; returns its offset or n. */
static size_t find_close(const char *s, size_t n, const char *name) {
    size_t k = strlen(name);
    for (size_t i = 0; i + 2 + k <= n; i++)
        if (s[i] == '<' && s[i + 1] == '/' && !strncasecmp(s + i + 2, name, k)) return i;
    return n;
}

void rag_html_to_text(const char *h, size_t len, char **out, size_t *out_len) {
    obuf raw = {0};
    size_t i = 0;
    while (i < len) {
        char ch = h[i];
        if (ch == '<') {
            if (i + 4 <= len && !memcmp(h + i, "<!--", 4)) { /* comment */
                size_t j = i + 4;
                while (j + 3 <= len && memcmp(h + j, "-->", 3)) j++;
                i = j + 3 <= len ? j + 3 : len;
                continue;
            }
            size_t j = i + 1;
            bool closing = j < len && h[j] == '/';
            if (closing) j++;
            size_t t0 = j;
            while (j < len && (isalnum((unsigned char)h[j]) || h[j] == '-' || h[j] == ':')) j++;
            size_t tn = j - t0;
            if (tn == 0 && !(j < len && (h[j] == '!' || h[j] == '?'))) { /* a lone '<' is text */
                ob_put(&raw, "<", 1);
                i++;
                continue;
            }
            /* skip to the tag's end, minding quoted attribute values */
            char q = 0;
            while (j < len && (q || h[j] != '>')) {
                if (q && h[j] == q) q = 0;
                else if (!q && (h[j] == '"' || h[j] == '\'')) q = h[j];
                j++;
            }
            j = j < len ? j + 1 : len;
            if (!closing && ((tn == 6 && !strncasecmp(h + t0, "script", 6)) || (tn == 5 && !strncasecmp(h + t0, "style", 5)) ||
                             (tn == 8 && !strncasecmp(h + t0, "template", 8)) || (tn == 8 && !strncasecmp(h + t0, "noscript", 8)))) {
                char name[9];
                memcpy(name, h + t0, tn);
                name[tn] = 0;
                size_t c = find_close(h + j, len - j, name);
                j += c;
                while (j < len && h[j] != '>') j++;
                j = j < len ? j + 1 : len;
            }
            if (tn && is_block(h + t0, tn)) ob_put(&raw, "\n", 1);
            else if (tn) ob_put(&raw, " ", 1);
            i = j;
        } else if (ch == '&') {
            size_t used = entity(&raw, h + i, len - i);
            if (!used) ob_put(&raw, "&", 1), used = 1;
            i += used;
        } else {
            if (ch) ob_put(&raw, ch == '\n' || ch == '\r' ? " " : h + i, 1); /* breaks come from block tags; NULs dropped */
            i++;
        }
    }
    /* fold: spaces/tabs runs -> one space; trim each line; at most one empty line in a row */
    obuf o = {0};
    size_t n = raw.n, nl = 2; /* newlines just written (2: at start, drop leading blank lines) */
    bool space = false;
    for (size_t k = 0; k < n; k++) {
        char c = raw.p[k];
        if (c == '\n') {
            space = false;
            if (nl < 2) ob_put(&o, "\n", 1), nl++;
        } else if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') {
            space = nl == 0;
        } else {
            if (space) ob_put(&o, " ", 1);
            space = false;
            nl = 0;
            ob_put(&o, &c, 1);
        }
    }
    while (o.n && o.p[o.n - 1] == '\n') o.n--;
    ob_put(&o, "", 0);
    o.p[o.n] = 0;
    free(raw.p);
    *out = o.p;
    *out_len = o.n;
}

/* ---- files ---------------------------------------------------------------------------------------- */

static int read_all(FILE *fp, char **out, size_t *out_len) {
    obuf b = {0};
    char tmp[65536];
    size_t got;
    while ((got = fread(tmp, 1, sizeof tmp, fp)) > 0) ob_put(&b, tmp, got);
    ob_put(&b, "", 0);
    b.p[b.n] = 0;
    *out = b.p;
    *out_len = b.n;
    return ferror(fp) ? -1 : 0;
}

int rag_text_load(const char *path, int kind, char **out, size_t *out_len) {
    if (kind == RAG_TEXT_PDF) {
        if (system("command -v pdftotext >/dev/null 2>&1") != 0)
            return herd_err(HERD_E_IO, "rag: '%s' is a PDF and pdftotext is not installed (Debian: apt-get install poppler-utils)",
                            path);
        FILE *t = fopen(path, "rb");
        if (!t) return herd_err(HERD_E_IO, "rag: cannot open '%s'", path);
        fclose(t);
        /* the path is passed as one argument, quoted for the shell */
        obuf cmd = {0};
        ob_put(&cmd, "pdftotext -layout -enc UTF-8 '", 30);
        for (const char *p = path; *p; p++)
            if (*p == '\'') ob_put(&cmd, "'\\''", 4);
            else ob_put(&cmd, p, 1);
        ob_put(&cmd, "' - 2>/dev/null", 15);
        ob_put(&cmd, "", 0);
        cmd.p[cmd.n] = 0;
        FILE *fp = popen(cmd.p, "r");
        free(cmd.p);
        if (!fp) return herd_err(HERD_E_IO, "rag: cannot run pdftotext on '%s'", path);
        int rc = read_all(fp, out, out_len);
        int st = pclose(fp);
        if (rc || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            free(*out);
            *out = NULL;
            return herd_err(HERD_E_FORMAT, "rag: pdftotext could not read '%s' (not a valid PDF?)", path);
        }
        return HERD_OK;
    }
    FILE *fp = fopen(path, "rb");
    if (!fp) return herd_err(HERD_E_IO, "rag: cannot open '%s'", path);
    char *raw;
    size_t n;
    int rc = read_all(fp, &raw, &n);
    fclose(fp);
    if (rc) {
        free(raw);
        return herd_err(HERD_E_IO, "rag: cannot read '%s'", path);
    }
    if (kind == RAG_TEXT_HTML) {
        rag_html_to_text(raw, n, out, out_len);
        free(raw);
    } else {
        *out = raw;
        *out_len = n;
    }
    return HERD_OK;
}

int64_t rag_chunk_windows(int64_t n, int64_t size, int64_t overlap, int64_t **starts, int64_t **ends) {
    HERD_ASSERT(size > 0 && overlap >= 0 && overlap < size);
    int64_t step = size - overlap, cnt = 0;
    if (n > 0) cnt = n <= size ? 1 : 1 + (n - size + step - 1) / step;
    *starts = herd_xmalloc((size_t)(cnt ? cnt : 1) * sizeof(int64_t));
    *ends = herd_xmalloc((size_t)(cnt ? cnt : 1) * sizeof(int64_t));
    for (int64_t i = 0; i < cnt; i++) {
        int64_t s = i * step, e = s + size;
        if (e > n) e = n, s = n - size > 0 ? n - size : 0;
        (*starts)[i] = s, (*ends)[i] = e;
    }
    return cnt;
}
