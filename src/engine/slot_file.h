/* A server slot's KV on disk (herd serve --slot-save-path, POST /slots/{id}?action=save|restore).
 *
 * Layout, in the host's byte order (herd builds for little-endian machines only):
 *   char     magic[8] = "HERDSLOT"
 *   uint32   version = 1
 *   int32    kv_type           HERD_TYPE_* of the cache rows
 *   int32    lora              the engine's adapter index the KV was computed with (0: none)
 *   int32    reserved = 0
 *   int64    n_layer, n_embd, n_vocab   the model's shape, checked on restore
 *   uint64   bytes_per_pos     herd_seq_kv_bytes_per_pos of the saving context
 *   int64    n_tokens
 *   int32    tokens[n_tokens]
 *   uint8    kv[n_tokens * bytes_per_pos]   as herd_seq_kv_read lays it out ([layer][K rows][V rows])
 *
 * Crash safety: written to PATH.tmp.PID, flushed and fsync'd, then renamed over PATH: after a crash PATH
 * holds either its old content or the complete new file, never a torn one (a stray .tmp may remain). */
#ifndef HERD_SLOT_FILE_H
#define HERD_SLOT_FILE_H

#include <stdint.h>

typedef struct {
    int32_t kv_type, lora;
    int64_t n_layer, n_embd, n_vocab;
    uint64_t bytes_per_pos;
    int64_t n_tokens;
} slot_file_header;

/* Writes the file atomically; *n_bytes (if not NULL) gets its size. HERD_E_IO naming the path. */
int slot_file_write(const char *path, const slot_file_header *h, const int32_t *tokens, const void *kv,
                    uint64_t *n_bytes);
/* Reads and checks a file: magic, version, n_tokens in [0, max_tokens], and a size that is exactly what
 * the header says. OUT: *h, *tokens and *kv (malloc'd, the caller frees), *n_bytes. HERD_E_IO when it
 * cannot be read, HERD_E_FORMAT naming what is wrong. */
int slot_file_read(const char *path, int64_t max_tokens, slot_file_header *h, int32_t **tokens, void **kv,
                   uint64_t *n_bytes);

#endif
