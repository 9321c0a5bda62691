/* SentencePiece unigram: normalizer (precompiled charsmap) and Viterbi encoding. See unigram.h. */
#include "unigram.h"

#include <float.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/file.h"
#include "../base/log.h"
#include "tok_map.h"

#define UNI_UNK_PENALTY 10.0f /* sentencepiece's kUnkPenalty */
#define UNI_MAX_TRIE_RESULTS 32 /* normalizer.cc kMaxTrieResultsSize: only the first 32 prefixes count */

struct unigram_model {
    int32_t n_pieces;
    char *blob;         /* piece texts, NUL-terminated, at blob + off[i] */
    uint64_t *off;      /* n_pieces + 1 */
    float *score;
    uint8_t *type;
    tok_strmap map;     /* NORMAL / USER_DEFINED / UNUSED pieces: the Viterbi candidates */
    tok_strmap all_map; /* every piece (unigram_find) */
    size_t max_piece_len;
    int32_t unk;
    int32_t byte_id[256]; /* <0xXX> pieces (byte fallback), -1 when absent */
    bool byte_fallback, add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces;
    float min_score, max_score; /* over NORMAL pieces */
    int32_t *user;              /* USER_DEFINED ids (matched verbatim before normalization) */
    int32_t n_user;
    /* precompiled charsmap: darts-clone units, then NUL-separated replacement strings */
    uint8_t *charsmap;
    const uint8_t *units; /* n_units little-endian u32 */
    size_t n_units;
    const char *norm;
    size_t norm_len;
};

void unigram_spec_init(unigram_spec *s) {
    memset(s, 0, sizeof *s);
    s->add_dummy_prefix = s->remove_extra_whitespaces = s->escape_whitespaces = true;
}

void unigram_spec_add(unigram_spec *s, const char *piece, size_t len, float score, int type) {
    if (s->n_pieces == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 1024;
        s->piece = herd_xrealloc(s->piece, (size_t)s->cap * sizeof *s->piece);
        s->score = herd_xrealloc(s->score, (size_t)s->cap * sizeof *s->score);
        s->type = herd_xrealloc(s->type, (size_t)s->cap);
    }
    s->piece[s->n_pieces] = herd_xstrndup(piece, len);
    s->score[s->n_pieces] = score;
    s->type[s->n_pieces] = (uint8_t)type;
    s->n_pieces++;
}

void unigram_spec_clear(unigram_spec *s) {
    for (int32_t i = 0; i < s->n_pieces; i++) free(s->piece[i]);
    free(s->piece);
    free(s->score);
    free(s->type);
    free(s->charsmap);
    unigram_spec_init(s);
}

void unigram_free(unigram_model *m) {
    if (!m) return;
    free(m->blob);
    free(m->off);
    free(m->score);
    free(m->type);
    tok_strmap_free(&m->map);
    tok_strmap_free(&m->all_map);
    free(m->user);
    free(m->charsmap);
    free(m);
}

static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

int unigram_build(unigram_spec *s, const char *what, unigram_model **out) {
    *out = NULL;
    unigram_model *m = herd_xcalloc(1, sizeof *m);
    int rc = 0;
    int32_t n = s->n_pieces;
    if (n <= 0) {
        rc = herd_err(HERD_E_FORMAT, "tokenizer: %s: no pieces", what);
        goto done;
    }
    m->n_pieces = n;
    m->byte_fallback = s->byte_fallback;
    m->add_dummy_prefix = s->add_dummy_prefix;
    m->remove_extra_whitespaces = s->remove_extra_whitespaces;
    m->escape_whitespaces = s->escape_whitespaces;
    m->off = herd_xmalloc((size_t)(n + 1) * sizeof *m->off);
    uint64_t total = 0;
    for (int32_t i = 0; i < n; i++) {
        m->off[i] = total;
        total += strlen(s->piece[i]) + 1;
    }
    m->off[n] = total;
    m->blob = herd_xmalloc(total);
    for (int32_t i = 0; i < n; i++) memcpy(m->blob + m->off[i], s->piece[i], m->off[i + 1] - m->off[i]);
    m->score = s->score;
    m->type = s->type;
    s->score = NULL;
    s->type = NULL;
    tok_strmap_init(&m->map, m->blob, n);
    tok_strmap_init(&m->all_map, m->blob, n);
    m->unk = -1;
    m->min_score = FLT_MAX;
    m->max_score = FLT_MIN; /* as sentencepiece (the smallest positive float, not -FLT_MAX) */
    for (int b = 0; b < 256; b++) m->byte_id[b] = -1;
    for (int32_t i = 0; i < n; i++) {
        size_t len = m->off[i + 1] - m->off[i] - 1;
        const char *p = m->blob + m->off[i];
        int t = m->type[i];
        if (t < UNI_NORMAL || t > UNI_BYTE) {
            rc = herd_err(HERD_E_FORMAT, "tokenizer: %s: piece %d has type %d (1..6 expected)", what, i, t);
            goto done;
        }
        if (len == 0 && t != UNI_UNKNOWN && t != UNI_CONTROL) {
            rc = herd_err(HERD_E_FORMAT, "tokenizer: %s: piece %d is empty", what, i);
            goto done;
        }
        tok_strmap_put(&m->all_map, m->off[i], len, i);
        if (t == UNI_NORMAL || t == UNI_USER_DEFINED || t == UNI_UNUSED) {
            if (tok_strmap_put(&m->map, m->off[i], len, i) != i) {
                rc = herd_err(HERD_E_FORMAT, "tokenizer: %s: piece %d ('%s') is duplicated", what, i, p);
                goto done;
            }
            if (len > m->max_piece_len) m->max_piece_len = len;
        }
        if (t == UNI_NORMAL) {
            if (m->score[i] < m->min_score) m->min_score = m->score[i];
            if (m->score[i] > m->max_score) m->max_score = m->score[i];
        }
        if (t == UNI_UNKNOWN) {
            if (m->unk >= 0) {
                rc = herd_err(HERD_E_FORMAT, "tokenizer: %s: two unknown pieces (%d and %d)", what, m->unk, i);
                goto done;
            }
            m->unk = i;
        }
        if (t == UNI_USER_DEFINED) {
            m->user = herd_xrealloc(m->user, (size_t)(m->n_user + 1) * sizeof *m->user);
            m->user[m->n_user++] = i;
        }
        unsigned b;
        char tail;
        if (t == UNI_BYTE) {
            /* the two digits are checked first: %X alone would take "-1" or " F" */
            if (len != 6 || !isxdigit((unsigned char)p[3]) || !isxdigit((unsigned char)p[4]) ||
                sscanf(p, "<0x%2X%c", &b, &tail) != 2 || tail != '>' || b > 255) {
                rc = herd_err(HERD_E_FORMAT, "tokenizer: %s: byte piece %d is '%s', not <0xXX>", what, i, p);
                goto done;
            }
            m->byte_id[b] = i;
        }
    }
    if (m->unk < 0) {
        rc = herd_err(HERD_E_FORMAT, "tokenizer: %s: no unknown piece", what);
        goto done;
    }
    if (m->byte_fallback)
        for (int b = 0; b < 256; b++)
            if (m->byte_id[b] < 0) {
                rc = herd_err(HERD_E_FORMAT, "tokenizer: %s: byte fallback is on but piece <0x%02X> is missing", what, b);
                goto done;
            }
    if (s->charsmap && s->charsmap_len) {
        /* u32 trie size | trie units | replacement strings (normalizer.cc DecodePrecompiledCharsMap) */
        m->charsmap = s->charsmap;
        s->charsmap = NULL;
        size_t len = s->charsmap_len;
        uint32_t tsize = len >= 4 ? rd32(m->charsmap) : 0;
        if (len < 8 || tsize < 4 || tsize % 4 || tsize > len - 4) {
            rc = herd_err(HERD_E_FORMAT, "tokenizer: %s: precompiled_charsmap is corrupt (trie size %u of %zu bytes)",
                          what, tsize, len);
            goto done;
        }
        m->units = m->charsmap + 4;
        m->n_units = tsize / 4;
        m->norm = (const char *)m->charsmap + 4 + tsize;
        m->norm_len = len - 4 - tsize;
    }
done:
    unigram_spec_clear(s);
    if (rc) {
        unigram_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

int32_t unigram_n_pieces(const unigram_model *m) { return m->n_pieces; }
int32_t unigram_unk(const unigram_model *m) { return m->unk; }
const char *unigram_piece(const unigram_model *m, int32_t id) {
    return id >= 0 && id < m->n_pieces ? m->blob + m->off[id] : NULL;
}
int32_t unigram_find(const unigram_model *m, const char *piece) {
    return tok_strmap_get(&m->all_map, piece, strlen(piece));
}

/* ---- normalizer ---------------------------------------------------------------------------------- */

/* Length of the valid UTF-8 char at s[0..n), or 0 when it is malformed (sentencepiece's
 * IsValidDecodeUTF8: overlong forms, surrogates and code points > U+10FFFF are malformed). */
static size_t utf8_valid_len(const uint8_t *s, size_t n) {
    uint8_t c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07;
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/* Longest charsmap prefix of s[0..n): its length (0 if none) and *val, the offset of its replacement.
 * darts-clone's commonPrefixSearch over the units: unit = u32; has_leaf bit 8, value = low 31 bits,
 * label = bits 0-7 | bit 31, offset = (u >> 10) << ((u & 1<<9) >> 6). */
static size_t charsmap_match(const unigram_model *m, const uint8_t *s, size_t n, uint32_t *val) {
    size_t best = 0, node = 0;
    int found = 0;
    uint32_t u = rd32(m->units);
    node ^= (size_t)(u >> 10) << ((u & (1u << 9)) >> 6);
    for (size_t i = 0; i < n; i++) {
        node ^= s[i];
        if (node >= m->n_units) break;
        u = rd32(m->units + 4 * node);
        if ((u & ((1u << 31) | 0xFF)) != s[i]) break;
        node ^= (size_t)(u >> 10) << ((u & (1u << 9)) >> 6);
        if (node >= m->n_units) break;
        if ((u >> 8) & 1) {
            if (found++ < UNI_MAX_TRIE_RESULTS) {
                best = i + 1;
                *val = rd32(m->units + 4 * node) & 0x7FFFFFFFu;
            }
        }
    }
    return best;
}

typedef struct {
    char *p;
    size_t n, cap;
} uni_buf;

static void buf_put(uni_buf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = herd_xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

/* normalizer.cc NormalizePrefix: the replacement of the longest prefix of s[0..n) and its input length. */
static size_t normalize_prefix(const unigram_model *m, const uint8_t *s, size_t n, const char **rep, size_t *rep_len) {
    /* user-defined pieces pass through unnormalized, longest first */
    size_t best = 0;
    for (int32_t k = 0; k < m->n_user; k++) {
        int32_t id = m->user[k];
        size_t len = m->off[id + 1] - m->off[id] - 1;
        if (len > best && len <= n && !memcmp(s, m->blob + m->off[id], len)) best = len;
    }
    if (best) {
        *rep = (const char *)s;
        *rep_len = best;
        return best;
    }
    if (m->units) {
        uint32_t val = 0;
        size_t len = charsmap_match(m, s, n, &val);
        if (len) {
            if (val >= m->norm_len) {
                *rep = "";
                *rep_len = 0;
            } else {
                *rep = m->norm + val;
                *rep_len = strnlen(*rep, m->norm_len - val);
            }
            return len;
        }
    }
    size_t len = utf8_valid_len(s, n);
    if (!len) {
        *rep = "\xEF\xBF\xBD"; /* a bad byte becomes U+FFFD, consuming one byte */
        *rep_len = 3;
        return 1;
    }
    *rep = (const char *)s;
    *rep_len = len;
    return len;
}

static const char SPACE[] = "\xE2\x96\x81"; /* U+2581 */

int unigram_normalize(const unigram_model *m, const char *text, size_t len, char **out, size_t *out_len) {
    uni_buf b = {0};
    buf_put(&b, "", 0);
    const uint8_t *s = (const uint8_t *)text;
    size_t pos = 0;
    const char *rep;
    size_t rep_len;
    if (m->remove_extra_whitespaces) { /* leading spaces (after normalization) go */
        while (pos < len) {
            size_t used = normalize_prefix(m, s + pos, len - pos, &rep, &rep_len);
            if (!(rep_len == 1 && rep[0] == ' ')) break;
            pos += used;
        }
    }
    if (pos < len) {
        if (m->add_dummy_prefix) buf_put(&b, m->escape_whitespaces ? SPACE : " ", m->escape_whitespaces ? 3 : 1);
        bool prev_space = m->remove_extra_whitespaces;
        while (pos < len) {
            size_t used = normalize_prefix(m, s + pos, len - pos, &rep, &rep_len);
            while (prev_space && rep_len && rep[0] == ' ') rep++, rep_len--;
            if (rep_len) {
                for (size_t k = 0; k < rep_len; k++) {
                    if (m->escape_whitespaces && rep[k] == ' ') buf_put(&b, SPACE, 3);
                    else buf_put(&b, rep + k, 1);
                }
                prev_space = rep[rep_len - 1] == ' ';
            }
            pos += used;
            if (!m->remove_extra_whitespaces) prev_space = false;
        }
        if (m->remove_extra_whitespaces) {
            size_t sl = m->escape_whitespaces ? 3 : 1;
            const char *sp = m->escape_whitespaces ? SPACE : " ";
            while (b.n >= sl && !memcmp(b.p + b.n - sl, sp, sl)) b.n -= sl;
            b.p[b.n] = 0;
        }
    }
    *out = b.p;
    *out_len = b.n;
    return 0;
}

/* ---- Viterbi (unigram_model.cc Model::Encode) ------------------------------------------------------ */

static size_t one_char_len(uint8_t c) { /* sentencepiece's OneCharLen: by the lead byte alone */
    static const uint8_t tab[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return tab[c >> 4];
}

typedef struct {
    int32_t id;
    float score;
    int64_t starts_at; /* -1: not reached yet */
} uni_node;

int unigram_encode(const unigram_model *m, const char *text, size_t len, int64_t max_ids, int32_t **ids,
                   int64_t *n_ids) {
    *ids = NULL;
    *n_ids = 0;
    if (len > (size_t)INT32_MAX / 8) return herd_err(HERD_E_RANGE, "tokenizer: text of %zu bytes is too long", len);
    char *norm;
    size_t n;
    unigram_normalize(m, text, len, &norm, &n);
    uni_node *best = malloc((n + 1) * sizeof *best);
    int32_t *out = malloc((2 * n + 1) * 4 * sizeof *out);
    if (!best || !out) {
        free(norm);
        free(best);
        free(out);
        return herd_err(HERD_E_NOMEM, "tokenizer: out of memory for %zu bytes", n);
    }
    for (size_t i = 0; i <= n; i++) best[i] = (uni_node){-1, 0.0f, -1};
    best[0].starts_at = 0;
    const float unk_score = m->min_score - UNI_UNK_PENALTY;
    const uint8_t *s = (const uint8_t *)norm;
    size_t start = 0;
    while (start < n) {
        float till_here = best[start].score;
        size_t mblen = one_char_len(s[start]);
        if (mblen > n - start) mblen = n - start;
        bool single = false;
        size_t maxl = m->max_piece_len < n - start ? m->max_piece_len : n - start;
        for (size_t l = 1; l <= maxl; l++) {
            int32_t id = tok_strmap_get(&m->map, norm + start, l);
            if (id < 0 || m->type[id] == UNI_UNUSED) continue;
            uni_node *t = &best[start + l];
            /* a user-defined piece gets a bonus so that it is always chosen (computed in double there) */
            double sc = m->type[id] == UNI_USER_DEFINED ? (double)((float)l * m->max_score) - 0.1 : (double)m->score[id];
            double cand = sc + (double)till_here;
            if (t->starts_at == -1 || cand > (double)t->score) {
                t->score = (float)cand;
                t->starts_at = (int64_t)start;
                t->id = id;
            }
            if (l == mblen) single = true;
        }
        if (!single) {
            uni_node *t = &best[start + mblen];
            float cand = unk_score + till_here;
            if (t->starts_at == -1 || cand > t->score) {
                t->score = cand;
                t->starts_at = (int64_t)start;
                t->id = m->unk;
            }
        }
        start += mblen;
    }
    /* backtrack: pieces in reverse, then expand unknowns to bytes */
    int64_t n_rev = 0;
    size_t *cut = malloc((n + 1) * sizeof *cut);
    if (!cut) {
        free(norm);
        free(best);
        free(out);
        return herd_err(HERD_E_NOMEM, "tokenizer: out of memory for %zu bytes", n);
    }
    for (size_t end = n; end > 0; end = (size_t)best[end].starts_at) cut[n_rev++] = end;
    int64_t k = 0;
    size_t prev = 0;
    for (int64_t r = n_rev - 1; r >= 0; r--) {
        size_t end = cut[r];
        int32_t id = best[end].id;
        if (id == m->unk && m->byte_fallback) {
            for (size_t b = prev; b < end; b++) out[k++] = m->byte_id[s[b]];
        } else if (id == m->unk && k > 0 && out[k - 1] == m->unk && best[prev].id == m->unk) {
            /* consecutive unknown characters are one unknown piece (as sentencepiece returns them) */
        } else {
            out[k++] = id;
        }
        prev = end;
    }
    free(cut);
    free(norm);
    free(best);
    if (max_ids >= 0 && k > max_ids) k = max_ids;
    *ids = out;
    *n_ids = k;
    return 0;
}

/* ---- directory ----------------------------------------------------------------------------------- */

int unigram_load_dir(const char *dir, unigram_model **out) {
    *out = NULL;
    static const char *const names[] = {"tokenizer.json", "spm.model", "tokenizer.model"};
    for (int i = 0; i < 3; i++) {
        size_t pl = strlen(dir) + strlen(names[i]) + 2;
        char *path = herd_xmalloc(pl);
        snprintf(path, pl, "%s/%s", dir, names[i]);
        FILE *f = fopen(path, "rb");
        if (!f) {
            free(path);
            continue;
        }
        fclose(f);
        int rc;
        if (i == 0) {
            char *text;
            size_t len;
            rc = herd_file_read_all(path, (size_t)1 << 30, &text, &len);
            if (!rc) {
                rc = unigram_load_json(text, len, path, out);
                free(text);
            }
        } else {
            herd_mapped_file mf;
            rc = herd_file_map(path, &mf);
            if (!rc) {
                rc = unigram_load_spm(mf.data, mf.size, path, out);
                herd_file_unmap(&mf);
            }
        }
        free(path);
        return rc;
    }
    return herd_err(HERD_E_IO, "tokenizer: %s has no tokenizer.json, spm.model or tokenizer.model", dir);
}
