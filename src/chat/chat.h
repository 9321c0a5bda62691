/* Llama 3.1 chat prompt format (LLAMA31.md, Chat format), rendered byte-for-byte as the official
 * template (tokenizer.chat_template of Meta's GGUFs / llama.cpp's meta-llama-Llama-3.1-8B-Instruct
 * .jinja) renders messages without tools:
 *
 *   <|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n
 *   Cutting Knowledge Date: December 2023\nToday Date: {date}\n\n{system, trimmed}<|eot_id|>
 *   then per message: <|start_header_id|>{role}<|end_header_id|>\n\n{content, trimmed}<|eot_id|>
 *   and, for a generation prompt: <|start_header_id|>assistant<|end_header_id|>\n\n
 *
 * Only a *first* system message becomes the system block; the system block is always present.
 * Implements herd_chat_format() of herd.h. */
#ifndef HERD_CHAT_H
#define HERD_CHAT_H

#include <stdbool.h>
#include <stddef.h>

/* The span of s[0..len) without leading/trailing whitespace as Jinja's `trim` filter sees it in
 * @huggingface/jinja (JavaScript String.prototype.trim: WhiteSpace and LineTerminator code points). */
void chat_trim(const char *s, size_t len, size_t *begin, size_t *end);

#define CHAT_DEFAULT_DATE "26 Jul 2024"

#include "../base/strbuf.h"
#include "herd.h"

/* Where one input message landed in the rendered text (byte offsets):
 *   [begin, body)  its header, "<|start_header_id|>{role}<|end_header_id|>\n\n"
 *   [body, end)    what follows the header up to and including the closing <|eot_id|> / <|eom_id|>:
 *                  the content (trimmed), the tool call, or the quoted tool result.
 * The template folds two messages into shared blocks, and both keep the whole block as their place:
 * a first system message is the system block (body: from "Environment: ipython" / "Cutting Knowledge
 * Date" on), and with tools in the user message the first non-system message is the tools user block
 * (body: the tool instructions, the function list, then its content), under the header "user"
 * whatever its role. `assistant`: the header rendered is "assistant" (content or tool call). */
typedef struct {
    size_t begin, body, end;
    bool assistant;
} chat_msg_place;

/* A rendered prompt: the text, and where in it the special tokens are (so that a tokenizer can
 * map exactly those spans to special ids and treat everything else — message contents included —
 * as plain text), and where each message is. */
typedef struct {
    strbuf text;
    size_t *sp_off, *sp_len; /* n_sp spans, in order */
    size_t n_sp, cap_sp;
    chat_msg_place *msg;     /* [n] for the n messages rendered */
} chat_rendered;

int chat_render(const herd_chat_message *msgs, size_t n, const herd_chat_params *p, chat_rendered *out);
void chat_rendered_free(chat_rendered *r);

#endif
