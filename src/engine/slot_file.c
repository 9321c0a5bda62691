/* A slot's KV on disk (see slot_file.h). */
#include "slot_file.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/log.h"
#include "herd.h"

static const char k_magic[8] = {'H', 'E', 'R', 'D', 'S', 'L', 'O', 'T'};
enum { k_version = 1, k_header_bytes = 8 + 4 * 4 + 3 * 8 + 8 + 8 };

static void put(uint8_t **p, const void *v, size_t n) {
    memcpy(*p, v, n);
    *p += n;
}

int slot_file_write(const char *path, const slot_file_header *h, const int32_t *tokens, const void *kv,
                    uint64_t *n_bytes) {
    uint8_t hdr[k_header_bytes], *p = hdr;
    uint32_t ver = k_version;
    int32_t zero = 0;
    put(&p, k_magic, 8);
    put(&p, &ver, 4);
    put(&p, &h->kv_type, 4);
    put(&p, &h->lora, 4);
    put(&p, &zero, 4);
    put(&p, &h->n_layer, 8);
    put(&p, &h->n_embd, 8);
    put(&p, &h->n_vocab, 8);
    put(&p, &h->bytes_per_pos, 8);
    put(&p, &h->n_tokens, 8);
    char *tmp = herd_xmalloc(strlen(path) + 32);
    sprintf(tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        int rc = herd_err(HERD_E_IO, "slot save: cannot create '%s': %s", tmp, strerror(errno));
        free(tmp);
        return rc;
    }
    uint64_t kvb = (uint64_t)h->n_tokens * h->bytes_per_pos;
    bool ok = fwrite(hdr, 1, sizeof hdr, f) == sizeof hdr &&
              fwrite(tokens, sizeof *tokens, (size_t)h->n_tokens, f) == (size_t)h->n_tokens &&
              (kvb == 0 || fwrite(kv, 1, (size_t)kvb, f) == (size_t)kvb) && fflush(f) == 0 &&
              fsync(fileno(f)) == 0;
    int err = errno;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        if (ok) err = errno;
        unlink(tmp);
        int rc = herd_err(HERD_E_IO, "slot save: cannot write '%s': %s", path, strerror(err));
        free(tmp);
        return rc;
    }
    free(tmp);
    if (n_bytes) *n_bytes = sizeof hdr + (uint64_t)h->n_tokens * 4 + kvb;
    return HERD_OK;
}

int slot_file_read(const char *path, int64_t max_tokens, slot_file_header *h, int32_t **tokens, void **kv,
                   uint64_t *n_bytes) {
    *tokens = NULL;
    *kv = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return herd_err(HERD_E_IO, "slot restore: cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    uint8_t hdr[k_header_bytes];
    if (fstat(fileno(f), &st) != 0 || fread(hdr, 1, sizeof hdr, f) != sizeof hdr) {
        fclose(f);
        return herd_err(HERD_E_FORMAT, "slot restore: '%s' is shorter than a slot file's header", path);
    }
    uint32_t ver;
    int32_t reserved;
    const uint8_t *p = hdr + 8;
    memcpy(&ver, p, 4), p += 4;
    memcpy(&h->kv_type, p, 4), p += 4;
    memcpy(&h->lora, p, 4), p += 4;
    memcpy(&reserved, p, 4), p += 4;
    memcpy(&h->n_layer, p, 8), p += 8;
    memcpy(&h->n_embd, p, 8), p += 8;
    memcpy(&h->n_vocab, p, 8), p += 8;
    memcpy(&h->bytes_per_pos, p, 8), p += 8;
    memcpy(&h->n_tokens, p, 8);
    int rc = HERD_OK;
    if (memcmp(hdr, k_magic, 8) != 0)
        rc = herd_err(HERD_E_FORMAT, "slot restore: '%s' is not a herd slot file", path);
    else if (ver != k_version)
        rc =
            herd_err(HERD_E_FORMAT, "slot restore: '%s' has version %u, herd reads %d", path, ver, k_version);
    else if (h->n_tokens < 0 || h->n_tokens > max_tokens)
        rc = herd_err(HERD_E_FORMAT, "slot restore: '%s' holds %lld tokens; a slot holds 0..%lld", path,
                      (long long)h->n_tokens, (long long)max_tokens);
    else if (h->bytes_per_pos == 0 || h->bytes_per_pos > (1ull << 32))
        rc = herd_err(HERD_E_FORMAT, "slot restore: '%s' has %llu KV bytes per position", path,
                      (unsigned long long)h->bytes_per_pos);
    uint64_t kvb = 0;
    if (rc == HERD_OK) {
        kvb = (uint64_t)h->n_tokens * h->bytes_per_pos;
        uint64_t want = sizeof hdr + (uint64_t)h->n_tokens * 4 + kvb;
        if ((uint64_t)st.st_size != want)
            rc = herd_err(HERD_E_FORMAT, "slot restore: '%s' has %llu bytes but its header says %llu", path,
                          (unsigned long long)st.st_size, (unsigned long long)want);
        else if (n_bytes)
            *n_bytes = want;
    }
    if (rc == HERD_OK) {
        *tokens = malloc((size_t)h->n_tokens * 4 + 4);
        *kv = malloc((size_t)kvb + 1);
        if (!*tokens || !*kv)
            rc = herd_err(HERD_E_NOMEM, "slot restore: no memory for %llu bytes of KV",
                          (unsigned long long)kvb);
        else if (fread(*tokens, 4, (size_t)h->n_tokens, f) != (size_t)h->n_tokens ||
                 fread(*kv, 1, (size_t)kvb, f) != (size_t)kvb)
            rc = herd_err(HERD_E_IO, "slot restore: cannot read '%s'", path);
    }
    fclose(f);
    if (rc != HERD_OK) {
        free(*tokens), free(*kv);
        *tokens = NULL, *kv = NULL;
    }
    return rc;
}
