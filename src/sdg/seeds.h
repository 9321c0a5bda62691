/* herd sdg's inputs: seed prompts and documents (docs/SDG.md).
 *
 * A seed file is JSONL when its name ends in .jsonl, else plain text with one prompt per non-blank line.
 * A JSONL seed line is a JSON string (the prompt) or an object with one of
 *   "prompt": "text"                 a user turn
 *   "messages": [{role, content}...] a conversation ending in a user turn (for --task sft/dpo/cot)
 *   "document": "text"               source text for --task qa
 * and optionally "id" (a non-empty string or an integer) naming the seed in the output, for resuming;
 * without one the seed is "FILE:LINE". Unknown keys are refused (a typo should not pass silently).
 *
 * Documents (text or Markdown files) are cut into chunks of n_chunk Llama 3 tokens overlapping by
 * n_overlap tokens (default 512 and 128: ¼ overlap); a chunk is the detokenized window, with a UTF-8
 * character split by the window's edge dropped. Each chunk is a "document" seed named "FILE#i". */
#ifndef HERD_SDG_SEEDS_H
#define HERD_SDG_SEEDS_H

#include <stddef.h>
#include <stdint.h>

#include "herd.h"

typedef struct {
    char *id;       /* unique within the run */
    char *messages; /* JSON array of the conversation so far (prompt seeds), or NULL */
    char *document; /* source text (document seeds), or NULL */
} sdg_seed;

typedef struct {
    sdg_seed *v;
    int64_t n, cap;
} sdg_seeds;

void sdg_seeds_free(sdg_seeds *s);

/* Parses one JSONL seed line of len bytes (no newline) into *out (fields malloc'd; id NULL when the line
 * names none). 0, or -1 with msg saying what is wrong (exposed for the fuzz target). */
int sdg_seed_parse_line(const char *line, size_t len, sdg_seed *out, char *msg, size_t msg_cap);

/* Appends the seeds of a seed file (jsonl: JSONL, else text lines). HERD_E_IO / HERD_E_FORMAT with
 * "FILE:LINE: ..." for a bad line. */
int sdg_seeds_read_file(sdg_seeds *s, const char *path, int jsonl);

/* HERD_E_ARG naming the first id used twice. */
int sdg_seeds_check_unique(const sdg_seeds *s);

/* Appends the chunks of a document file as document seeds. HERD_E_IO when unreadable, HERD_E_FORMAT
 * when it is empty or not text (a NUL byte). */
int sdg_seeds_read_document(sdg_seeds *s, const herd_model *m, const char *path, int64_t n_chunk,
                            int64_t n_overlap);

/* Cuts text into token windows (seeds.h header). OUT: *chunks (n_out malloc'd strings, the array too). */
int sdg_chunk_text(const herd_model *m, const char *text, size_t len, int64_t n_chunk, int64_t n_overlap,
                   char ***chunks, int64_t *n_out);

#endif
