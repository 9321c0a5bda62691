/* herd sdg's seed and document readers (seeds.h). */
#include "seeds.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/log.h"

void sdg_seeds_free(sdg_seeds *s) {
    for (int64_t i = 0; i < s->n; i++) free(s->v[i].id), free(s->v[i].messages), free(s->v[i].document);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static const char *type_name(const json_t *j) {
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

static char *one_user_turn(const char *text) {
    json_t *a = json_pack("[{s:s,s:s}]", "role", "user", "content", text);
    char *s = a ? json_dumps(a, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(a);
    return s;
}

/* messages: an array of {role, content: string} objects, roles system/user/assistant, ending in user */
static int check_messages(const json_t *m, char *msg, size_t cap) {
    if (!json_is_array(m))
        return snprintf(msg, cap, "\"messages\" must be an array, got %s", type_name(m)), -1;
    size_t n = json_array_size(m);
    if (!n) return snprintf(msg, cap, "\"messages\" is empty"), -1;
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(m, i), *r = json_object_get(o, "role"), *c = json_object_get(o, "content");
        if (!json_is_object(o)) return snprintf(msg, cap, "messages[%zu] must be an object", i), -1;
        const char *rs = json_string_value(r);
        if (!rs || (strcmp(rs, "system") && strcmp(rs, "user") && strcmp(rs, "assistant")))
            return snprintf(msg, cap, "messages[%zu].role must be \"system\", \"user\" or \"assistant\"", i),
                   -1;
        if (!json_is_string(c)) return snprintf(msg, cap, "messages[%zu].content must be a string", i), -1;
        if (json_object_size(o) != 2)
            return snprintf(msg, cap, "messages[%zu] may only have \"role\" and \"content\"", i), -1;
        if (i + 1 == n && strcmp(rs, "user"))
            return snprintf(msg, cap, "the last message must be the user's (the turn to answer)"), -1;
    }
    return 0;
}

int sdg_seed_parse_line(const char *line, size_t len, sdg_seed *out, char *msg, size_t cap) {
    memset(out, 0, sizeof *out);
    json_error_t je;
    json_t *j = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!j) return snprintf(msg, cap, "not JSON: %s (column %d)", je.text, je.column), -1;
    int rc = -1;
    if (json_is_string(j)) {
        if (!json_string_length(j)) {
            snprintf(msg, cap, "the prompt is empty");
            goto out;
        }
        out->messages = one_user_turn(json_string_value(j));
        rc = out->messages ? 0 : (snprintf(msg, cap, "the prompt is not valid UTF-8"), -1);
        goto out;
    }
    if (!json_is_object(j)) {
        snprintf(msg, cap, "expected a JSON object or string, got %s", type_name(j));
        goto out;
    }
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v) {
        if (strcmp(key, "id") && strcmp(key, "prompt") && strcmp(key, "messages") &&
            strcmp(key, "document")) {
            snprintf(msg, cap,
                     "unknown key \"%.64s\" (expected \"prompt\", \"messages\" or \"document\", and \"id\")",
                     key);
            goto out;
        }
    }
    json_t *id = json_object_get(j, "id"), *p = json_object_get(j, "prompt"),
           *m = json_object_get(j, "messages"), *d = json_object_get(j, "document");
    if (id) {
        if (json_is_integer(id)) {
            char b[32];
            snprintf(b, sizeof b, "%lld", (long long)json_integer_value(id));
            out->id = strdup(b);
        } else if (json_is_string(id) && json_string_length(id) &&
                   strlen(json_string_value(id)) == json_string_length(id))
            out->id = strdup(json_string_value(id));
        else {
            snprintf(msg, cap, "\"id\" must be a non-empty string or an integer");
            goto out;
        }
    }
    if ((p != NULL) + (m != NULL) + (d != NULL) != 1) {
        snprintf(msg, cap, "give exactly one of \"prompt\", \"messages\" and \"document\"");
        goto out;
    }
    if (p || d) {
        json_t *t = p ? p : d;
        if (!json_is_string(t) || !json_string_length(t)) {
            snprintf(msg, cap, "\"%s\" must be a non-empty string", p ? "prompt" : "document");
            goto out;
        }
        if (p)
            out->messages = one_user_turn(json_string_value(t));
        else
            out->document = strndup(json_string_value(t), json_string_length(t));
    } else {
        if (check_messages(m, msg, cap)) goto out;
        out->messages = json_dumps(m, JSON_COMPACT | JSON_PRESERVE_ORDER);
    }
    rc = 0;
out:
    json_decref(j);
    if (rc) free(out->id), free(out->messages), free(out->document), memset(out, 0, sizeof *out);
    return rc;
}

static void push(sdg_seeds *s, sdg_seed x) {
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->v = herd_xrealloc(s->v, (size_t)s->cap * sizeof *s->v);
    }
    s->v[s->n++] = x;
}

int sdg_seeds_check_unique(const sdg_seeds *s) {
    json_t *seen = json_object();
    int rc = HERD_OK;
    for (int64_t i = 0; i < s->n && rc == HERD_OK; i++) {
        if (json_object_get(seen, s->v[i].id))
            rc = herd_err(HERD_E_ARG, "seed id '%.200s' is used twice", s->v[i].id);
        json_object_set_new(seen, s->v[i].id, json_true());
    }
    json_decref(seen);
    return rc;
}

int sdg_seeds_read_file(sdg_seeds *s, const char *path, int jsonl) {
    FILE *f = fopen(path, "rb");
    if (!f) return herd_err(HERD_E_IO, "cannot read %s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int64_t ln = 0;
    int rc = HERD_OK;
    while (rc == HERD_OK && (len = getline(&line, &cap, f)) >= 0) {
        ln++;
        size_t L = (size_t)len;
        while (L > 0 && (line[L - 1] == '\n' || line[L - 1] == '\r')) L--;
        size_t k = 0;
        if (ln == 1 && L >= 3 && !memcmp(line, "\xEF\xBB\xBF", 3)) k = 3; /* a UTF-8 byte order mark */
        size_t a = k;
        while (k < L && (line[k] == ' ' || line[k] == '\t')) k++;
        if (k == L) continue; /* blank */
        sdg_seed x = {0};
        char msg[256];
        if (memchr(line, 0, L)) {
            rc = herd_err(HERD_E_FORMAT, "%s:%lld: a NUL byte; seed files are text", path, (long long)ln);
        } else if (jsonl) {
            if (sdg_seed_parse_line(line + a, L - a, &x, msg, sizeof msg))
                rc = herd_err(HERD_E_FORMAT, "%s:%lld: %s", path, (long long)ln, msg);
        } else {
            line[L] = 0;
            x.messages = one_user_turn(line + a);
            if (!x.messages) rc = herd_err(HERD_E_FORMAT, "%s:%lld: not valid UTF-8", path, (long long)ln);
        }
        if (rc != HERD_OK) break;
        if (!x.id) {
            char b[64];
            const char *base = strrchr(path, '/');
            snprintf(b, sizeof b, ":%lld", (long long)ln);
            size_t nb = strlen(base ? base + 1 : path);
            x.id = herd_xmalloc(nb + strlen(b) + 1);
            memcpy(x.id, base ? base + 1 : path, nb);
            strcpy(x.id + nb, b);
        }
        push(s, x);
    }
    if (rc == HERD_OK && ferror(f)) rc = herd_err(HERD_E_IO, "cannot read %s", path);
    free(line);
    fclose(f);
    return rc;
}

/* length of the longest prefix of s[0..n) that does not end inside a UTF-8 sequence */
static size_t utf8_complete(const unsigned char *s, size_t n) {
    size_t i = n, back = 0;
    while (i > 0 && back < 4 && (s[i - 1] & 0xC0) == 0x80) i--, back++;
    if (i == 0) return n;
    unsigned char c = s[i - 1];
    size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    return need == back + 1 || need == 1 ? n : i - 1;
}

int sdg_chunk_text(const herd_model *m, const char *text, size_t len, int64_t n_chunk, int64_t n_overlap,
                   char ***chunks, int64_t *n_out) {
    *chunks = NULL, *n_out = 0;
    if (n_chunk < 1 || n_overlap < 0 || n_overlap >= n_chunk)
        return herd_err(HERD_E_ARG, "chunks of %lld tokens cannot overlap by %lld", (long long)n_chunk,
                        (long long)n_overlap);
    int32_t *ids = NULL;
    int64_t n = 0;
    int rc = herd_tokenize(m, text, len, 0, &ids, &n);
    if (rc != HERD_OK) return rc;
    int64_t step = n_chunk - n_overlap, cap = 0;
    for (int64_t a = 0; a < n; a += step) {
        int64_t b = a + n_chunk < n ? a + n_chunk : n;
        char *t;
        size_t tl;
        if ((rc = herd_detokenize(m, ids + a, b - a, false, &t, &tl)) != HERD_OK) break;
        size_t s0 = 0; /* a character cut by the window's start: its continuation bytes */
        while (s0 < tl && ((unsigned char)t[s0] & 0xC0) == 0x80) s0++;
        size_t e = s0 + utf8_complete((unsigned char *)t + s0, tl - s0);
        memmove(t, t + s0, e - s0);
        t[e - s0] = 0;
        if (*n_out == cap) {
            cap = cap ? 2 * cap : 16;
            *chunks = herd_xrealloc(*chunks, (size_t)cap * sizeof **chunks);
        }
        (*chunks)[(*n_out)++] = t;
        if (b == n) break;
    }
    free(ids);
    if (rc != HERD_OK) {
        for (int64_t i = 0; i < *n_out; i++) free((*chunks)[i]);
        free(*chunks);
        *chunks = NULL, *n_out = 0;
    }
    return rc;
}

int sdg_seeds_read_document(sdg_seeds *s, const herd_model *m, const char *path, int64_t n_chunk,
                            int64_t n_overlap) {
    FILE *f = fopen(path, "rb");
    if (!f) return herd_err(HERD_E_IO, "cannot read %s: %s", path, strerror(errno));
    char *buf = NULL;
    size_t n = 0, cap = 0, got;
    char tmp[65536];
    while ((got = fread(tmp, 1, sizeof tmp, f)) > 0) {
        if (n + got + 1 > cap) cap = (n + got + 1) * 2, buf = herd_xrealloc(buf, cap);
        memcpy(buf + n, tmp, got), n += got;
    }
    bool err = ferror(f);
    fclose(f);
    if (err) return free(buf), herd_err(HERD_E_IO, "cannot read %s", path);
    size_t k = 0;
    while (k < n && (buf[k] == ' ' || buf[k] == '\n' || buf[k] == '\r' || buf[k] == '\t')) k++;
    if (k == n) return free(buf), herd_err(HERD_E_FORMAT, "%s: the document is empty", path);
    if (memchr(buf, 0, n))
        return free(buf), herd_err(HERD_E_FORMAT, "%s: a NUL byte; documents are text or Markdown", path);
    char **ch;
    int64_t nc;
    int rc = sdg_chunk_text(m, buf, n, n_chunk, n_overlap, &ch, &nc);
    free(buf);
    if (rc != HERD_OK) return rc;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    for (int64_t i = 0; i < nc; i++) {
        json_t *t = json_string(ch[i]);
        json_decref(t);
        if (!t) { /* not UTF-8: refuse (the JSON output could not hold it) */
            for (int64_t j = i; j < nc; j++) free(ch[j]);
            free(ch);
            return herd_err(HERD_E_FORMAT, "%s: not UTF-8 text (chunk %lld)", path, (long long)i);
        }
        sdg_seed x = {0};
        x.id = herd_xmalloc(strlen(base) + 32);
        sprintf(x.id, "%s#%lld", base, (long long)i);
        x.document = ch[i];
        push(s, x);
    }
    free(ch);
    return HERD_OK;
}
