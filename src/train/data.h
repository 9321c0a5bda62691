/* Training data: the files `herd train --data` reads, turned into token sequences with a loss mask.
 *
 * Objectives (see `herd train --help` and docs/TRAINING.md):
 *   cpt      raw text. Documents are separated by the literal text "<|end_of_text|>"; each non-empty
 *            document is tokenized as `herd tokenize` does (BOS first when the model adds one, the rest
 *            as plain text) and followed by the <|end_of_text|> token; the documents' tokens form one
 *            stream, cut into windows of seq_len + 1 tokens that start every seq_len tokens (the last
 *            token of a window is the first of the next, so every token but the first is predicted
 *            once); a last window shorter than 2 tokens is dropped. Every token but the first is a target.
 *            So with no separator in its first seq_len + 1 tokens, the first window is the first
 *            seq_len + 1 ids of `herd tokenize -f FILE`.
 *            Decided: a document of whitespace only (" \t\r\n\v\f") is empty — skipped, not counted;
 *            otherwise a document is kept byte for byte (the newline after a separator starts the next
 *            one). A vocabulary without <|end_of_text|> (SentencePiece Llama 2) ends documents with its
 *            EOS. Linear in the file: one tokenizer call per document.
 *   sft      JSONL, one conversation per line: {"messages": [...], "tools": [...]?} in OpenAI's shape
 *            (system, user, assistant with content or tool_calls, tool/ipython results). The tokens are
 *            exactly what `herd format --messages FILE --tokens --no-generation-prompt` gives for those
 *            messages (herd_chat_tokenize, default chat params, "tools" as tools_json). Targets: the
 *            tokens of each assistant message's content (or its tool call) and its closing <|eot_id|> /
 *            <|eom_id|>; not the role headers, not other messages. train_on_input: every token but the
 *            first is a target.
 *            Decided: an optional "builtin_tools": ["brave_search", ...] is `herd format --builtin-tools`
 *            (built-in calls then render as <|python_tag|>name.call(...)<|eom_id|>); "tools" or
 *            "builtin_tools" null = absent. "developer" is a system message (as herd format reads it).
 *            A message the template renders under another header is not a target: with tools in the
 *            user message, the first non-system message becomes the tools user block whatever its role.
 *            With train_on_input, a conversation without an assistant message is kept (it has targets).
 *   dpo      JSONL, {"messages": [...] | "prompt": "text", "chosen": R, "rejected": R} where R is a string
 *            (an assistant message's content), one message object, or an array of messages. Each
 *            example gives two sequences: the prompt conversation followed by the chosen response, and
 *            the same prompt followed by the rejected one; targets as in sft, over the response only.
 *            Decided: "prompt" and "messages" together are an error; an empty response array is an
 *            error; train_on_input does not apply (targets are always the responses' assistant bodies);
 *            the two prompts' tokens are checked identical. "tools" / "builtin_tools" as in sft.
 *   distill  the same files as sft (JSONL messages) or, when the file is not JSONL, as cpt.
 *            Decided: JSONL when the first byte that is not whitespace (after a UTF-8 byte order mark)
 *            is '{'.
 * Blank lines in JSONL are ignored. An overlong sequence (more than seq_len + 1 tokens) is truncated
 * to its first seq_len + 1 tokens or skipped (overlong), and counted; a dpo pair is skipped or
 * truncated as a pair; a sequence (or pair) left with no target is skipped and counted as well.
 * Decided: a pair is skipped when either side has no target; an example truncated and then skipped
 * for want of targets counts in n_skipped only. An empty file, or one with only skipped examples, is
 * not an error (n_seqs == 0: the caller decides).
 * JSONL details: lines end at '\n' (a '\r' before it is ignored), a line of spaces / tabs is blank, a
 * UTF-8 byte order mark at the start is skipped, an unknown key is ignored, a duplicate key is an error
 * (as herd format's message parser), and the messages accepted are exactly those `herd format
 * --messages` accepts.
 *
 * Errors: one line naming the file (the path as given), the line and the field, e.g.
 *   "data.jsonl:7: messages[2].role: expected one of system, user, assistant, tool, ipython (or developer),
 *    got 'bot' (Llama 3.1's template has no such role)"
 *   "data.jsonl:3: invalid JSON at column 14: unexpected token near ']'"
 *   "data.jsonl:9: chosen: missing; expected a string, a message object or an array of messages"
 * returned as HERD_E_FORMAT (HERD_E_IO when the file cannot be read; HERD_E_UNSUPPORTED when the
 * vocabulary has no Llama 3 chat tokens for sft / dpo; HERD_E_ARG for bad parameters). On error *out
 * is empty.
 */
#ifndef HERD_TRAIN_DATA_H
#define HERD_TRAIN_DATA_H

#include <stdbool.h>
#include <stdint.h>

#include "herd.h"

typedef enum { TRAIN_OBJ_CPT = 0, TRAIN_OBJ_SFT, TRAIN_OBJ_DPO, TRAIN_OBJ_DISTILL } train_objective;
typedef enum { TRAIN_OVERLONG_TRUNCATE = 0, TRAIN_OVERLONG_SKIP } train_overlong;

/* One training sequence. target[i] = 1 when token i is predicted (from tokens[0..i)) and counts in
 * the loss; target[0] is always 0. */
typedef struct {
    int32_t *tokens; /* [n] */
    uint8_t *target; /* [n] */
    int64_t n;
    int64_t line;    /* 1-based source line (JSONL; both of a dpo pair), or the 0-based window (cpt) */
} train_seq;

typedef struct {
    int objective;       /* train_objective */
    int64_t seq_len;     /* tokens predicted per sequence at most (a sequence holds <= seq_len + 1 tokens) */
    bool train_on_input; /* sft/distill: every token a target */
    int overlong;        /* train_overlong */
} train_data_params;

typedef struct {
    /* cpt, sft, distill: n_examples sequences (cpt: one per window); dpo: 2 * n_examples, chosen at 2i,
     * rejected at 2i + 1. Each sequence owns its arrays; train_data_free frees them all. */
    train_seq *seqs;
    int64_t n_seqs;
    int64_t n_examples;
    int64_t n_truncated;  /* examples cut to seq_len + 1 tokens */
    int64_t n_skipped;    /* examples dropped (overlong with TRAIN_OVERLONG_SKIP, or no target left) */
    int64_t n_tokens;     /* tokens over all seqs (cpt: the token shared by two windows counts twice) */
    int64_t n_targets;    /* targets over all seqs */
    int64_t cap_seqs;     /* internal: seqs allocated */
} train_data;

/* Reads and tokenizes path for the objective (seq_len >= 1). OUT: *out (free with train_data_free;
 * empty on error). */
int train_data_load(const herd_model *m, const char *path, const train_data_params *p, train_data *out);
void train_data_free(train_data *d);

#endif
