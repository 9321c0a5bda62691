/* tokenizer.json of a Hugging Face Unigram tokenizer (what transformers' DebertaV2Converter /
 * SpmConverter write from a .model file), mapped onto sentencepiece's settings:
 *   model        {"type":"Unigram","unk_id":N,"vocab":[[piece,score],...],"byte_fallback":bool}
 *   normalizer   Precompiled {precompiled_charsmap: base64}, alone or in a Sequence with Strip and
 *                Replace(" {2,}" -> " ") (these two are remove_extra_whitespaces), or null
 *   pre_tokenizer Metaspace (replacement "▁", add_prefix_space / prepend_scheme "always" -> the dummy
 *                prefix), alone or in a Sequence; a Punctuation split (split_by_punct) is refused
 *   added_tokens special ones are control pieces ([CLS], [SEP], ...)
 * Piece types the file does not carry are recovered: unk_id is UNKNOWN, <0xXX> with byte fallback is
 * BYTE, special added tokens are CONTROL, the rest NORMAL.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "../base/log.h"
#include "unigram.h"

static int b64_val(int c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Decodes standard base64 (padding optional) into a new buffer. -1 on a bad character. */
static int64_t b64_decode(const char *s, size_t n, uint8_t **out) {
    uint8_t *o = herd_xmalloc(n / 4 * 3 + 3);
    int64_t k = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '=') break;
        int v = b64_val((unsigned char)s[i]);
        if (v < 0) {
            free(o);
            return -1;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[k++] = (uint8_t)(acc >> bits);
        }
    }
    *out = o;
    return k;
}

static int read_normalizer(const json_t *n, const char *what, unigram_spec *s, int depth) {
    if (!n || json_is_null(n)) return 0;
    const char *type = json_string_value(json_object_get(n, "type"));
    if (!type) return herd_err(HERD_E_FORMAT, "tokenizer: %s: normalizer without a type", what);
    if (!strcmp(type, "Sequence") && depth == 0) {
        const json_t *list = json_object_get(n, "normalizers");
        size_t i;
        const json_t *e;
        if (!json_is_array(list)) return herd_err(HERD_E_FORMAT, "tokenizer: %s: normalizer Sequence without a list", what);
        json_array_foreach(list, i, e) {
            int rc = read_normalizer(e, what, s, 1);
            if (rc) return rc;
        }
        return 0;
    }
    if (!strcmp(type, "Precompiled")) {
        const char *b = json_string_value(json_object_get(n, "precompiled_charsmap"));
        if (!b) return 0; /* an empty charsmap: identity */
        uint8_t *raw;
        int64_t k = b64_decode(b, strlen(b), &raw);
        if (k < 0) return herd_err(HERD_E_FORMAT, "tokenizer: %s: precompiled_charsmap is not base64", what);
        free(s->charsmap);
        s->charsmap = raw;
        s->charsmap_len = (size_t)k;
        return 0;
    }
    if (!strcmp(type, "Strip")) return 0; /* leading/trailing spaces: remove_extra_whitespaces */
    if (!strcmp(type, "Replace")) {
        const json_t *pat = json_object_get(n, "pattern");
        const char *re = json_string_value(json_object_get(pat, "Regex"));
        const char *with = json_string_value(json_object_get(n, "content"));
        if (re && with && !strcmp(re, " {2,}") && !strcmp(with, " ")) {
            s->remove_extra_whitespaces = true;
            return 0;
        }
    }
    return herd_err(HERD_E_UNSUPPORTED, "tokenizer: %s: normalizer '%s' is not supported for a Unigram model", what, type);
}

static int read_pretok(const json_t *p, const char *what, unigram_spec *s, bool *seen, int depth) {
    if (!p || json_is_null(p)) return 0;
    const char *type = json_string_value(json_object_get(p, "type"));
    if (!type) return herd_err(HERD_E_FORMAT, "tokenizer: %s: pre_tokenizer without a type", what);
    if (!strcmp(type, "Sequence") && depth == 0) {
        const json_t *list = json_object_get(p, "pretokenizers");
        size_t i;
        const json_t *e;
        if (!json_is_array(list)) return herd_err(HERD_E_FORMAT, "tokenizer: %s: pre_tokenizer Sequence without a list", what);
        json_array_foreach(list, i, e) {
            int rc = read_pretok(e, what, s, seen, 1);
            if (rc) return rc;
        }
        return 0;
    }
    if (!strcmp(type, "Metaspace")) {
        const char *rep = json_string_value(json_object_get(p, "replacement"));
        if (rep && strcmp(rep, "\xE2\x96\x81"))
            return herd_err(HERD_E_UNSUPPORTED, "tokenizer: %s: Metaspace replacement '%s' is not U+2581", what, rep);
        const json_t *aps = json_object_get(p, "add_prefix_space");
        const char *scheme = json_string_value(json_object_get(p, "prepend_scheme"));
        if (scheme && strcmp(scheme, "always") && strcmp(scheme, "never"))
            return herd_err(HERD_E_UNSUPPORTED, "tokenizer: %s: Metaspace prepend_scheme '%s' is not supported", what, scheme);
        s->add_dummy_prefix = scheme ? !strcmp(scheme, "always") : (aps ? json_is_true(aps) : true);
        *seen = true;
        return 0;
    }
    return herd_err(HERD_E_UNSUPPORTED, "tokenizer: %s: pre_tokenizer '%s' is not supported for a Unigram model", what, type);
}

int unigram_load_json(const char *json, size_t len, const char *what, unigram_model **out) {
    *out = NULL;
    json_error_t jerr;
    json_t *root = json_loadb(json, len, 0, &jerr);
    if (!root) return herd_err(HERD_E_FORMAT, "tokenizer: %s: invalid JSON at line %d: %s", what, jerr.line, jerr.text);
    unigram_spec s;
    unigram_spec_init(&s);
    int rc = 0;
    const json_t *model = json_object_get(root, "model");
    const char *mtype = json_string_value(json_object_get(model, "type"));
    const json_t *vocab = json_object_get(model, "vocab");
    const json_t *unk = json_object_get(model, "unk_id");
    if (!mtype || strcmp(mtype, "Unigram")) {
        rc = herd_err(HERD_E_UNSUPPORTED, "tokenizer: %s: model.type is '%s', not Unigram", what, mtype ? mtype : "missing");
        goto done;
    }
    if (!json_is_array(vocab) || !json_array_size(vocab)) {
        rc = herd_err(HERD_E_FORMAT, "tokenizer: %s: model.vocab is not a non-empty array", what);
        goto done;
    }
    if (!json_is_integer(unk) || json_integer_value(unk) < 0 || (size_t)json_integer_value(unk) >= json_array_size(vocab)) {
        rc = herd_err(HERD_E_FORMAT, "tokenizer: %s: model.unk_id is missing or outside the vocabulary", what);
        goto done;
    }
    s.byte_fallback = json_is_true(json_object_get(model, "byte_fallback"));
    s.remove_extra_whitespaces = false;
    s.add_dummy_prefix = false;
    if ((rc = read_normalizer(json_object_get(root, "normalizer"), what, &s, 0))) goto done;
    bool meta = false;
    if ((rc = read_pretok(json_object_get(root, "pre_tokenizer"), what, &s, &meta, 0))) goto done;
    if (!meta) {
        rc = herd_err(HERD_E_UNSUPPORTED, "tokenizer: %s: a Unigram tokenizer without a Metaspace pre_tokenizer", what);
        goto done;
    }
    size_t i;
    const json_t *e;
    json_array_foreach(vocab, i, e) {
        const json_t *p = json_array_get(e, 0), *sc = json_array_get(e, 1);
        if (!json_is_array(e) || json_array_size(e) != 2 || !json_is_string(p) || !json_is_number(sc) ||
            memchr(json_string_value(p), 0, json_string_length(p))) {
            rc = herd_err(HERD_E_FORMAT, "tokenizer: %s: model.vocab[%zu] is not [piece, score]", what, i);
            goto done;
        }
        const char *t = json_string_value(p);
        size_t tl = json_string_length(p);
        int type = UNI_NORMAL;
        if ((json_int_t)i == json_integer_value(unk)) type = UNI_UNKNOWN;
        else if (s.byte_fallback && tl == 6 && !strncmp(t, "<0x", 3) && t[5] == '>') type = UNI_BYTE;
        unigram_spec_add(&s, t, tl, (float)json_number_value(sc), type);
    }
    const json_t *added = json_object_get(root, "added_tokens");
    json_array_foreach(added, i, e) {
        const json_t *id = json_object_get(e, "id");
        if (!json_is_integer(id) || !json_is_true(json_object_get(e, "special"))) continue;
        json_int_t k = json_integer_value(id);
        if (k >= 0 && k < s.n_pieces && s.type[k] == UNI_NORMAL) s.type[k] = UNI_CONTROL;
    }
    json_decref(root);
    return unigram_build(&s, what, out);
done:
    unigram_spec_clear(&s);
    json_decref(root);
    return rc;
}
