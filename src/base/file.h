/* herd base: read-only file mappings. */
#ifndef HERD_BASE_FILE_H
#define HERD_BASE_FILE_H

#include <stddef.h>
#include <stdint.h>

typedef struct herd_mapped_file {
    const uint8_t *data; /* size bytes, read-only, valid until herd_file_unmap */
    size_t size;
    char *path;          /* owned copy, for error messages */
} herd_mapped_file;

/* Maps `path` read-only. 0 ok; HERD_E_IO with a message naming the file otherwise.
 * An empty file maps to data == NULL, size == 0. */
int herd_file_map(const char *path, herd_mapped_file *out);
void herd_file_unmap(herd_mapped_file *f);

/* Reads a whole file (or stdin when path is "-") into a NUL-terminated malloc'd buffer.
 * OUT: *data (caller frees), *len. Refuses files larger than max_bytes. */
int herd_file_read_all(const char *path, size_t max_bytes, char **data, size_t *len);

/* Writing a file so that a crash never leaves half of it under its name: the bytes go to a temporary
 * file beside it (herd_file_temp_name: PATH.tmp.PID, caller frees), which herd_file_commit fsyncs and
 * renames over path when rc is 0, and removes otherwise; it returns rc or the I/O error.
 * herd_file_write_atomic does both for n_parts buffers written one after the other. */
char *herd_file_temp_name(const char *path);
int herd_file_commit(const char *tmp, const char *path, int rc);
int herd_file_write_atomic(const char *path, const void *const *parts, const size_t *sizes, int n_parts);

#endif
