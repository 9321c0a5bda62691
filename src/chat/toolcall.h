/* Parsing the tool calls Llama 3.1 emits (LLAMA31.md, Built-in and Custom tools):
 *
 *   <|python_tag|>brave_search.call(query="...")     built-in tool (any name.call(k="v", ...))
 *   <|python_tag|>print(2**10)                        raw python: the code interpreter
 *   <|python_tag|>{"type": "function", "name": "f", "parameters": {...}}
 *   {"name": "f", "parameters": {...}}                (also "arguments"; several separated by ";")
 *   <function=f>{"n": 10}</function>
 *
 * The generated text is given with the <|python_tag|> token written as its text. Calls are
 * recognised at the start of the reply (after whitespace), where Llama 3.1 puts them; anything that
 * does not parse completely is plain content — never an error. The streaming parser releases content
 * as soon as it cannot be the start of a call, and holds everything that might be one. */
#ifndef HERD_CHAT_TOOLCALL_H
#define HERD_CHAT_TOOLCALL_H

#include <stdbool.h>
#include <stddef.h>

#include "../base/strbuf.h"
#include "herd.h"

#define TOOLCALL_PYTHON_TAG "<|python_tag|>"

typedef struct {
    strbuf buf;       /* everything fed */
    size_t released;  /* bytes of buf given out as content */
    int mode;         /* undecided / content / maybe-call */
} tool_stream;

void tool_stream_init(tool_stream *ts);
void tool_stream_free(tool_stream *ts);
/* Feeds bytes. OUT: *from; returns how many bytes of ts->buf.p + *from are now plain content. */
size_t tool_stream_feed(tool_stream *ts, const char *s, size_t n, size_t *from);
/* At the end: the calls and the content not yet released (see herd_parse_tool_calls). */
int tool_stream_finish(tool_stream *ts, herd_parsed_output *out);

#endif
