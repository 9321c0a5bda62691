/* JSON text exactly as the chat template's `tojson` filter writes it.
 *
 * The reference renderer of chat templates is @huggingface/jinja (what transformers.js and the
 * tests use), whose tojson follows JavaScript: JSON.stringify for strings (no \/ escape, lowercase
 * \u00XX for controls, non-ASCII kept), JavaScript number formatting (2.0 -> 2, 1e21 -> 1e+21,
 * 1e-7 -> 1e-7, shortest round trip), object keys in JavaScript's order (integer-like keys first,
 * ascending, then the rest in insertion order), separators ", " and ": " without indent, and
 * "," + newline + indentation with an indent. */
#ifndef HERD_CHAT_JSONFMT_H
#define HERD_CHAT_JSONFMT_H

#include <jansson.h>

#include "../base/strbuf.h"

/* Appends v; indent 0 = one line. */
void chat_tojson(strbuf *out, const json_t *v, int indent);
/* A JSON number as JavaScript's Number.prototype.toString writes it. */
void chat_js_number(strbuf *out, double x);
/* The keys of an object in JavaScript's enumeration order. OUT: *keys (malloc'd array of borrowed
 * strings; caller frees the array), returns the count. */
size_t chat_js_keys(const json_t *obj, const char ***keys);

#endif
