/* Hugging Face tokenizers (tokenizer.json, tiktoken tokenizer.model) as GGUF tokenizer metadata;
 * see hf_vocab.h. */
#include "hf_vocab.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../base/file.h"
#include "../base/log.h"
#include "tok_map.h"
#include "vocab.h"

#define TOKENIZER_MAX_BYTES ((size_t)512 << 20)
#define SMALL_JSON_MAX_BYTES ((size_t)16 << 20)
#define UNSET UINT64_MAX

/* The Llama 3 pre-tokenizer regex as tokenizer.json spells it (LLAMA31.md, Tokenizer). */
static const char k_llama3_regex[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

struct hf_vocab {
    gguf_file meta;
    char *source;
    /* strings live in pool; offsets are turned into pointers once the pool stops growing */
    char *pool;
    size_t pool_len, pool_cap;
    int64_t n_tokens;
    uint64_t *tok_off; /* [n_tokens], UNSET until assigned */
    uint32_t *tok_len;
    int32_t *types; /* [n_tokens] TOKEN_TYPE_* */
    int64_t n_merges, cap_merges;
    uint64_t *merge_off;
    uint32_t *merge_len;
    int64_t bos, eos; /* -1 unknown */
    int add_bos;      /* -1 unknown */
    uint64_t tmpl_off;
    size_t tmpl_len;
    bool has_tmpl;
    uint32_t scalars[2];
    bool bool_val;
};

static uint64_t pool_add(hf_vocab *v, const char *s, size_t n) {
    if (v->pool_len + n + 1 > v->pool_cap) {
        v->pool_cap = (v->pool_len + n + 1) * 2;
        v->pool = herd_xrealloc(v->pool, v->pool_cap);
    }
    uint64_t at = v->pool_len;
    memcpy(v->pool + at, s, n);
    v->pool[at + n] = 0;
    v->pool_len += n + 1;
    return at;
}

static void alloc_tokens(hf_vocab *v, int64_t n) {
    v->n_tokens = n;
    v->tok_off = herd_xmalloc((size_t)n * sizeof *v->tok_off);
    v->tok_len = herd_xcalloc((size_t)n, sizeof *v->tok_len);
    v->types = herd_xcalloc((size_t)n, sizeof *v->types);
    for (int64_t i = 0; i < n; i++) v->tok_off[i] = UNSET;
}

static void add_merge(hf_vocab *v, uint64_t off, size_t len) {
    if (v->n_merges == v->cap_merges) {
        v->cap_merges = v->cap_merges ? v->cap_merges * 2 : 1024;
        v->merge_off = herd_xrealloc(v->merge_off, (size_t)v->cap_merges * sizeof *v->merge_off);
        v->merge_len = herd_xrealloc(v->merge_len, (size_t)v->cap_merges * sizeof *v->merge_len);
    }
    v->merge_off[v->n_merges] = off;
    v->merge_len[v->n_merges++] = (uint32_t)len;
}

/* Ids no token claims become "[PAD<id>]", unused (llama.cpp's converter does the same). */
static void pad_tokens(hf_vocab *v) {
    char buf[32];
    for (int64_t i = 0; i < v->n_tokens; i++)
        if (v->tok_off[i] == UNSET) {
            int n = snprintf(buf, sizeof buf, "[PAD%lld]", (long long)i);
            v->tok_off[i] = pool_add(v, buf, (size_t)n);
            v->tok_len[i] = (uint32_t)n;
            v->types[i] = TOKEN_TYPE_UNUSED;
        }
}

static int64_t find_token(const hf_vocab *v, const char *text) {
    size_t n = strlen(text);
    for (int64_t i = 0; i < v->n_tokens; i++)
        if (v->tok_off[i] != UNSET && v->tok_len[i] == n && memcmp(v->pool + v->tok_off[i], text, n) == 0)
            return i;
    return -1;
}

/* ---- the in-memory GGUF ---------------------------------------------------------------------- */

static gguf_kv *new_kv(hf_vocab *v, const char *key, int type) {
    gguf_file *g = &v->meta;
    gguf_kv *kv = &g->kv[g->n_kv++];
    memset(kv, 0, sizeof *kv);
    kv->key = herd_xstrndup(key, strlen(key));
    kv->type = type;
    return kv;
}

static gguf_str *str_list(const hf_vocab *v, const uint64_t *off, const uint32_t *len, int64_t n) {
    gguf_str *s = herd_xmalloc((size_t)(n ? n : 1) * sizeof *s);
    for (int64_t i = 0; i < n; i++) s[i] = (gguf_str){v->pool + off[i], len[i]};
    return s;
}

static void finalize(hf_vocab *v) {
    pad_tokens(v);
    gguf_file *g = &v->meta;
    g->kv = herd_xcalloc(10, sizeof *g->kv);
    g->version = 3;
    gguf_kv *kv = new_kv(v, "tokenizer.ggml.model", GGUF_T_STRING);
    kv->v.s = (gguf_str){"gpt2", 4};
    kv = new_kv(v, "tokenizer.ggml.pre", GGUF_T_STRING);
    kv->v.s = (gguf_str){"llama-bpe", 9};
    kv = new_kv(v, "tokenizer.ggml.tokens", GGUF_T_ARRAY);
    kv->arr_type = GGUF_T_STRING;
    kv->arr_n = (uint64_t)v->n_tokens;
    kv->strs = str_list(v, v->tok_off, v->tok_len, v->n_tokens);
    kv = new_kv(v, "tokenizer.ggml.token_type", GGUF_T_ARRAY);
    kv->arr_type = GGUF_T_INT32;
    kv->arr_n = (uint64_t)v->n_tokens;
    kv->raw = (const uint8_t *)v->types;
    kv = new_kv(v, "tokenizer.ggml.merges", GGUF_T_ARRAY);
    kv->arr_type = GGUF_T_STRING;
    kv->arr_n = (uint64_t)v->n_merges;
    kv->strs = str_list(v, v->merge_off, v->merge_len, v->n_merges);
    if (v->bos >= 0) {
        v->scalars[0] = (uint32_t)v->bos;
        kv = new_kv(v, "tokenizer.ggml.bos_token_id", GGUF_T_UINT32);
        kv->v.u = v->scalars[0];
        kv->raw = (const uint8_t *)&v->scalars[0];
    }
    if (v->eos >= 0) {
        v->scalars[1] = (uint32_t)v->eos;
        kv = new_kv(v, "tokenizer.ggml.eos_token_id", GGUF_T_UINT32);
        kv->v.u = v->scalars[1];
        kv->raw = (const uint8_t *)&v->scalars[1];
    }
    if (v->add_bos >= 0) {
        v->bool_val = v->add_bos == 1;
        kv = new_kv(v, "tokenizer.ggml.add_bos_token", GGUF_T_BOOL);
        kv->v.b = v->bool_val;
        kv->raw = (const uint8_t *)&v->bool_val;
    }
    if (v->has_tmpl) {
        kv = new_kv(v, "tokenizer.chat_template", GGUF_T_STRING);
        kv->v.s = (gguf_str){v->pool + v->tmpl_off, v->tmpl_len};
    }
}

static hf_vocab *vocab_new(const char *what) {
    hf_vocab *v = herd_xcalloc(1, sizeof *v);
    v->source = herd_xstrndup(what, strlen(what));
    v->bos = v->eos = v->add_bos = -1;
    return v;
}

void hf_vocab_free(hf_vocab *v) {
    if (!v) return;
    gguf_file_clear(&v->meta);
    free(v->source);
    free(v->pool);
    free(v->tok_off);
    free(v->tok_len);
    free(v->types);
    free(v->merge_off);
    free(v->merge_len);
    free(v);
}

const gguf_file *hf_vocab_meta(const hf_vocab *v) {
    return &v->meta;
}

const char *hf_vocab_source(const hf_vocab *v) {
    return v->source;
}

/* ---- tokenizer.json -------------------------------------------------------------------------- */

static bool is_null_or_absent(const json_t *o, const char *key) {
    const json_t *x = json_object_get(o, key);
    return !x || json_is_null(x);
}

static bool str_eq(const json_t *o, const char *key, const char *want) {
    const char *s = json_string_value(json_object_get(o, key));
    return s && strcmp(s, want) == 0;
}

static int check_pretokenizer(const json_t *root, const char *what) {
    const json_t *pt = json_object_get(root, "pre_tokenizer");
    const json_t *list = json_object_get(pt, "pretokenizers");
    const json_t *split = json_array_get(list, 0), *bl = json_array_get(list, 1);
    bool ok = str_eq(pt, "type", "Sequence") && json_array_size(list) == 2 &&
              str_eq(split, "type", "Split") &&
              str_eq(json_object_get(split, "pattern"), "Regex", k_llama3_regex) &&
              str_eq(split, "behavior", "Isolated") && !json_is_true(json_object_get(split, "invert")) &&
              str_eq(bl, "type", "ByteLevel") && json_is_false(json_object_get(bl, "use_regex"));
    if (!ok)
        return herd_err(
            HERD_E_UNSUPPORTED,
            "tokenizer: %s: the pre-tokenizer is not Llama 3's (a Split on the Llama 3 regex, then "
            "ByteLevel); herd runs only the Llama 3 tokenizer",
            what);
    if (!is_null_or_absent(root, "normalizer"))
        return herd_err(HERD_E_UNSUPPORTED, "tokenizer: %s: has a normalizer; Llama 3's tokenizer has none",
                        what);
    return HERD_OK;
}

/* Sets token id to text with type, refusing ids outside [0, n) and ids given twice. */
static int set_token(hf_vocab *v, const char *what, json_int_t id, const char *text, size_t len, int type,
                     bool allow_override) {
    if (id < 0 || id >= v->n_tokens)
        return herd_err(HERD_E_FORMAT,
                        "tokenizer: %s: token '%.64s' has id %lld, outside the vocabulary of %lld", what,
                        text, (long long)id, (long long)v->n_tokens);
    if (v->tok_off[id] != UNSET && !allow_override)
        return herd_err(HERD_E_FORMAT, "tokenizer: %s: id %lld is given to two tokens", what, (long long)id);
    v->tok_off[id] = pool_add(v, text, len);
    v->tok_len[id] = (uint32_t)len;
    v->types[id] = type;
    return HERD_OK;
}

static int json_vocab(hf_vocab *v, const json_t *root, const char *what, int64_t n_vocab) {
    int rc = check_pretokenizer(root, what);
    if (rc) return rc;
    const json_t *model = json_object_get(root, "model");
    const json_t *vocab = json_object_get(model, "vocab"), *merges = json_object_get(model, "merges");
    const json_t *added = json_object_get(root, "added_tokens");
    if (!str_eq(model, "type", "BPE") || json_is_true(json_object_get(model, "byte_fallback")))
        return herd_err(HERD_E_UNSUPPORTED, "tokenizer: %s: model is not a byte-level BPE (Llama 3's)", what);
    if (!json_is_object(vocab) || !json_is_array(merges) || (added && !json_is_array(added)))
        return herd_err(HERD_E_FORMAT,
                        "tokenizer: %s: needs model.vocab (object), model.merges and added_tokens (lists)",
                        what);
    /* the vocabulary size: config.json's, or the largest id + 1 */
    json_int_t max_id = -1;
    const char *text;
    json_t *val;
    json_object_foreach((json_t *)vocab, text, val) {
        if (!json_is_integer(val))
            return herd_err(HERD_E_FORMAT, "tokenizer: %s: token '%.64s' has no integer id", what, text);
        if (json_integer_value(val) > max_id) max_id = json_integer_value(val);
    }
    for (size_t i = 0; i < json_array_size(added); i++) {
        json_int_t id = json_integer_value(json_object_get(json_array_get(added, i), "id"));
        if (id > max_id) max_id = id;
    }
    if (max_id < 0) return herd_err(HERD_E_FORMAT, "tokenizer: %s: the vocabulary is empty", what);
    /* ids are dense in real vocabularies; a few gaps are padded, an absurd id is an error */
    size_t n_given = json_object_size(vocab) + json_array_size(added);
    if (max_id >= ((json_int_t)1 << 24) || (n_vocab <= 0 && (size_t)max_id > 4 * n_given + 1024))
        return herd_err(HERD_E_FORMAT, "tokenizer: %s: token id %lld is too large for %zu tokens", what,
                        (long long)max_id, n_given);
    if (n_vocab > 0 && max_id >= n_vocab)
        return herd_err(HERD_E_FORMAT,
                        "tokenizer: %s: token id %lld is outside config.json's vocab_size %lld", what,
                        (long long)max_id, (long long)n_vocab);
    alloc_tokens(v, n_vocab > 0 ? n_vocab : max_id + 1);
    json_object_foreach((json_t *)vocab, text, val) {
        if ((rc = set_token(v, what, json_integer_value(val), text, strlen(text), TOKEN_TYPE_NORMAL, false)))
            return rc;
    }
    for (size_t i = 0; i < json_array_size(added); i++) {
        const json_t *a = json_array_get(added, i), *c = json_object_get(a, "content");
        if (!json_is_integer(json_object_get(a, "id")) || !json_is_string(c))
            return herd_err(HERD_E_FORMAT, "tokenizer: %s: added_tokens[%zu] needs an id and a content", what,
                            i);
        int type = json_is_true(json_object_get(a, "special")) ? TOKEN_TYPE_CONTROL : TOKEN_TYPE_USER_DEFINED;
        if ((rc = set_token(v, what, json_integer_value(json_object_get(a, "id")), json_string_value(c),
                            json_string_length(c), type, true)))
            return rc;
    }
    /* merges: "a b" strings, or [a, b] pairs (newer tokenizers) */
    char buf[1024];
    for (size_t i = 0; i < json_array_size(merges); i++) {
        const json_t *m = json_array_get(merges, i);
        if (json_is_string(m)) {
            add_merge(v, pool_add(v, json_string_value(m), json_string_length(m)), json_string_length(m));
        } else if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
                   json_is_string(json_array_get(m, 1))) {
            int n = snprintf(buf, sizeof buf, "%s %s", json_string_value(json_array_get(m, 0)),
                             json_string_value(json_array_get(m, 1)));
            if (n < 0 || (size_t)n >= sizeof buf)
                return herd_err(HERD_E_FORMAT, "tokenizer: %s: merge %zu is too long", what, i);
            add_merge(v, pool_add(v, buf, (size_t)n), (size_t)n);
        } else {
            return herd_err(HERD_E_FORMAT, "tokenizer: %s: merge %zu is neither \"a b\" nor [\"a\", \"b\"]",
                            what, i);
        }
    }
    /* a TemplateProcessing post-processor that starts with a special token prepends BOS */
    const json_t *pp = json_object_get(root, "post_processor");
    const json_t *procs = str_eq(pp, "type", "Sequence") ? json_object_get(pp, "processors") : NULL;
    for (size_t i = 0; i < (procs ? json_array_size(procs) : 1); i++) {
        const json_t *p = procs ? json_array_get(procs, i) : pp;
        if (!str_eq(p, "type", "TemplateProcessing")) continue;
        const json_t *first = json_array_get(json_object_get(p, "single"), 0);
        v->add_bos = json_object_get(first, "SpecialToken") != NULL;
    }
    return HERD_OK;
}

int hf_vocab_from_json(const char *json, size_t len, const char *what, int64_t n_vocab, hf_vocab **out) {
    *out = NULL;
    json_error_t jerr;
    json_t *root = json_loadb(json, len, 0, &jerr);
    if (!root)
        return herd_err(HERD_E_FORMAT, "tokenizer: %s is not valid JSON (line %d, column %d): %s", what,
                        jerr.line, jerr.column, jerr.text);
    hf_vocab *v = vocab_new(what);
    int rc = json_is_object(root) ? json_vocab(v, root, what, n_vocab)
                                  : herd_err(HERD_E_FORMAT, "tokenizer: %s is not a JSON object", what);
    json_decref(root);
    if (rc) {
        hf_vocab_free(v);
        return rc;
    }
    finalize(v);
    *out = v;
    return HERD_OK;
}

/* ---- tiktoken -------------------------------------------------------------------------------- */

/* GPT-2's byte-to-unicode: printable bytes stand for themselves, the other 68 for U+0100.. in order.
 * Writes the UTF-8 of byte b's character to out (1 or 2 bytes). */
static int byte_char(int b, char *out) {
    int cp;
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) {
        cp = b;
    } else {
        int n = 0;
        for (int x = 0; x < b; x++)
            n += !((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255));
        cp = 256 + n;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

static size_t byte_level(const uint8_t *s, size_t n, char *out) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += (size_t)byte_char(s[i], out + k);
    return k;
}

static int b64val(int c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Decodes standard base64 s[0..n) (padded) into out; returns the byte count or -1. */
static long b64decode(const char *s, size_t n, uint8_t *out) {
    if (n == 0 || n % 4) return -1;
    size_t k = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        for (int j = 0; j < 4; j++) {
            v[j] = s[i + j] == '=' && i + 4 == n && j >= 2 ? 0 : b64val((unsigned char)s[i + j]);
            if (v[j] < 0) return -1;
        }
        uint32_t w = (uint32_t)(v[0] << 18 | v[1] << 12 | v[2] << 6 | v[3]);
        out[k++] = (uint8_t)(w >> 16);
        if (s[i + 2] != '=') out[k++] = (uint8_t)(w >> 8);
        if (s[i + 3] != '=') out[k++] = (uint8_t)w;
        if (s[i + 2] == '=' && s[i + 3] != '=') return -1;
    }
    return (long)k;
}

/* Meta's special tokens (llama-models, models/llama3/tokenizer.py): 11 named, the rest reserved. */
static void special_name(int i, char *buf, size_t cap) {
    static const char *const named[] = {"<|begin_of_text|>",
                                        "<|end_of_text|>",
                                        "<|reserved_special_token_0|>",
                                        "<|reserved_special_token_1|>",
                                        "<|finetune_right_pad_id|>",
                                        "<|step_id|>",
                                        "<|start_header_id|>",
                                        "<|end_header_id|>",
                                        "<|eom_id|>",
                                        "<|eot_id|>",
                                        "<|python_tag|>"};
    if (i < 11)
        snprintf(buf, cap, "%s", named[i]);
    else
        snprintf(buf, cap, "<|reserved_special_token_%d|>", i - 11 + 2);
}

/* For each multi-byte token (in rank order), BPE its bytes using only lower-ranked tokens; when two
 * parts remain, they are the token's merge. raw holds every token's bytes, rank = index. */
static void recover_merges(hf_vocab *v, const char *raw, const uint64_t *off, const uint32_t *len,
                           int64_t n) {
    tok_strmap map;
    tok_strmap_init(&map, raw, n);
    for (int64_t i = 0; i < n; i++) tok_strmap_put(&map, off[i], len[i], (int32_t)i);
    uint32_t *cut = NULL; /* part boundaries within the token: part p = [cut[p], cut[p+1]) */
    size_t cut_cap = 0;
    char *buf = NULL;
    size_t buf_cap = 0;
    for (int64_t r = 0; r < n; r++) {
        uint32_t L = len[r];
        if (L < 2) continue;
        if (L + 1 > cut_cap) {
            cut_cap = (size_t)L + 1;
            cut = herd_xrealloc(cut, cut_cap * sizeof *cut);
        }
        const char *s = raw + off[r];
        uint32_t np = L;
        for (uint32_t p = 0; p <= L; p++) cut[p] = p;
        for (;;) {
            int32_t best = -1;
            uint32_t at = 0;
            for (uint32_t p = 0; p + 1 < np; p++) {
                int32_t k = tok_strmap_get(&map, s + cut[p], cut[p + 2] - cut[p]);
                if (k >= 0 && k < r && (best < 0 || k < best)) best = k, at = p;
            }
            if (best < 0) break;
            memmove(&cut[at + 1], &cut[at + 2], (np - at - 1) * sizeof *cut);
            np--;
        }
        if (np != 2) continue;
        if (4 * (size_t)L + 2 > buf_cap) {
            buf_cap = 4 * (size_t)L + 2;
            buf = herd_xrealloc(buf, buf_cap);
        }
        size_t k = byte_level((const uint8_t *)s, cut[1], buf);
        buf[k++] = ' ';
        k += byte_level((const uint8_t *)s + cut[1], L - cut[1], buf + k);
        add_merge(v, pool_add(v, buf, k), k);
    }
    free(cut);
    free(buf);
    tok_strmap_free(&map);
}

int hf_vocab_from_tiktoken(const char *text, size_t len, const char *what, int64_t n_vocab, hf_vocab **out) {
    *out = NULL;
    /* pass 1: count lines */
    int64_t n = 0;
    for (size_t i = 0; i < len; i++) n += text[i] == '\n';
    if (len && text[len - 1] != '\n') n++;
    if (n == 0 || n > INT32_MAX / 4) return herd_err(HERD_E_FORMAT, "tokenizer: %s has no tokens", what);
    char *raw = herd_xmalloc(len + 1); /* decoded bytes are shorter than their base64 */
    uint64_t *off = herd_xmalloc((size_t)n * sizeof *off);
    uint32_t *lens = herd_xmalloc((size_t)n * sizeof *lens);
    hf_vocab *v = vocab_new(what);
    int rc = HERD_OK;
    size_t at = 0, raw_len = 0;
    char *buf = herd_xmalloc(4 * len + 16);
    for (int64_t line = 0; line < n; line++) {
        size_t e = at;
        while (e < len && text[e] != '\n') e++;
        const char *sp = memchr(text + at, ' ', e - at);
        int64_t rank = sp && sp + 1 < text + e ? 0 : -1;
        for (const char *d = sp ? sp + 1 : text + e; d < text + e && rank >= 0; d++)
            rank = *d >= '0' && *d <= '9' && rank < INT32_MAX ? rank * 10 + (*d - '0') : -1;
        long k = sp ? b64decode(text + at, (size_t)(sp - (text + at)), (uint8_t *)raw + raw_len) : -1;
        if (!sp || k <= 0 || rank != line) {
            rc = herd_err(HERD_E_FORMAT,
                          "tokenizer: %s: line %lld is not \"base64 rank\" with rank %lld (tiktoken format)",
                          what, (long long)line + 1, (long long)line);
            goto done;
        }
        off[line] = raw_len;
        lens[line] = (uint32_t)k;
        raw_len += (size_t)k;
        at = e + 1;
    }
    int64_t total = n + 256;
    if (n_vocab > 0 && n_vocab < total) {
        rc = herd_err(HERD_E_FORMAT,
                      "tokenizer: %s: %lld tokens + 256 special ones exceed config.json's vocab_size %lld",
                      what, (long long)n, (long long)n_vocab);
        goto done;
    }
    alloc_tokens(v, n_vocab > 0 ? n_vocab : total);
    for (int64_t i = 0; i < n; i++) {
        size_t k = byte_level((const uint8_t *)raw + off[i], lens[i], buf);
        v->tok_off[i] = pool_add(v, buf, k);
        v->tok_len[i] = (uint32_t)k;
        v->types[i] = TOKEN_TYPE_NORMAL;
    }
    for (int i = 0; i < 256; i++) {
        special_name(i, buf, 64);
        v->tok_off[n + i] = pool_add(v, buf, strlen(buf));
        v->tok_len[n + i] = (uint32_t)strlen(buf);
        v->types[n + i] = TOKEN_TYPE_CONTROL;
    }
    /* Meta's tokenizer: BOS = <|begin_of_text|>, EOS = <|end_of_text|>, BOS prepended */
    v->bos = n;
    v->eos = n + 1;
    v->add_bos = 1;
    recover_merges(v, raw, off, lens, n);
done:
    free(buf);
    free(raw);
    free(off);
    free(lens);
    if (rc) {
        hf_vocab_free(v);
        return rc;
    }
    finalize(v);
    *out = v;
    return HERD_OK;
}

/* ---- a directory ----------------------------------------------------------------------------- */

static bool file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* json of a small optional file, or NULL (absent). *rc set on a read or parse error. */
static json_t *load_json(const char *path, int *rc) {
    *rc = HERD_OK;
    if (!file_exists(path)) return NULL;
    char *text;
    size_t len;
    if ((*rc = herd_file_read_all(path, SMALL_JSON_MAX_BYTES, &text, &len))) return NULL;
    json_error_t jerr;
    /* numbers as reals: tokenizer_config.json holds model_max_length = 1e30 as an integer */
    json_t *j = json_loadb(text, len, JSON_DECODE_INT_AS_REAL, &jerr);
    free(text);
    if (!j || !json_is_object(j)) {
        *rc = herd_err(HERD_E_FORMAT, "tokenizer: %s is not a valid JSON object (line %d): %s", path,
                       jerr.line, j ? "not an object" : jerr.text);
        json_decref(j);
        return NULL;
    }
    return j;
}

/* The id of tokenizer_config.json's "<typ>_token" (a string or {"content": ...}), or -1. */
static int64_t config_token(const hf_vocab *v, const json_t *tc, const char *key) {
    const json_t *e = json_object_get(tc, key);
    const char *s =
        json_is_object(e) ? json_string_value(json_object_get(e, "content")) : json_string_value(e);
    return s ? find_token(v, s) : -1;
}

/* Reads tokenizer_config.json, generation_config.json and the config hints into v. */
static int apply_configs(hf_vocab *v, const char *dir, const hf_vocab_hints *h) {
    char path[4096];
    int rc;
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    json_t *tc = load_json(path, &rc);
    if (rc) return rc;
    if (tc) {
        int64_t b = config_token(v, tc, "bos_token"), e = config_token(v, tc, "eos_token");
        if (b >= 0) v->bos = b;
        if (e >= 0) v->eos = e;
        const json_t *ab = json_object_get(tc, "add_bos_token");
        if (json_is_boolean(ab)) v->add_bos = json_is_true(ab);
        const json_t *t = json_object_get(tc, "chat_template");
        if (json_is_array(t)) { /* [{"name": "default", "template": ...}, ...] */
            const json_t *pick = NULL;
            for (size_t i = 0; i < json_array_size(t); i++)
                if (str_eq(json_array_get(t, i), "name", "default") || !pick) pick = json_array_get(t, i);
            t = json_object_get(pick, "template");
        }
        if (json_is_string(t)) {
            v->tmpl_off = pool_add(v, json_string_value(t), json_string_length(t));
            v->tmpl_len = json_string_length(t);
            v->has_tmpl = true;
        }
        json_decref(tc);
    }
    if (v->bos < 0 && h && h->bos_id >= 0 && h->bos_id < v->n_tokens) v->bos = h->bos_id;
    if (v->eos < 0 && h && h->eos_id >= 0 && h->eos_id < v->n_tokens) v->eos = h->eos_id;
    if (v->bos < 0 || v->eos < 0) {
        snprintf(path, sizeof path, "%s/generation_config.json", dir);
        json_t *gc = load_json(path, &rc);
        if (rc) return rc;
        const json_t *b = json_object_get(gc, "bos_token_id"), *e = json_object_get(gc, "eos_token_id");
        if (json_is_array(e)) e = json_array_get(e, 0);
        double bv = json_number_value(b), ev = json_number_value(e);
        if (v->bos < 0 && bv >= 0 && bv < (double)v->n_tokens && bv == (double)(int64_t)bv)
            v->bos = (int64_t)bv;
        if (v->eos < 0 && ev >= 0 && ev < (double)v->n_tokens && ev == (double)(int64_t)ev)
            v->eos = (int64_t)ev;
        json_decref(gc);
    }
    return HERD_OK;
}

int hf_vocab_load(const char *dir, const hf_vocab_hints *h, hf_vocab **out) {
    *out = NULL;
    char path[4096];
    int64_t n_vocab = h ? h->n_vocab : 0;
    bool tiktoken = false;
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (!file_exists(path)) {
        snprintf(path, sizeof path, "%s/original/tokenizer.model", dir);
        if (!file_exists(path))
            return herd_err(HERD_E_IO,
                            "tokenizer: %s has neither tokenizer.json nor original/tokenizer.model", dir);
        tiktoken = true;
    }
    char *text;
    size_t len;
    int rc = herd_file_read_all(path, TOKENIZER_MAX_BYTES, &text, &len);
    if (rc) return rc;
    hf_vocab *v;
    rc = tiktoken ? hf_vocab_from_tiktoken(text, len, path, n_vocab, &v)
                  : hf_vocab_from_json(text, len, path, n_vocab, &v);
    free(text);
    if (rc) return rc;
    /* the configs change special ids and the template: rebuild the metadata around them */
    gguf_file_clear(&v->meta);
    if ((rc = apply_configs(v, dir, h))) {
        hf_vocab_free(v);
        return rc;
    }
    finalize(v);
    *out = v;
    return HERD_OK;
}
