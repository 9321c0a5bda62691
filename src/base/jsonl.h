/* Reading back an append-only JSONL output (herd batch, herd sdg) to resume it. */
#ifndef HERD_BASE_JSONL_H
#define HERD_BASE_JSONL_H

#include <jansson.h>
#include <stdint.h>

/* Calls each(ctx, obj) for every complete line of path that is a JSON object, in order, and stops at the
 * first that is not (only the last line can be torn by a crash: a write is one line); what follows it is cut
 * off the file, and *torn_bytes gets its size (0 if none). A missing file is empty. HERD_E_IO on failure. */
int jsonl_read_back(const char *path, void (*each)(void *ctx, json_t *obj), void *ctx, int64_t *torn_bytes);

#endif
