#include "file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

int herd_file_map(const char *path, herd_mapped_file *out) {
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return herd_err(HERD_E_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return herd_err(HERD_E_IO, "cannot stat '%s': %s", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return herd_err(HERD_E_IO, "'%s' is a directory, expected a file", path);
    }
    out->size = (size_t)st.st_size;
    if (out->size > 0) {
        void *p = mmap(NULL, out->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            return herd_err(HERD_E_IO, "cannot map '%s': %s", path, strerror(e));
        }
        out->data = p;
    }
    close(fd);
    out->path = herd_xstrndup(path, strlen(path));
    return HERD_OK;
}

void herd_file_unmap(herd_mapped_file *f) {
    if (f->data) munmap((void *)f->data, f->size);
    free(f->path);
    memset(f, 0, sizeof *f);
}

int herd_file_read_all(const char *path, size_t max_bytes, char **data, size_t *len) {
    FILE *fp = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!fp) return herd_err(HERD_E_IO, "cannot open '%s': %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = herd_xmalloc(cap);
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap *= 2;
            buf = herd_xrealloc(buf, cap);
        }
        size_t got = fread(buf + n, 1, cap - n - 1, fp);
        n += got;
        if (n > max_bytes) {
            if (fp != stdin) fclose(fp);
            free(buf);
            return herd_err(HERD_E_RANGE, "'%s' is larger than the limit of %zu bytes", path, max_bytes);
        }
        if (got == 0) break;
    }
    int bad = ferror(fp);
    if (fp != stdin) fclose(fp);
    if (bad) {
        free(buf);
        return herd_err(HERD_E_IO, "error reading '%s'", path);
    }
    buf[n] = 0;
    *data = buf;
    *len = n;
    return HERD_OK;
}

char *herd_file_temp_name(const char *path) {
    size_t n = strlen(path) + 32;
    char *t = herd_xmalloc(n);
    snprintf(t, n, "%s.tmp.%ld", path, (long)getpid());
    return t;
}

int herd_file_commit(const char *tmp, const char *path, int rc) {
    if (!rc) { /* flush to disk before the rename makes it visible */
        int fd = open(tmp, O_RDONLY | O_CLOEXEC);
        if (fd < 0) rc = herd_err(HERD_E_IO, "cannot reopen '%s': %s", tmp, strerror(errno));
        else {
            if (fsync(fd) != 0) rc = herd_err(HERD_E_IO, "cannot sync '%s': %s", tmp, strerror(errno));
            close(fd);
        }
    }
    if (!rc && rename(tmp, path) != 0) rc = herd_err(HERD_E_IO, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
    if (rc) remove(tmp);
    return rc;
}

int herd_file_write_atomic(const char *path, const void *const *parts, const size_t *sizes, int n_parts) {
    char *tmp = herd_file_temp_name(path);
    FILE *fp = fopen(tmp, "wb");
    int rc = HERD_OK;
    if (!fp) rc = herd_err(HERD_E_IO, "cannot create '%s': %s", tmp, strerror(errno));
    for (int i = 0; i < n_parts && !rc; i++)
        if (sizes[i] && fwrite(parts[i], 1, sizes[i], fp) != sizes[i])
            rc = herd_err(HERD_E_IO, "cannot write '%s': %s", tmp, strerror(errno));
    if (fp && fclose(fp) != 0 && !rc) rc = herd_err(HERD_E_IO, "cannot write '%s': %s", tmp, strerror(errno));
    rc = herd_file_commit(tmp, path, rc);
    free(tmp);
    return rc;
}
