/* herd batch: a job file in the OpenAI Batch API line format, run through the server's routes and the
 * continuous-batching engine, resumably (docs/BATCH.md).
 *
 * Input, one JSON object a line: {"custom_id": "...", "method": "POST", "url": "/v1/chat/completions" |
 * "/v1/completions" | "/v1/embeddings", "body": {...}}. Output, one a line in completion order:
 * {"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error": null} where body is exactly
 * what `herd serve` answers for that request (a 4xx answer included: it is the response of that line), or
 * {"id", "custom_id", "response": null, "error": {"code", "message"}} for a line that is not a request
 * (malformed JSON, a missing custom_id, a method other than POST, an unknown url, "stream": true, a body over
 * the limit, a custom_id seen before).
 *
 * How: the runner posts each line's body to its url on a running server from `parallel` worker threads, so
 * parsing, validation, prompt building and the response bodies are the server's own, and the requests share
 * the engine's slots (continuous batching). `herd batch` (tools/herd/cmd_batch.c) starts that server on a
 * loopback port with a random API key; `herd serve`'s /v1/batches (src/server/batch_routes.c) points it at
 * itself. This module does not depend on src/server: the server depends on it.
 *
 * Resuming: each output line is written with one write() on an O_APPEND descriptor and fdatasync'd at
 * intervals. At start the output is read back: complete lines name the custom_ids (and, by their "id",
 * the input line numbers) already done, which are skipped; a torn last line (no newline, or not JSON) is
 * cut off. So a rerun after kill -9 or Ctrl-C gives every line exactly once. */
#ifndef HERD_BATCH_H
#define HERD_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>


typedef struct {
    const char *input, *output;
    int parallel;         /* requests in flight (the engine's slots) */
    const char *model_id; /* the name a body's "model" may give */
    int64_t n_ctx_slot;
    size_t max_body;         /* largest request body in bytes (a longer line is an error line) */
    bool progress;           /* a progress line on stderr (done/total, tokens/s, ETA) */
    double fsync_interval_s; /* fdatasync the output at most this often (and at the end) */
    /* optional (zero: none): while *stop is nonzero no further line is started (those in flight finish and
     * are written), so a later run resumes there; on_line(user, ok) is called after each line is written */
    const volatile int *stop;
    void (*on_line)(void *user, bool ok);
    void *on_line_user;
} batch_config;

typedef struct {
    int64_t lines, skipped, ok, failed; /* input lines; already done; answered 2xx; error lines or non-2xx */
    int64_t prompt_tokens, completion_tokens;
    double seconds;
    int64_t torn_bytes; /* a torn last line cut from the output (redone) */
} batch_stats;

/* Runs the job against the server at base_url ("http://127.0.0.1:8080", no slash at the end) with api_key
 * (NULL: none). HERD_E_IO for unreadable input / unwritable output (with the path), HERD_OK otherwise (bad
 * lines are error lines, not failures). */
int batch_run_client(const batch_config *cfg, const char *base_url, const char *api_key, batch_stats *st);

/* One input line of len bytes (no newline), checked (exposed for the fuzz target). On success the result is
 * 0, *url is one of the three routes (a static string), *body the body re-serialized (compact JSON) and
 * *custom_id the custom_id, both malloc'd for the caller to free. Else the result is -1, *code (a static
 * string) and msg say why, *url and *body are NULL and *custom_id is set when the line had one. */
int batch_parse_line(const char *line, size_t len, size_t max_body, char **custom_id, const char **url,
                     char **body, const char **code, char *msg, size_t msg_cap);

#endif
