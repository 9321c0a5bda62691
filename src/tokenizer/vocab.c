/* Vocabulary loading, the tokenize driver, token pieces and detokenize; see vocab.h.
 * The tokenizer families live in bpe.c / pretok_llama3.c and spm.c, special-token partitioning in
 * special.c. Defaults and fix-ups follow llama.cpp's llama_vocab::load so that ids match it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/log.h"
#include "tok_internal.h"

/* ---- small helpers --------------------------------------------------------------------------- */

void tok_ids_push(tok_ids *o, int32_t id) {
    if (o->oom) return;
    if (o->n == o->cap) {
        int64_t cap = o->cap ? o->cap * 2 : 64;
        int32_t *p = realloc(o->p, (size_t)cap * sizeof(*p));
        if (!p) {
            o->oom = true;
            return;
        }
        o->p = p, o->cap = cap;
    }
    o->p[o->n++] = id;
}

const char *tok_text(const herd_vocab *v, int32_t id, size_t *len) {
    *len = (size_t)(v->text_off[id + 1] - v->text_off[id] - 1);
    return v->texts + v->text_off[id];
}

/* Pre-tokenizers that llama.cpp maps to its LLAMA3 regex (and sets ignore_merges + add_bos for). */
static const char *const llama3_pre[] = {"llama3",  "llama-v3", "llama-bpe", "falcon3",     "falcon-h1",
                                         "pixtral", "midm-2.0", "lfm2",      "jina-v5-nano"};

/* clang-format off */
/* Token texts llama.cpp treats as end-of-generation (its by-text list; see llama-vocab.cpp). */
static const char *const eog_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    "<\xef\xbd\x9c" "end\xe2\x96\x81" "of\xe2\x96\x81" "sentence\xef\xbd\x9c>", "[e~[",
};
/* Texts it takes for the EOT token when tokenizer.ggml.eot_token_id is absent (first found wins). */
static const char *const eot_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<EOT>",
    "_<EOT>", "[EOT]", "<\xef\xbd\x9c" "end\xe2\x96\x81" "of\xe2\x96\x81" "sentence\xef\xbd\x9c>",
    "<end_of_utterance>",
};
/* clang-format on */

static int32_t find_cstr(const herd_vocab *v, const char *s) {
    return tok_strmap_get(&v->text_map, s, strlen(s));
}

static char *dup_str(gguf_str s) {
    return herd_xstrndup(s.ptr, (size_t)s.len);
}

/* Special token id from key (if present and in range), else dflt. */
static int32_t special_id(const gguf_file *g, const char *key, int32_t dflt, int32_t n_tokens) {
    int64_t id;
    if (dflt >= n_tokens) dflt = -1;
    if (gguf_get_int(g, key, &id) && id >= 0 && id < n_tokens) return (int32_t)id;
    return dflt;
}

/* ---- pieces (detokenize) --------------------------------------------------------------------- */

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Writes the render_special piece of token id to out (room: 2 * text length + 1); returns length. */
static size_t make_piece(const herd_vocab *v, const int16_t *inv, int32_t id, char *out) {
    size_t n;
    const char *t = tok_text(v, id, &n);
    uint8_t a = v->attr[id];
    if (a & (TOK_ATTR_UNKNOWN | TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED)) {
        memcpy(out, t, n);
        return n;
    }
    if (a & TOK_ATTR_NORMAL) {
        size_t k = 0;
        if (v->kind == VOCAB_SPM) { /* U+2581 -> space */
            for (size_t i = 0; i < n;) {
                if (i + 3 <= n && memcmp(t + i, "\xe2\x96\x81", 3) == 0) {
                    out[k++] = ' ';
                    i += 3;
                } else {
                    out[k++] = t[i++];
                }
            }
            return k;
        }
        /* byte-level chars -> bytes; a char outside the 256 (not in Llama 3's vocabulary) is kept as
         * its UTF-8 (llama.cpp writes an "[UNK_BYTE_...]" marker there) */
        const uint8_t *s = (const uint8_t *)t;
        for (size_t i = 0; i < n;) {
            if (s[i] < 0x80 && inv[s[i]] >= 0) {
                out[k++] = (char)inv[s[i]];
                i++;
            } else if ((s[i] & 0xE0) == 0xC0 && i + 1 < n && (s[i + 1] & 0xC0) == 0x80) {
                uint32_t cp = ((uint32_t)(s[i] & 0x1F) << 6) | (s[i + 1] & 0x3F);
                if (cp < 0x200 && inv[cp] >= 0) {
                    out[k++] = (char)inv[cp];
                } else {
                    out[k++] = (char)s[i];
                    out[k++] = (char)s[i + 1];
                }
                i += 2;
            } else {
                out[k++] = (char)s[i++];
            }
        }
        return k;
    }
    if (a & TOK_ATTR_BYTE) { /* "<0xXX>": llama.cpp parses the two chars after "<0x" */
        int val = 0;
        for (size_t i = 3; i < 5 && i < n && hexval(t[i]) >= 0; i++) val = val * 16 + hexval(t[i]);
        out[0] = (char)val;
        return 1;
    }
    return 0; /* unused / undefined tokens have no text */
}

static void build_pieces(herd_vocab *v) {
    int16_t inv[0x200];
    for (int i = 0; i < 0x200; i++) inv[i] = -1;
    if (v->kind == VOCAB_BPE) {
        for (int b = 0; b < 256; b++) {
            uint32_t cp = v->byte_char_len[b] == 1
                              ? v->byte_char[b][0]
                              : ((uint32_t)(v->byte_char[b][0] & 0x1F) << 6) | (v->byte_char[b][1] & 0x3F);
            inv[cp] = (int16_t)b;
        }
    }
    /* a piece is never longer than its text (each char gives at most its own bytes) */
    v->pieces = herd_xmalloc(v->text_off[v->n_tokens] + 1);
    v->piece_off = herd_xmalloc(((size_t)v->n_tokens + 1) * sizeof(uint64_t));
    uint64_t at = 0;
    for (int32_t id = 0; id < v->n_tokens; id++) {
        v->piece_off[id] = at;
        at += make_piece(v, inv, id, v->pieces + at);
    }
    v->piece_off[v->n_tokens] = at;
}

/* ---- load ------------------------------------------------------------------------------------ */

static int cmp_special(const void *a, const void *b, void *vv) {
    const herd_vocab *v = vv;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    size_t lx, ly;
    tok_text(v, x, &lx);
    tok_text(v, y, &ly);
    if (lx != ly) return lx > ly ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* Stable merge sort of the special ids by cmp_special (qsort has no context argument; the list is
 * hundreds of ids). */
static void sort_special(herd_vocab *v) {
    int32_t n = v->n_special;
    int32_t *tmp = herd_xmalloc((size_t)(n ? n : 1) * sizeof(int32_t));
    for (int32_t width = 1; width < n; width *= 2) {
        for (int32_t lo = 0; lo < n; lo += 2 * width) {
            int32_t mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
            int32_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi)
                tmp[k++] =
                    cmp_special(&v->special[j], &v->special[i], v) < 0 ? v->special[j++] : v->special[i++];
            while (i < mid) tmp[k++] = v->special[i++];
            while (j < hi) tmp[k++] = v->special[j++];
        }
        memcpy(v->special, tmp, (size_t)n * sizeof(int32_t));
    }
    free(tmp);
}

int vocab_load(const gguf_file *g, const char *what, herd_vocab **out) {
    *out = NULL;
    gguf_str model, pre = {"", 0};
    if (!gguf_get_str(g, "tokenizer.ggml.model", &model))
        return herd_err(HERD_E_FORMAT, "tokenizer: %s has no tokenizer.ggml.model", what);
    bool has_pre = gguf_get_str(g, "tokenizer.ggml.pre", &pre);

    herd_vocab *v = herd_xcalloc(1, sizeof(*v));
    v->model = dup_str(model);
    v->pre = has_pre ? dup_str(pre) : herd_xstrndup("default", 7);
    v->bos = v->eos = v->eot = v->eom = v->unk = v->pad = -1;
    int rc = 0;

    if (strcmp(v->model, "gpt2") == 0) {
        v->kind = VOCAB_BPE;
        bool known = false;
        for (size_t i = 0; i < sizeof(llama3_pre) / sizeof(llama3_pre[0]); i++)
            known |= strcmp(v->pre, llama3_pre[i]) == 0;
        if (!known) {
            rc = herd_err(HERD_E_UNSUPPORTED,
                          "tokenizer: %s: pre-tokenizer '%s' is not supported (herd has llama-bpe)", what,
                          v->pre);
            goto fail;
        }
        v->ignore_merges = true;
        v->add_bos = true;
    } else if (strcmp(v->model, "llama") == 0) {
        v->kind = VOCAB_SPM;
        free(v->pre);
        v->pre = herd_xstrndup("default", 7);
        v->add_space_prefix = true;
        v->add_bos = true;
    } else {
        rc = herd_err(HERD_E_UNSUPPORTED,
                      "tokenizer: %s: tokenizer model '%s' is not supported (herd has gpt2, llama)", what,
                      v->model);
        goto fail;
    }
    gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix);

    const gguf_kv *tokens = gguf_get_arr(g, "tokenizer.ggml.tokens", GGUF_T_STRING);
    if (!tokens) {
        rc = herd_err(HERD_E_FORMAT, "tokenizer: %s has no string array tokenizer.ggml.tokens", what);
        goto fail;
    }
    if (tokens->arr_n == 0 || tokens->arr_n > INT32_MAX / 2) {
        rc = herd_err(HERD_E_FORMAT, "tokenizer: %s: tokenizer.ggml.tokens has %llu entries", what,
                      (unsigned long long)tokens->arr_n);
        goto fail;
    }
    int32_t n = v->n_tokens = (int32_t)tokens->arr_n;

    const gguf_kv *scores = gguf_get_arr(g, "tokenizer.ggml.scores", GGUF_T_FLOAT32);
    const gguf_kv *iscores = scores ? NULL : gguf_get_arr(g, "tokenizer.ggml.scores", GGUF_T_INT32);
    if (gguf_find_key(g, "tokenizer.ggml.scores") >= 0 && !scores && !iscores) {
        rc = herd_err(HERD_E_FORMAT, "tokenizer: %s: tokenizer.ggml.scores is not a float32/int32 array",
                      what);
        goto fail;
    }
    const gguf_kv *sc = scores ? scores : iscores;
    if (sc && sc->arr_n < (uint64_t)n) {
        rc = herd_err(HERD_E_FORMAT, "tokenizer: %s: %llu scores for %d tokens", what,
                      (unsigned long long)sc->arr_n, n);
        goto fail;
    }
    const gguf_kv *types = gguf_get_arr(g, "tokenizer.ggml.token_type", GGUF_T_INT32);
    if (gguf_find_key(g, "tokenizer.ggml.token_type") >= 0 && !types) {
        rc = herd_err(HERD_E_FORMAT, "tokenizer: %s: tokenizer.ggml.token_type is not an int32 array", what);
        goto fail;
    }
    if (types && types->arr_n < (uint64_t)n) {
        rc = herd_err(HERD_E_FORMAT, "tokenizer: %s: %llu token types for %d tokens", what,
                      (unsigned long long)types->arr_n, n);
        goto fail;
    }

    /* texts (empty ones renamed as llama.cpp does, so that they stay distinct) */
    uint64_t total = 0;
    for (int32_t i = 0; i < n; i++) total += (tokens->strs[i].len ? tokens->strs[i].len : 24) + 1;
    if (total > UINT32_MAX) { /* token texts are addressed by 32-bit offsets */
        rc = herd_err(HERD_E_FORMAT, "tokenizer: %s: token texts take %llu bytes", what,
                      (unsigned long long)total);
        goto fail;
    }
    v->texts = herd_xmalloc(total);
    v->text_off = herd_xmalloc(((size_t)n + 1) * sizeof(uint64_t));
    v->attr = herd_xmalloc((size_t)n);
    v->score = herd_xmalloc((size_t)n * sizeof(float));
    v->eog = herd_xcalloc((size_t)n, 1);
    v->special_rank = herd_xmalloc((size_t)n * sizeof(int32_t));
    uint64_t at = 0;
    for (int32_t i = 0; i < n; i++) {
        v->text_off[i] = at;
        const gguf_str *s = &tokens->strs[i];
        if (s->len) {
            memcpy(v->texts + at, s->ptr, s->len);
            at += s->len;
        } else {
            at += (uint64_t)snprintf(v->texts + at, 24, "[EMPTY_%d]", i);
        }
        v->texts[at++] = 0;
        float f = 0;
        if (scores) memcpy(&f, scores->raw + 4 * (size_t)i, 4);
        if (iscores) {
            int32_t k;
            memcpy(&k, iscores->raw + 4 * (size_t)i, 4);
            f = (float)k;
        }
        v->score[i] = f;
        int32_t t = TOKEN_TYPE_NORMAL;
        if (types) memcpy(&t, types->raw + 4 * (size_t)i, 4);
        switch (t) {
        case TOKEN_TYPE_NORMAL:
            v->attr[i] = TOK_ATTR_NORMAL;
            break;
        case TOKEN_TYPE_UNKNOWN:
            v->attr[i] = TOK_ATTR_UNKNOWN;
            break;
        case TOKEN_TYPE_CONTROL:
            v->attr[i] = TOK_ATTR_CONTROL;
            break;
        case TOKEN_TYPE_USER_DEFINED:
            v->attr[i] = TOK_ATTR_USER_DEFINED;
            break;
        case TOKEN_TYPE_UNUSED:
            v->attr[i] = TOK_ATTR_UNUSED;
            break;
        case TOKEN_TYPE_BYTE:
            v->attr[i] = TOK_ATTR_BYTE;
            break;
        default:
            v->attr[i] = TOK_ATTR_UNDEFINED;
            break;
        }
    }
    v->text_off[n] = at;
    tok_strmap_init(&v->text_map, v->texts, n);
    for (int32_t i0 = 0; i0 < n; i0 += 16) { /* blocks of 16: hash and prefetch, then insert */
        uint64_t h[16];
        int32_t nb = n - i0 < 16 ? n - i0 : 16;
        for (int32_t q = 0; q < nb; q++) {
            size_t len;
            const char *t = tok_text(v, i0 + q, &len);
            h[q] = tok_hash(t, len);
            tok_strmap_prefetch(&v->text_map, h[q]);
        }
        for (int32_t q = 0; q < nb; q++) {
            int32_t i = i0 + q;
            size_t len;
            tok_text(v, i, &len);
            int32_t prev = tok_strmap_put_h(&v->text_map, v->text_off[i], len, i, h[q]);
            if (prev != i) {
                rc = herd_err(HERD_E_FORMAT, "tokenizer: %s: tokens %d and %d have the same text", what, prev,
                              i);
                goto fail;
            }
        }
    }

    if (v->kind == VOCAB_BPE) {
        const gguf_kv *merges = gguf_get_arr(g, "tokenizer.ggml.merges", GGUF_T_STRING);
        if (!merges) {
            rc = herd_err(HERD_E_FORMAT, "tokenizer: %s has no string array tokenizer.ggml.merges", what);
            goto fail;
        }
        rc = tok_bpe_init(v, merges, what);
        if (rc < 0) goto fail;
    }

    /* special ids: llama.cpp's per-model defaults, replaced by in-range metadata */
    v->bos = special_id(g, "tokenizer.ggml.bos_token_id", v->kind == VOCAB_SPM ? 1 : 11, n);
    v->eos = special_id(g, "tokenizer.ggml.eos_token_id", v->kind == VOCAB_SPM ? 2 : 11, n);
    v->unk = special_id(g, "tokenizer.ggml.unknown_token_id", v->kind == VOCAB_SPM ? 0 : -1, n);
    v->eot = special_id(g, "tokenizer.ggml.eot_token_id", -1, n);
    v->eom = special_id(g, "tokenizer.ggml.eom_token_id", -1, n);
    v->pad = special_id(g, "tokenizer.ggml.padding_token_id", -1, n);
    gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &v->add_bos);
    gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &v->add_eos);

    /* EOT / EOM by text when the metadata has none; such tokens become control tokens */
    for (size_t i = 0; v->eot < 0 && i < sizeof(eot_texts) / sizeof(eot_texts[0]); i++)
        v->eot = find_cstr(v, eot_texts[i]);
    if (v->eom < 0) v->eom = find_cstr(v, "<|eom_id|>");
    if (v->eot >= 0) v->attr[v->eot] |= TOK_ATTR_CONTROL;
    if (v->eom >= 0) v->attr[v->eom] |= TOK_ATTR_CONTROL;
    /* end-of-generation set */
    for (size_t i = 0; i < sizeof(eog_texts) / sizeof(eog_texts[0]); i++) {
        int32_t id = find_cstr(v, eog_texts[i]);
        if (id < 0) continue;
        v->eog[id] = 1;
        v->attr[id] |= TOK_ATTR_CONTROL;
    }
    if (v->eos >= 0) v->eog[v->eos] = 1;
    if (v->eot >= 0) v->eog[v->eot] = 1;
    if (v->eom >= 0) v->eog[v->eom] = 1;

    /* special-token candidates, in llama.cpp's order */
    v->special = herd_xmalloc((size_t)n * sizeof(int32_t));
    for (int32_t i = 0; i < n; i++)
        if (v->attr[i] & (TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN))
            v->special[v->n_special++] = i;
    sort_special(v);
    for (int32_t i = 0; i < n; i++) v->special_rank[i] = -1;
    for (int32_t i = 0; i < v->n_special; i++) v->special_rank[v->special[i]] = i;
    tok_trie_build(v);

    if (v->kind == VOCAB_SPM) tok_spm_init(v);
    build_pieces(v);
    *out = v;
    return 0;

fail:
    vocab_free(v);
    return rc;
}

void vocab_free(herd_vocab *v) {
    if (!v) return;
    free(v->model);
    free(v->pre);
    free(v->texts);
    free(v->text_off);
    free(v->attr);
    free(v->score);
    tok_strmap_free(&v->text_map);
    free(v->pieces);
    free(v->piece_off);
    free(v->eog);
    free(v->special);
    free(v->special_rank);
    free(v->trie);
    tok_strmap_free(&v->raw_map);
    free(v->raw_blob);
    tok_pairmap_free(&v->merges);
    free(v);
}

/* ---- accessors ------------------------------------------------------------------------------- */

vocab_kind vocab_get_kind(const herd_vocab *v) {
    return v->kind;
}
const char *vocab_model_name(const herd_vocab *v) {
    return v->model;
}
const char *vocab_pre_name(const herd_vocab *v) {
    return v->pre;
}
int32_t vocab_n_tokens(const herd_vocab *v) {
    return v->n_tokens;
}
int32_t vocab_bos(const herd_vocab *v) {
    return v->bos;
}
int32_t vocab_eos(const herd_vocab *v) {
    return v->eos;
}
int32_t vocab_eot(const herd_vocab *v) {
    return v->eot;
}
int32_t vocab_eom(const herd_vocab *v) {
    return v->eom;
}
bool vocab_add_bos(const herd_vocab *v) {
    return v->add_bos;
}
bool vocab_add_eos(const herd_vocab *v) {
    return v->add_eos;
}

bool vocab_is_eog(const herd_vocab *v, int32_t id) {
    return id >= 0 && id < v->n_tokens && v->eog[id];
}

bool vocab_is_control(const herd_vocab *v, int32_t id) {
    return id >= 0 && id < v->n_tokens && (v->attr[id] & TOK_ATTR_CONTROL);
}

int32_t vocab_find(const herd_vocab *v, const char *text, size_t len) {
    return tok_strmap_get(&v->text_map, text, len);
}

const char *vocab_token_text(const herd_vocab *v, int32_t id) {
    if (id < 0 || id >= v->n_tokens) return NULL;
    return v->texts + v->text_off[id];
}

/* ---- tokenize -------------------------------------------------------------------------------- */

typedef struct {
    const herd_vocab *v;
    const char *text;
    tok_ids *out;
    tok_bpe_scratch *bpe;
    bool prev_special; /* SPM: a raw fragment after a special token (or at the start) gets a space */
} tokenize_state;

static int on_fragment(void *user, size_t start, size_t len, int32_t id) {
    tokenize_state *st = user;
    const herd_vocab *v = st->v;
    if (id >= 0) {
        tok_ids_push(st->out, id);
        st->prev_special = true;
        return 0;
    }
    const uint8_t *s = (const uint8_t *)st->text + start;
    if (v->kind == VOCAB_BPE) return tok_bpe_fragment(v, st->bpe, s, len, st->out);

    /* SPM: optional leading space, then every space becomes U+2581 (3 bytes) */
    bool prefix = v->add_space_prefix && st->prev_special;
    st->prev_special = false;
    size_t n_sp = prefix;
    for (size_t i = 0; i < len; i++) n_sp += s[i] == ' ';
    size_t n = len + 2 * n_sp + prefix;
    uint8_t *e = malloc(n ? n : 1);
    if (!e) return herd_err(HERD_E_NOMEM, "tokenizer: out of memory for %zu bytes of text", len);
    size_t k = 0;
    if (prefix) memcpy(e + k, "\xe2\x96\x81", 3), k += 3;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == ' ')
            memcpy(e + k, "\xe2\x96\x81", 3), k += 3;
        else
            e[k++] = s[i];
    }
    int rc = tok_spm_fragment(v, e, k, st->out);
    free(e);
    return rc;
}

int vocab_tokenize(const herd_vocab *v, const char *text, size_t len, bool add_bos, bool parse_special,
                   int32_t **ids, int64_t *n_ids) {
    *ids = NULL;
    *n_ids = 0;
    if (!text && len) return herd_err(HERD_E_ARG, "tokenizer: NULL text of length %zu", len);
    /* symbol positions are 32-bit and SPM text grows up to 3x */
    if (len > (size_t)(INT32_MAX / 4))
        return herd_err(HERD_E_RANGE, "tokenizer: %zu bytes is too long to tokenize at once", len);
    if (add_bos && v->bos < 0)
        return herd_err(HERD_E_ARG, "tokenizer: BOS requested but the vocabulary has none");

    tok_ids out = {0};
    out.cap = (int64_t)(len / 3 + 16);
    out.p = malloc((size_t)out.cap * sizeof(int32_t));
    if (!out.p) return herd_err(HERD_E_NOMEM, "tokenizer: out of memory for %zu bytes of text", len);
    if (add_bos) tok_ids_push(&out, v->bos);

    tokenize_state st = {v, text, &out, NULL, true};
    if (v->kind == VOCAB_BPE) st.bpe = tok_bpe_scratch_new();
    int rc = tok_partition(v, text, len, parse_special, on_fragment, &st);
    tok_bpe_scratch_free(st.bpe);
    if (rc == 0 && out.oom)
        rc = herd_err(HERD_E_NOMEM, "tokenizer: out of memory for the ids of %zu bytes", len);
    if (rc < 0) {
        free(out.p);
        return rc;
    }
    *ids = out.p;
    *n_ids = out.n;
    return 0;
}

/* ---- detokenize ------------------------------------------------------------------------------ */

static const char *piece_of(const herd_vocab *v, int32_t id, bool render_special, size_t *len) {
    if (!render_special && (v->attr[id] & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN))) {
        *len = 0;
        return v->pieces;
    }
    *len = (size_t)(v->piece_off[id + 1] - v->piece_off[id]);
    return v->pieces + v->piece_off[id];
}

int64_t vocab_token_to_piece(const herd_vocab *v, int32_t id, bool render_special, char *buf, size_t cap) {
    if (id < 0 || id >= v->n_tokens) return -1;
    size_t n;
    const char *p = piece_of(v, id, render_special, &n);
    if (buf) memcpy(buf, p, n < cap ? n : cap);
    return (int64_t)n;
}

int vocab_detokenize(const herd_vocab *v, const int32_t *ids, int64_t n, bool render_special, char **text,
                     size_t *len) {
    *text = NULL;
    *len = 0;
    if (n < 0 || (n > 0 && !ids))
        return herd_err(HERD_E_ARG, "tokenizer: bad id list (%lld ids)", (long long)n);
    /* SPM: the space that add_space_prefix put before the text is dropped from the first text token,
     * at the start or right after a leading BOS */
    int64_t strip_at = -1;
    if (v->kind == VOCAB_SPM && v->add_space_prefix && n > 0) strip_at = (ids[0] == v->bos && n > 1) ? 1 : 0;
    size_t total = 0;
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= v->n_tokens)
            return herd_err(HERD_E_ARG,
                            "tokenizer: token id %d at position %lld is out of range (vocabulary of %d)",
                            ids[i], (long long)i, v->n_tokens);
        size_t k;
        piece_of(v, ids[i], render_special, &k);
        total += k;
    }
    char *out = malloc(total + 1);
    if (!out) return herd_err(HERD_E_NOMEM, "tokenizer: out of memory for %zu bytes of text", total);
    size_t at = 0;
    for (int64_t i = 0; i < n; i++) {
        size_t k;
        const char *p = piece_of(v, ids[i], render_special, &k);
        if (i == strip_at && k > 0 && p[0] == ' ') p++, k--;
        memcpy(out + at, p, k);
        at += k;
    }
    out[at] = 0;
    *text = out;
    *len = at;
    return 0;
}
