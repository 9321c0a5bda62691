/* Constrained decoding, part 2: JSON Schema -> grammar (grammar.h).
 *
 * The language generated is a subset of the documents the schema accepts, chosen so that every
 * document of the language validates and a sampler cannot wander forever:
 *  - objects list their declared properties in the schema's order (optional ones may be left out),
 *    then, unless additionalProperties is false, extra keys; an extra key never equals a declared
 *    one (it may not start with an escape, nor with a character that only a declared key starts
 *    with at that point unless it follows that key's spelling);
 *  - whitespace between tokens: nothing, one space, or a newline and at most 16 spaces/tabs;
 *    none before the document or after it;
 *  - numbers: at most 16 integer digits, 16 fraction digits and 3 exponent digits;
 *  - oneOf is compiled as anyOf (exclusivity is not enforced: keep oneOf branches disjoint).
 * Supported: type (and type arrays), properties, required, additionalProperties (bool or schema),
 * items, enum, const, anyOf, oneOf, allOf with one member, minItems/maxItems, minLength/maxLength,
 * $ref to "#", "#/$defs/..." or "#/definitions/...", $defs/definitions, boolean schemas.
 * Ignored (annotations): title, description, default, examples, $schema, $id, $comment, deprecated,
 * readOnly, writeOnly. Anything else: HERD_E_UNSUPPORTED naming the keyword.
 */
#ifndef HERD_CONSTRAIN_SCHEMA_H
#define HERD_CONSTRAIN_SCHEMA_H

#include "grammar.h"

/* schema_json NULL: any JSON object. Fills g (rule 0 = the document). */
int schema_compile(const char *schema_json, grammar *g);

#endif
