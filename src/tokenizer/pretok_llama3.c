/* The Llama 3 pre-tokenizer, written out by hand (see LLAMA31.md, Tokenizer):
 *
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
 *   \s*[\r\n]+|\s+(?!\S)|\s+
 *
 * Alternatives are tried in order at each position and the first that matches wins (leftmost,
 * greedy, as PCRE and llama.cpp do). Classes come from unicode.h: L, N, \s (White_Space), other.
 * Units are code points, or single invalid bytes (class other); see unicode.h.
 *
 * Two details where llama.cpp (the reference) defines the behaviour:
 *  - the contraction letters are compared after simple lowercasing; only ASCII letters lowercase to
 *    s t r e v m l d (tools/gen_unicode.mjs checks this), so an ASCII fold is exact;
 *  - "\s+(?!\S)" at the very end of the text takes the whole run (there is no \S after it).
 */
#include <stdbool.h>

#include "tok_internal.h"
#include "unicode.h"

/* ASCII classes; bytes >= 0x80 go through utf8_unit and the Unicode table */
/* clang-format off */
static const uint8_t ascii_class[128] = {
    ['\t'] = UCLASS_SPACE, ['\n'] = UCLASS_SPACE, [0x0B] = UCLASS_SPACE, [0x0C] = UCLASS_SPACE,
    ['\r'] = UCLASS_SPACE, [' '] = UCLASS_SPACE,
    ['0'] = UCLASS_NUMBER, ['1'] = UCLASS_NUMBER, ['2'] = UCLASS_NUMBER, ['3'] = UCLASS_NUMBER,
    ['4'] = UCLASS_NUMBER, ['5'] = UCLASS_NUMBER, ['6'] = UCLASS_NUMBER, ['7'] = UCLASS_NUMBER,
    ['8'] = UCLASS_NUMBER, ['9'] = UCLASS_NUMBER,
    ['A'] = UCLASS_LETTER, ['B'] = UCLASS_LETTER, ['C'] = UCLASS_LETTER, ['D'] = UCLASS_LETTER,
    ['E'] = UCLASS_LETTER, ['F'] = UCLASS_LETTER, ['G'] = UCLASS_LETTER, ['H'] = UCLASS_LETTER,
    ['I'] = UCLASS_LETTER, ['J'] = UCLASS_LETTER, ['K'] = UCLASS_LETTER, ['L'] = UCLASS_LETTER,
    ['M'] = UCLASS_LETTER, ['N'] = UCLASS_LETTER, ['O'] = UCLASS_LETTER, ['P'] = UCLASS_LETTER,
    ['Q'] = UCLASS_LETTER, ['R'] = UCLASS_LETTER, ['S'] = UCLASS_LETTER, ['T'] = UCLASS_LETTER,
    ['U'] = UCLASS_LETTER, ['V'] = UCLASS_LETTER, ['W'] = UCLASS_LETTER, ['X'] = UCLASS_LETTER,
    ['Y'] = UCLASS_LETTER, ['Z'] = UCLASS_LETTER,
    ['a'] = UCLASS_LETTER, ['b'] = UCLASS_LETTER, ['c'] = UCLASS_LETTER, ['d'] = UCLASS_LETTER,
    ['e'] = UCLASS_LETTER, ['f'] = UCLASS_LETTER, ['g'] = UCLASS_LETTER, ['h'] = UCLASS_LETTER,
    ['i'] = UCLASS_LETTER, ['j'] = UCLASS_LETTER, ['k'] = UCLASS_LETTER, ['l'] = UCLASS_LETTER,
    ['m'] = UCLASS_LETTER, ['n'] = UCLASS_LETTER, ['o'] = UCLASS_LETTER, ['p'] = UCLASS_LETTER,
    ['q'] = UCLASS_LETTER, ['r'] = UCLASS_LETTER, ['s'] = UCLASS_LETTER, ['t'] = UCLASS_LETTER,
    ['u'] = UCLASS_LETTER, ['v'] = UCLASS_LETTER, ['w'] = UCLASS_LETTER, ['x'] = UCLASS_LETTER,
    ['y'] = UCLASS_LETTER, ['z'] = UCLASS_LETTER,
};
/* clang-format on */

/* One unit: code point (or UNIT_INVALID), byte length, class. A position at the end of the
 * fragment reads as { len 0, class NONE }, which no alternative accepts. */
enum { CLASS_NONE = 4 };
typedef struct {
    uint32_t cp;
    uint32_t len;
    int cls;
} unit;

static unit unit_at(const uint8_t *s, size_t pos, size_t end) {
    unit u;
    if (pos >= end) {
        u.cp = UNIT_INVALID, u.len = 0, u.cls = CLASS_NONE;
        return u;
    }
    uint8_t b = s[pos];
    if (b < 0x80) {
        u.cp = b, u.len = 1, u.cls = ascii_class[b];
        return u;
    }
    u.len = (uint32_t)utf8_unit(s + pos, end - pos, &u.cp);
    u.cls = uclass_of(u.cp);
    return u;
}

static bool is_crlf(uint32_t cp) {
    return cp == '\r' || cp == '\n';
}

static uint32_t ascii_lower(uint32_t cp) {
    return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
}

size_t pretok_llama3_next(const uint8_t *s, size_t pos, size_t end) {
    unit u = unit_at(s, pos, end);

    /* (?i:'s|'t|'re|'ve|'m|'ll|'d) */
    if (u.cp == '\'') {
        unit n1 = unit_at(s, pos + 1, end);
        uint32_t c1 = ascii_lower(n1.cp);
        if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return pos + 1 + n1.len;
        if (n1.len) {
            unit n2 = unit_at(s, pos + 1 + n1.len, end);
            uint32_t c2 = ascii_lower(n2.cp);
            if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l'))
                return pos + 1 + n1.len + n2.len;
        }
    }

    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (!is_crlf(u.cp) && u.cls != UCLASS_NUMBER) {
        size_t p = pos + u.len;
        unit n = unit_at(s, p, end);
        if (u.cls == UCLASS_LETTER || n.cls == UCLASS_LETTER) {
            while (n.cls == UCLASS_LETTER) {
                p += n.len;
                n = unit_at(s, p, end);
            }
            return p;
        }
    }

    /* \p{N}{1,3} */
    if (u.cls == UCLASS_NUMBER) {
        size_t p = pos + u.len;
        for (int k = 1; k < 3; k++) {
            unit n = unit_at(s, p, end);
            if (n.cls != UCLASS_NUMBER) break;
            p += n.len;
        }
        return p;
    }

    /* ' ?[^\s\p{L}\p{N}]+[\r\n]*' */
    {
        size_t p = pos;
        unit first = u;
        if (u.cp == ' ') {
            p += u.len;
            first = unit_at(s, p, end);
        }
        if (first.cls == UCLASS_OTHER) {
            unit n = first;
            while (n.cls == UCLASS_OTHER) {
                p += n.len;
                n = unit_at(s, p, end);
            }
            while (is_crlf(n.cp)) {
                p += n.len;
                n = unit_at(s, p, end);
            }
            return p;
        }
    }

    /* whitespace: \s*[\r\n]+ | \s+(?!\S) | \s+ */
    if (u.cls == UCLASS_SPACE) {
        size_t p = pos, last_crlf_end = 0, prev = pos;
        unit n = u;
        while (n.cls == UCLASS_SPACE) {
            prev = p;
            p += n.len;
            if (is_crlf(n.cp)) last_crlf_end = p;
            n = unit_at(s, p, end);
        }
        if (last_crlf_end) return last_crlf_end; /* \s*[\r\n]+ (greedy \s*, backtracked) */
        if (n.len && prev > pos) return prev;    /* \s+(?!\S): leave the last space to the next piece */
        return p;                                /* \s+ (run of one, or run at the end) */
    }

    return pos + u.len; /* not reached: every unit matches one alternative */
}
