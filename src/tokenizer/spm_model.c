/* The SentencePiece .model file: a protobuf ModelProto (sentencepiece_model.proto), read with a small
 * bounds-checked wire-format reader (no protobuf library).
 *
 * Fields read (others are skipped by wire type):
 *   ModelProto      1 pieces (repeated SentencePiece), 2 trainer_spec, 3 normalizer_spec
 *   SentencePiece   1 piece (string), 2 score (float), 3 type (enum, default NORMAL)
 *   TrainerSpec     3 model_type (1 UNIGRAM; others refused), 24 treat_whitespace_as_suffix (refused),
 *                   35 byte_fallback
 *   NormalizerSpec  1 name, 2 precompiled_charsmap, 3 add_dummy_prefix, 4 remove_extra_whitespaces,
 *                   5 escape_whitespaces (all three default true), 6 normalization_rule_tsv (refused
 *                   without a charsmap: it is compiled into one by spm_train)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/log.h"
#include "unigram.h"

typedef struct {
    const uint8_t *p, *end;
    const char *what;
} pb;

/* One field: its number, wire type and value (varint / fixed32 in v, length-delimited in d[0..dn)). */
typedef struct {
    uint32_t num, wire;
    uint64_t v;
    const uint8_t *d;
    uint64_t dn;
} pb_field;

static int pb_varint(pb *r, uint64_t *out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) return -1;
        uint8_t b = *r->p++;
        v |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

/* 1: a field read; 0: end of message; negative: malformed (error recorded). */
static int pb_next(pb *r, const char *msg, pb_field *f) {
    if (r->p >= r->end) return 0;
    uint64_t key;
    if (pb_varint(r, &key) || key >> 32 || (key >> 3) == 0)
        return herd_err(HERD_E_FORMAT, "tokenizer: %s: corrupt protobuf (bad field key in %s)", r->what, msg);
    f->num = (uint32_t)(key >> 3);
    f->wire = (uint32_t)(key & 7);
    f->d = NULL;
    f->dn = 0;
    switch (f->wire) {
    case 0:
        if (pb_varint(r, &f->v)) break;
        return 1;
    case 1:
        if (r->end - r->p < 8) break;
        r->p += 8;
        return 1;
    case 2: {
        uint64_t n;
        if (pb_varint(r, &n) || n > (uint64_t)(r->end - r->p)) break;
        f->d = r->p;
        f->dn = n;
        r->p += n;
        return 1;
    }
    case 5:
        if (r->end - r->p < 4) break;
        f->v = (uint64_t)r->p[0] | (uint64_t)r->p[1] << 8 | (uint64_t)r->p[2] << 16 | (uint64_t)r->p[3] << 24;
        r->p += 4;
        return 1;
    default:
        return herd_err(HERD_E_FORMAT, "tokenizer: %s: corrupt protobuf (wire type %u of field %u in %s)", r->what,
                        f->wire, f->num, msg);
    }
    return herd_err(HERD_E_FORMAT, "tokenizer: %s: corrupt protobuf (field %u of %s is truncated)", r->what, f->num,
                    msg);
}

static int want_wire(const pb *r, const pb_field *f, uint32_t wire, const char *name) {
    if (f->wire == wire) return 0;
    return herd_err(HERD_E_FORMAT, "tokenizer: %s: %s has wire type %u (%u expected)", r->what, name, f->wire, wire);
}

static int read_piece(const pb *outer, const pb_field *f, unigram_spec *s) {
    pb r = {f->d, f->d + f->dn, outer->what};
    pb_field g;
    const uint8_t *text = NULL;
    uint64_t len = 0;
    float score = 0.0f;
    int type = UNI_NORMAL, rc;
    bool have_text = false;
    while ((rc = pb_next(&r, "SentencePiece", &g)) > 0) {
        if (g.num == 1) {
            if ((rc = want_wire(&r, &g, 2, "SentencePiece.piece"))) return rc;
            text = g.d;
            len = g.dn;
            have_text = true;
        } else if (g.num == 2) {
            if ((rc = want_wire(&r, &g, 5, "SentencePiece.score"))) return rc;
            uint32_t u = (uint32_t)g.v;
            memcpy(&score, &u, 4);
        } else if (g.num == 3) {
            if ((rc = want_wire(&r, &g, 0, "SentencePiece.type"))) return rc;
            if (g.v < UNI_NORMAL || g.v > UNI_BYTE)
                return herd_err(HERD_E_FORMAT, "tokenizer: %s: piece %d has type %llu (1..6 expected)", r.what,
                                s->n_pieces, (unsigned long long)g.v);
            type = (int)g.v;
        }
    }
    if (rc < 0) return rc;
    if (!have_text) return herd_err(HERD_E_FORMAT, "tokenizer: %s: piece %d has no text", r.what, s->n_pieces);
    if (memchr(text, 0, len)) return herd_err(HERD_E_FORMAT, "tokenizer: %s: piece %d holds a NUL byte", r.what, s->n_pieces);
    unigram_spec_add(s, (const char *)text, len, score, type);
    return 0;
}

static int read_trainer(const pb *outer, const pb_field *f, unigram_spec *s) {
    pb r = {f->d, f->d + f->dn, outer->what};
    pb_field g;
    int rc;
    while ((rc = pb_next(&r, "TrainerSpec", &g)) > 0) {
        if (g.wire != 0) continue;
        if (g.num == 3 && g.v != 1) {
            static const char *const kinds[] = {"?", "unigram", "bpe", "word", "char"};
            return herd_err(HERD_E_UNSUPPORTED, "tokenizer: %s: model_type %s: herd reads unigram SentencePiece models here",
                            r.what, g.v <= 4 ? kinds[g.v] : "unknown");
        }
        if (g.num == 24 && g.v)
            return herd_err(HERD_E_UNSUPPORTED, "tokenizer: %s: treat_whitespace_as_suffix is not supported", r.what);
        if (g.num == 35) s->byte_fallback = g.v != 0;
    }
    return rc;
}

static int read_normalizer(const pb *outer, const pb_field *f, unigram_spec *s) {
    pb r = {f->d, f->d + f->dn, outer->what};
    pb_field g;
    int rc;
    bool has_tsv = false;
    while ((rc = pb_next(&r, "NormalizerSpec", &g)) > 0) {
        if (g.num == 2 && g.wire == 2) {
            free(s->charsmap);
            s->charsmap = herd_xmalloc(g.dn ? g.dn : 1);
            memcpy(s->charsmap, g.d, g.dn);
            s->charsmap_len = g.dn;
        } else if (g.num == 6 && g.wire == 2 && g.dn) {
            has_tsv = true;
        } else if (g.wire == 0 && g.num >= 3 && g.num <= 5) {
            bool v = g.v != 0;
            if (g.num == 3) s->add_dummy_prefix = v;
            if (g.num == 4) s->remove_extra_whitespaces = v;
            if (g.num == 5) s->escape_whitespaces = v;
        }
    }
    if (rc < 0) return rc;
    if (has_tsv && !s->charsmap_len)
        return herd_err(HERD_E_UNSUPPORTED, "tokenizer: %s: a normalization_rule_tsv without a precompiled_charsmap is not supported",
                        r.what);
    return 0;
}

int unigram_load_spm(const uint8_t *buf, size_t n, const char *what, unigram_model **out) {
    *out = NULL;
    unigram_spec s;
    unigram_spec_init(&s);
    pb r = {buf, buf + n, what};
    pb_field f;
    int rc;
    while ((rc = pb_next(&r, "ModelProto", &f)) > 0) {
        if (f.num >= 1 && f.num <= 3 && (rc = want_wire(&r, &f, 2, "a ModelProto field"))) break;
        if (f.num == 1) rc = read_piece(&r, &f, &s);
        else if (f.num == 2) rc = read_trainer(&r, &f, &s);
        else if (f.num == 3) rc = read_normalizer(&r, &f, &s);
        if (rc) break;
    }
    if (rc < 0) {
        unigram_spec_clear(&s);
        return rc;
    }
    if (s.n_pieces == 0) {
        unigram_spec_clear(&s);
        return herd_err(HERD_E_FORMAT, "tokenizer: %s: not a SentencePiece model (no pieces)", what);
    }
    return unigram_build(&s, what, out);
}
