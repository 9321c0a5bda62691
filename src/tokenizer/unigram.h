/* SentencePiece unigram tokenizer (mDeBERTa-v3 / Prompt Guard), exactly as sentencepiece encodes.
 *
 * Pipeline of unigram_encode (unigram.c), sentencepiece's normalizer.cc + unigram_model.cc:
 *   text --normalize--> pieces of the precompiled charsmap (nmt_nfkc & co. compiled into a
 *        darts-clone trie by spm_train: longest match wins, else one UTF-8 char, a bad byte -> U+FFFD),
 *        user-defined pieces passed through unnormalized, leading/trailing/repeated spaces removed
 *        (remove_extra_whitespaces), "▁" prepended (add_dummy_prefix), ' ' -> "▁" (escape_whitespaces)
 *   --Viterbi--> the best-scoring segmentation over NORMAL / USER_DEFINED pieces (float sums, first
 *        candidate kept on ties, one char of score min - 10 as unknown where no piece covers it)
 *   --> ids; an unknown piece becomes its <0xXX> byte pieces when byte fallback is on, else unk_id.
 * Two loaders fill the same model: the .model protobuf (spm_model.c) and tokenizer.json of Hugging
 * Face's Unigram model (unigram_json.c). Refused, with one line: BPE/WORD/CHAR models,
 * treat_whitespace_as_suffix, split_by_punct (a Punctuation pre-tokenizer), lowercasing, and
 * normalizers other than a precompiled charsmap (or none).
 * A model is read-only after loading: any number of threads may encode with it at once.
 */
#ifndef HERD_TOKENIZER_UNIGRAM_H
#define HERD_TOKENIZER_UNIGRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* sentencepiece's ModelProto.SentencePiece.Type */
enum { UNI_NORMAL = 1, UNI_UNKNOWN = 2, UNI_CONTROL = 3, UNI_USER_DEFINED = 4, UNI_UNUSED = 5, UNI_BYTE = 6 };

/* What a loader collects; unigram_build takes it over. */
typedef struct {
    char **piece; /* n_pieces owned strings */
    float *score;
    uint8_t *type; /* UNI_* */
    int32_t n_pieces, cap;
    bool byte_fallback, add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces;
    uint8_t *charsmap; /* precompiled_charsmap bytes (owned), or NULL: identity normalization */
    size_t charsmap_len;
} unigram_spec;

void unigram_spec_init(unigram_spec *s);
void unigram_spec_add(unigram_spec *s, const char *piece, size_t len, float score, int type);
void unigram_spec_clear(unigram_spec *s);

typedef struct unigram_model unigram_model;

/* Builds the model from a spec (cleared on return, success or not). `what` names the source file.
 * HERD_E_FORMAT for an inconsistent spec (no unknown piece, a corrupt charsmap, missing byte pieces). */
int unigram_build(unigram_spec *s, const char *what, unigram_model **out);
/* The .model protobuf buf[0..n) (spm_model.c). Errors name `what` and the field. */
int unigram_load_spm(const uint8_t *buf, size_t n, const char *what, unigram_model **out);
/* tokenizer.json text (unigram_json.c). */
int unigram_load_json(const char *json, size_t len, const char *what, unigram_model **out);
/* DIR/tokenizer.json if present, else DIR/spm.model, else DIR/tokenizer.model. */
int unigram_load_dir(const char *dir, unigram_model **out);
void unigram_free(unigram_model *m);

int32_t unigram_n_pieces(const unigram_model *m);
int32_t unigram_find(const unigram_model *m, const char *piece); /* exact piece -> id, or -1 */
const char *unigram_piece(const unigram_model *m, int32_t id);
int32_t unigram_unk(const unigram_model *m);

/* Normalized text (the string the Viterbi pass sees). OUT: *out (malloc'd, NUL-terminated), *out_len. */
int unigram_normalize(const unigram_model *m, const char *text, size_t len, char **out, size_t *out_len);
/* Ids of text[0..len), no [CLS]/[SEP]. At most max_ids are returned when max_ids >= 0 (the rest is
 * cut, as truncation does). OUT: *ids (malloc'd, caller frees), *n_ids. */
int unigram_encode(const unigram_model *m, const char *text, size_t len, int64_t max_ids, int32_t **ids,
                   int64_t *n_ids);

#endif
