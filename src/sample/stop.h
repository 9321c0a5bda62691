/* From token pieces to final text: stop strings and UTF-8 boundaries.
 *
 * Generated text is released only when it is final: a tail that may still grow into a stop string
 * is held back, and so is an incomplete UTF-8 sequence at the end (a token may end mid-character),
 * so every released piece is safe to print or to put in JSON. When a stop string completes, the
 * text is cut before it and nothing of it is ever released. */
#ifndef HERD_SAMPLE_STOP_H
#define HERD_SAMPLE_STOP_H

#include <stdbool.h>
#include <stddef.h>

#include "../base/strbuf.h"

typedef struct {
    strbuf text;        /* everything generated so far (cut at a completed stop string) */
    size_t sent;        /* bytes of text already released */
    const char **stop;  /* borrowed; non-empty strings */
    int n_stop;
    size_t max_stop;
    bool stopped;       /* a stop string completed */
} text_stream;

void text_stream_init(text_stream *ts, const char **stop, int n_stop);
void text_stream_free(text_stream *ts);
/* Appends a token's bytes. OUT: *from, the offset in ts->text.p of the newly final bytes;
 * returns how many there are (0 if all is held back). Sets ts->stopped when a stop string completed. */
size_t text_stream_push(text_stream *ts, const char *piece, size_t n, size_t *from);
/* Releases whatever is held back (at the end of generation). */
size_t text_stream_flush(text_stream *ts, size_t *from);

#endif
