#include "jsonfmt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/log.h"

void chat_js_number(strbuf *out, double x) {
    char buf[64];
    if (x == 0) { /* -0 prints as 0 */
        strbuf_puts(out, "0");
        return;
    }
    if (!isfinite(x)) { /* not JSON; JavaScript's JSON.stringify writes null */
        strbuf_puts(out, "null");
        return;
    }
    /* the shortest digit string that reads back as x */
    char e[40];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(e, sizeof e, "%.*e", prec - 1, x);
        if (strtod(e, NULL) == x) break;
    }
    /* e = "[-]d.ddde[+-]XX": collect the digits and the exponent */
    const char *p = e;
    bool neg = *p == '-';
    if (neg) p++;
    char digits[24];
    int k = 0;
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9') digits[k++] = *p;
    digits[k] = 0;
    while (k > 1 && digits[k - 1] == '0') digits[--k] = 0; /* trailing zeros are not significant */
    int exp10 = atoi(p + 1), n = exp10 + 1; /* the decimal point sits after n digits */
    int o = 0;
    if (neg) buf[o++] = '-';
    if (k <= n && n <= 21) { /* an integer: digits then zeros */
        o += snprintf(buf + o, sizeof buf - (size_t)o, "%s", digits);
        for (int i = k; i < n; i++) buf[o++] = '0';
    } else if (0 < n && n <= 21) {
        o += snprintf(buf + o, sizeof buf - (size_t)o, "%.*s.%s", n, digits, digits + n);
    } else if (-6 < n && n <= 0) {
        o += snprintf(buf + o, sizeof buf - (size_t)o, "0.");
        for (int i = 0; i < -n; i++) buf[o++] = '0';
        o += snprintf(buf + o, sizeof buf - (size_t)o, "%s", digits);
    } else {
        if (k == 1) o += snprintf(buf + o, sizeof buf - (size_t)o, "%c", digits[0]);
        else o += snprintf(buf + o, sizeof buf - (size_t)o, "%c.%s", digits[0], digits + 1);
        o += snprintf(buf + o, sizeof buf - (size_t)o, "e%c%d", n - 1 >= 0 ? '+' : '-', abs(n - 1));
    }
    buf[o] = 0;
    strbuf_puts(out, buf);
}

/* JSON.stringify of a string: escapes " \ and controls (\b \f \n \r \t, else \u00xx). */
static void js_string(strbuf *out, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    strbuf_put(out, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default: break;
        }
        if (esc) strbuf_puts(out, esc);
        else if (c < 0x20) {
            char u[7] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], 0};
            strbuf_puts(out, u);
        } else strbuf_put(out, (const char *)&c, 1);
    }
    strbuf_put(out, "\"", 1);
}

/* An "array index" key in JavaScript: a canonical decimal integer below 2^32 - 1. */
static bool index_key(const char *k, unsigned long long *v) {
    if (!*k || (k[0] == '0' && k[1]) || strlen(k) > 10) return false;
    unsigned long long x = 0;
    for (const char *p = k; *p; p++) {
        if (*p < '0' || *p > '9') return false;
        x = x * 10 + (unsigned)(*p - '0');
    }
    if (x >= 4294967295ull) return false;
    *v = x;
    return true;
}

static int cmp_index(const void *a, const void *b) {
    unsigned long long x = 0, y = 0;
    index_key(*(const char *const *)a, &x);
    index_key(*(const char *const *)b, &y);
    return (x > y) - (x < y);
}

size_t chat_js_keys(const json_t *obj, const char ***keys) {
    size_t n = json_object_size(obj), ni = 0, k = 0;
    const char **all = herd_xmalloc((n ? n : 1) * sizeof *all), *key;
    json_t *v;
    unsigned long long dummy;
    /* jansson keeps insertion order; integer-like keys go first, ascending */
    json_object_foreach((json_t *)obj, key, v) if (index_key(key, &dummy)) all[ni++] = key;
    qsort(all, ni, sizeof *all, cmp_index);
    k = ni;
    json_object_foreach((json_t *)obj, key, v) if (!index_key(key, &dummy)) all[k++] = key;
    *keys = all;
    return k;
}

static void pad(strbuf *out, int indent, int depth) {
    strbuf_put(out, "\n", 1);
    for (int i = 0; i < indent * depth; i++) strbuf_put(out, " ", 1);
}

static void dump(strbuf *out, const json_t *v, int indent, int depth) {
    switch (json_typeof(v)) {
    case JSON_NULL: strbuf_puts(out, "null"); break;
    case JSON_TRUE: strbuf_puts(out, "true"); break;
    case JSON_FALSE: strbuf_puts(out, "false"); break;
    case JSON_INTEGER: chat_js_number(out, (double)json_integer_value(v)); break;
    case JSON_REAL: chat_js_number(out, json_real_value(v)); break;
    case JSON_STRING: js_string(out, json_string_value(v), json_string_length(v)); break;
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        strbuf_put(out, "[", 1);
        for (size_t i = 0; i < n; i++) {
            if (i) strbuf_puts(out, indent ? "," : ", ");
            if (indent) pad(out, indent, depth + 1);
            dump(out, json_array_get(v, i), indent, depth + 1);
        }
        if (indent && n) pad(out, indent, depth);
        strbuf_put(out, "]", 1);
        break;
    }
    case JSON_OBJECT: {
        const char **keys;
        size_t n = chat_js_keys(v, &keys);
        strbuf_put(out, "{", 1);
        for (size_t i = 0; i < n; i++) {
            if (i) strbuf_puts(out, indent ? "," : ", ");
            if (indent) pad(out, indent, depth + 1);
            js_string(out, keys[i], strlen(keys[i]));
            strbuf_puts(out, ": ");
            dump(out, json_object_get(v, keys[i]), indent, depth + 1);
        }
        if (indent && n) pad(out, indent, depth);
        strbuf_put(out, "}", 1);
        free(keys);
        break;
    }
    }
}

void chat_tojson(strbuf *out, const json_t *v, int indent) {
    dump(out, v, indent, 0);
}
