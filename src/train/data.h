/* Training data: the files `herd train --data` reads, turned into token sequences with a loss mask.
 *
 * Objectives (see `herd train --help` and docs/TRAINING.md):
 *   cpt      raw text. Documents are separated by the literal text "<|end_of_text|>"; each non-empty
 *            document is tokenized as `herd tokenize` does (BOS first when the model adds one, the rest
 *            as plain text) and followed by the <|end_of_text|> token; the documents' tokens form one
 *            stream, cut into windows of seq_len + 1 tokens that start every seq_len tokens (the last
 *            token of a window is the first of the next, so every token but the first is predicted
 *            once); a last window shorter than 2 tokens is dropped. Every token but the first is a target.
 *   sft      JSONL, one conversation per line: {"messages": [...], "tools": [...]?} in OpenAI's shape
 *            (system, user, assistant with content or tool_calls, tool/ipython results). The tokens are
 *            exactly what `herd format --messages FILE --tokens --no-generation-prompt` gives for those
 *            messages (herd_chat_tokenize, default chat params, "tools" as tools_json). Targets: the
 *            tokens of each assistant message's content (or its tool call) and its closing <|eot_id|> /
 *            <|eom_id|>; not the role headers, not other messages. train_on_input: every token but the
 *            first is a target.
 *   dpo      JSONL, {"messages": [...] | "prompt": "text", "chosen": R, "rejected": R} where R is a string
 *            (an assistant message's content), one message object, or an array of messages. Each
 *            example gives two sequences: the prompt conversation followed by the chosen response, and
 *            the same prompt followed by the rejected one; targets as in sft, over the response only.
 *   distill  the same files as sft (JSONL messages) or, when the file is not JSONL, as cpt.
 * Blank lines in JSONL are ignored. An overlong sequence (more than seq_len + 1 tokens) is truncated
 * to its first seq_len + 1 tokens or skipped (overlong), and counted; a dpo pair is skipped or
 * truncated as a pair; a sequence (or pair) left with no target is skipped and counted as well.
 *
 * Errors: one line naming the file, the line and the field, e.g.
 *   "data.jsonl:7: messages[2].role: expected one of system, user, assistant, tool, ipython"
 * returned as HERD_E_FORMAT (HERD_E_IO when the file cannot be read).
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
    int64_t line;    /* 1-based source line (JSONL), or the window's index (cpt) */
} train_seq;

typedef struct {
    int objective;       /* train_objective */
    int64_t seq_len;     /* tokens predicted per sequence at most (a sequence holds <= seq_len + 1 tokens) */
    bool train_on_input; /* sft/distill: every token a target */
    int overlong;        /* train_overlong */
} train_data_params;

typedef struct {
    /* cpt, sft, distill: n_examples sequences; dpo: 2 * n_examples, chosen at 2i, rejected at 2i + 1 */
    train_seq *seqs;
    int64_t n_seqs;
    int64_t n_examples;
    int64_t n_truncated;  /* examples cut to seq_len + 1 tokens */
    int64_t n_skipped;    /* examples dropped (overlong with TRAIN_OVERLONG_SKIP, or no target left) */
    int64_t n_tokens;     /* tokens over all seqs */
    int64_t n_targets;    /* targets over all seqs */
    int64_t cap_seqs;     /* internal: seqs allocated */
} train_data;

/* Reads and tokenizes path for the objective. OUT: *out (free with train_data_free). */
int train_data_load(const herd_model *m, const char *path, const train_data_params *p, train_data *out);
void train_data_free(train_data *d);

#endif
