#include "stop.h"

#include <stdlib.h>
#include <string.h>

void text_stream_init(text_stream *ts, const char **stop, int n_stop) {
    memset(ts, 0, sizeof *ts);
    ts->stop = stop;
    ts->n_stop = n_stop;
    for (int i = 0; i < n_stop; i++)
        if (strlen(stop[i]) > ts->max_stop) ts->max_stop = strlen(stop[i]);
    strbuf_put(&ts->text, "", 0);
}

void text_stream_free(text_stream *ts) {
    free(ts->text.p);
    memset(ts, 0, sizeof *ts);
}

/* Length of an incomplete UTF-8 sequence at the end of s[0..n) (0 if it ends on a boundary). */
static size_t utf8_incomplete_tail(const char *s, size_t n) {
    for (size_t k = 1; k <= 3 && k <= n; k++) {
        unsigned char c = (unsigned char)s[n - k];
        if ((c & 0xC0) == 0x80) continue; /* continuation byte: look further back */
        size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        return need > k ? k : 0;
    }
    return 0;
}

/* Longest suffix of s[0..n) that is a proper prefix of some stop string. */
static size_t stop_prefix_tail(const text_stream *ts, const char *s, size_t n) {
    size_t best = 0;
    for (int i = 0; i < ts->n_stop; i++) {
        size_t L = strlen(ts->stop[i]);
        for (size_t k = L > 1 ? L - 1 : 0; k > best; k--)
            if (k <= n && memcmp(s + n - k, ts->stop[i], k) == 0) {
                best = k;
                break;
            }
    }
    return best;
}

size_t text_stream_push(text_stream *ts, const char *piece, size_t n, size_t *from) {
    *from = ts->sent;
    if (ts->stopped) return 0;
    strbuf_put(&ts->text, piece, n);
    strbuf *t = &ts->text;
    /* a stop string can only newly appear in the unreleased tail plus max_stop bytes before it */
    if (ts->n_stop > 0) {
        size_t start = ts->sent > ts->max_stop ? ts->sent - ts->max_stop : 0, cut = t->n;
        for (int i = 0; i < ts->n_stop; i++) {
            const char *hit = memmem(t->p + start, t->n - start, ts->stop[i], strlen(ts->stop[i]));
            if (hit && (size_t)(hit - t->p) < cut) cut = (size_t)(hit - t->p);
        }
        if (cut < t->n) {
            t->n = cut;
            t->p[cut] = 0;
            ts->stopped = true;
        }
    }
    size_t end = t->n;
    if (!ts->stopped) {
        size_t hold = stop_prefix_tail(ts, t->p, t->n), inc = utf8_incomplete_tail(t->p, t->n);
        end = t->n - (inc > hold ? inc : hold);
    }
    if (end <= ts->sent) return 0;
    size_t k = end - ts->sent;
    ts->sent = end;
    return k;
}

size_t text_stream_flush(text_stream *ts, size_t *from) {
    *from = ts->sent;
    size_t k = ts->text.n - ts->sent;
    ts->sent = ts->text.n;
    return k;
}
