/* Tokenizer-internal Unicode support: UTF-8 units and the code point classes of the Llama 3
 * pre-tokenizer (see LLAMA31.md, Tokenizer).
 *
 * A "unit" is what the pre-tokenizer steps over: one well-formed UTF-8 sequence (1-4 bytes), or a
 * single byte that does not start one. herd decodes like llama.cpp (surrogates D800..DFFF encoded
 * in three bytes are accepted, as there) except that overlong forms and values above U+10FFFF are
 * invalid here: llama.cpp turns those into different bytes (or throws), herd keeps every input byte
 * so that detokenize(tokenize(x)) == x. An invalid byte is one unit of class OTHER, the class of
 * U+FFFD that llama.cpp substitutes, so pieces split exactly where llama.cpp splits them. */
#ifndef HERD_TOKENIZER_UNICODE_H
#define HERD_TOKENIZER_UNICODE_H

#include <stddef.h>
#include <stdint.h>

/* \p{L} = LETTER, \p{N} = NUMBER, \s = SPACE (White_Space, 25 code points), everything else OTHER */
enum { UCLASS_OTHER = 0, UCLASS_LETTER = 1, UCLASS_NUMBER = 2, UCLASS_SPACE = 3 };

typedef struct {
    uint32_t first, last; /* inclusive */
    uint8_t cls;          /* UCLASS_* */
} uclass_range;

/* Generated table (unicode_tables.c, by tools/gen_unicode.mjs): sorted, disjoint, OTHER omitted. */
extern const uclass_range uclass_ranges[];
extern const size_t uclass_n_ranges;

/* The cp value reported for an invalid byte (never a scalar value, so never a letter or '\''). */
#define UNIT_INVALID 0xFFFFFFFFu

/* Class of code point cp (any uint32; values above U+10FFFF and UNIT_INVALID are OTHER). */
int uclass_of(uint32_t cp);

/* Decodes the unit at s[0..n), n >= 1. Returns its length in bytes (1..4) and sets *cp
 * (UNIT_INVALID for an invalid byte, which is a unit of length 1). */
size_t utf8_unit(const uint8_t *s, size_t n, uint32_t *cp);

/* Writes the UTF-8 form of a scalar value cp <= 0x10FFFF to out (4 bytes room); returns its length. */
size_t utf8_put(uint32_t cp, uint8_t *out);

#endif
