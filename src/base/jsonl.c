/* See jsonl.h. */
#include "jsonl.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "herd.h"
#include "log.h"

int jsonl_read_back(const char *path, void (*each)(void *ctx, json_t *obj), void *ctx, int64_t *torn_bytes) {
    *torn_bytes = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT ? HERD_OK : herd_err(HERD_E_IO, "cannot read %s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    off_t good = 0;
    bool torn = false;
    while ((len = getline(&line, &cap, f)) > 0) {
        json_t *j = line[len - 1] == '\n' ? json_loadb(line, (size_t)len - 1, 0, NULL) : NULL;
        if (!json_is_object(j)) { /* torn (only the last line can be, but stop at the first) */
            json_decref(j);
            torn = true;
            break;
        }
        good += len;
        each(ctx, j);
        json_decref(j);
    }
    free(line);
    fclose(f);
    struct stat sb;
    if (stat(path, &sb) == 0 && sb.st_size != good) torn = true;
    if (torn) {
        if (truncate(path, good) != 0)
            return herd_err(HERD_E_IO, "cannot cut the torn last line of %s: %s", path, strerror(errno));
        *torn_bytes = (int64_t)(sb.st_size - good);
    }
    return HERD_OK;
}
