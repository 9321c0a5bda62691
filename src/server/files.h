/* herd serve --data-dir: the file store behind /v1/files (OpenAI's Files API), used by /v1/batches
 * (batch_routes.c) and open to other routes (vector stores): a file is looked up by id and read at
 * files_path().
 *
 * On disk, under DIR/files/: ID.data (the bytes) and ID.json (the file object: id, object, bytes,
 * created_at, filename, purpose, status). Each is written to a temporary name, fsync'd and renamed, the
 * data first: a file exists exactly when its .json does, so a crash leaves either the whole file or none
 * (a .data or temporary without its .json is removed when the store opens). Deleting removes the .json
 * first. Files are immutable once created; ids are "file-" + 24 hex digits (anything else is refused before
 * a path is built, so an id can never name a path outside the store). Thread-safe. */
#ifndef HERD_SERVER_FILES_H
#define HERD_SERVER_FILES_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct files_store files_store;

/* Opens (creating DIR and DIR/files if needed) the store; max_bytes: the largest file accepted.
 * HERD_E_IO naming the path on failure. */
int files_store_open(const char *dir, size_t max_bytes, files_store **out);
void files_store_close(files_store *fs);
size_t files_max_bytes(const files_store *fs);

/* True for a well-formed id ("file-" + 24 lowercase hex digits). */
bool files_id_valid(const char *id);

/* Stores len bytes as a new file. *obj (new reference): its file object. HERD_E_IO on a write failure. */
int files_create(files_store *fs, const char *purpose, const char *filename, const void *data, size_t len,
                 json_t **obj);
/* Stores the file at src_path (moved into the store by rename; same file system) as a new file. */
int files_adopt(files_store *fs, const char *purpose, const char *filename, const char *src_path, json_t **obj);
/* The file object of id (new reference), or NULL when there is no such file. */
json_t *files_get(files_store *fs, const char *id);
/* Writes the path of id's bytes into buf; 0, or -1 when there is no such file (or cap is too small). */
int files_path(files_store *fs, const char *id, char *buf, size_t cap);
/* Every file object, newest first (ties by id); purpose NULL: all. A new array. */
json_t *files_list(files_store *fs, const char *purpose);
/* 0 deleted, -1 no such file. */
int files_delete(files_store *fs, const char *id);

/* Writes len bytes to path atomically: a temporary beside it, fsync'd, renamed over path. 0, or -1 with
 * errno set (the temporary removed). For other stores of the server (batch_routes.c). */
int files_write_atomic(const char *path, const void *data, size_t len);

/* ---- multipart/form-data (RFC 7578), the body of an upload; exposed for the fuzz target ---- */
typedef struct {
    const char *name, *filename; /* malloc'd; filename NULL when the part has none */
    const char *data;            /* points into the body */
    size_t len;
} multipart_part;

/* Splits body (n bytes) by the boundary named in content_type ("multipart/form-data; boundary=..."). On
 * success 0 and *parts (malloc'd array of *n_parts; free with multipart_free). Else -1 with msg saying what
 * is wrong (no boundary, no closing delimiter, a part without a name, more than max_parts parts). */
int multipart_parse(const char *content_type, const char *body, size_t n, int max_parts, multipart_part **parts,
                    int *n_parts, char *msg, size_t msg_cap);
void multipart_free(multipart_part *parts, int n_parts);

#endif
