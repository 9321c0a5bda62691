/* UTF-8 units and code point classes; see unicode.h. */
#include "unicode.h"

#include <pthread.h>

/* Classes of the Basic Multilingual Plane, expanded once from the range table so the common case
 * is one load; planes 1-16 use a binary search over the (few hundred) ranges. */
static uint8_t bmp_class[0x10000];
static pthread_once_t bmp_once = PTHREAD_ONCE_INIT;

static void bmp_init(void) {
    for (size_t i = 0; i < uclass_n_ranges; i++) {
        const uclass_range *r = &uclass_ranges[i];
        if (r->first > 0xFFFF) break;
        uint32_t last = r->last > 0xFFFF ? 0xFFFF : r->last;
        for (uint32_t c = r->first; c <= last; c++) bmp_class[c] = r->cls;
    }
}

int uclass_of(uint32_t cp) {
    if (cp < 0x10000) {
        pthread_once(&bmp_once, bmp_init);
        return bmp_class[cp];
    }
    size_t lo = 0, hi = uclass_n_ranges; /* search [lo, hi) for the range holding cp */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (uclass_ranges[mid].last < cp)
            lo = mid + 1;
        else if (uclass_ranges[mid].first > cp)
            hi = mid;
        else
            return uclass_ranges[mid].cls;
    }
    return UCLASS_OTHER;
}

size_t utf8_unit(const uint8_t *s, size_t n, uint32_t *cp) {
    uint8_t b = s[0];
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    size_t len;
    uint32_t c, min;
    if (b >= 0xC2 && b <= 0xDF) {
        len = 2, c = b & 0x1F, min = 0x80;
    } else if (b >= 0xE0 && b <= 0xEF) {
        len = 3, c = b & 0x0F, min = 0x800;
    } else if (b >= 0xF0 && b <= 0xF4) {
        len = 4, c = b & 0x07, min = 0x10000;
    } else {
        *cp = UNIT_INVALID; /* continuation byte, C0/C1 (always overlong) or F5..FF */
        return 1;
    }
    if (len > n) {
        *cp = UNIT_INVALID;
        return 1;
    }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *cp = UNIT_INVALID;
            return 1;
        }
        c = (c << 6) | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF) {
        *cp = UNIT_INVALID;
        return 1;
    }
    *cp = c;
    return len;
}

size_t utf8_put(uint32_t cp, uint8_t *out) {
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | (cp >> 6));
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | (cp >> 12));
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | (cp >> 18));
    out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}
