/* herd — the Llama 3.1 system in C. Public API.
 *
 * Everything the `herd` CLI does goes through this header. Objects are opaque handles with
 * _new/_free (or _load/_free) pairs. Functions that can fail on input return a status:
 * HERD_OK (0) or a negative HERD_E_* code, and herd_last_error() then holds one line saying
 * exactly what was wrong (the file, the tensor, the key, the numbers).
 *
 * Ownership: a herd_context borrows its herd_model (free the context first). Buffers returned
 * through `char **` / `int32_t **` OUT parameters are malloc'd and owned by the caller.
 */
#ifndef HERD_H
#define HERD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Everything declared in this header is libherd.so's exported API, and nothing else is: the library
 * is compiled with -fvisibility=hidden, and this pragma gives the declarations below default
 * visibility (so a function added here is exported without further marking). The list of exported
 * symbols is checked by tests/conformance/abi.sh against tests/data/abi/libherd.symbols; after
 * changing the API run `make abi-update` and bump VERSION (semantic versioning). */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

/* ---- version --------------------------------------------------------------------------------- */

/* The library's semantic version, "MAJOR.MINOR.PATCH" (the VERSION file; the soname is
 * libherd.so.MAJOR). Static storage, never NULL. */
const char *herd_version(void);
/* `git describe --always --dirty --tags` of the source tree it was built from ("8d8a447",
 * "v0.9.0-3-g8d8a447-dirty"), or "" when it was not built from a git checkout. Never NULL. */
const char *herd_version_git(void);

/* ---- status ---------------------------------------------------------------------------------- */

enum {
    HERD_OK = 0,
    HERD_E_IO = -1,          /* cannot open / read / write a file */
    HERD_E_FORMAT = -2,      /* malformed input: corrupt file, bad JSON, bad metadata */
    HERD_E_UNSUPPORTED = -3, /* well-formed but not supported (tensor type, architecture) */
    HERD_E_NOMEM = -4,       /* an input-sized allocation failed */
    HERD_E_ARG = -5,         /* invalid argument from the caller */
    HERD_E_RANGE = -6,       /* a limit was exceeded (context full, too many tokens) */
    /* -7: HERD_E_INTERRUPTED (training, below) */
};

/* The message of the most recent error on this thread (never NULL). */
const char *herd_last_error(void);
/* 0 quiet (default), 1 info, 2 debug; log lines go to stderr. */
void herd_set_verbosity(int level);
/* The CPU kernel set picked at start-up: "avx512", "avx2" or "scalar". */
const char *herd_cpu_backend(void);
/* The thread count used when none is given (n_threads = 0 below): the CPUs this process may use, from
 * its affinity mask and its cgroup CPU quota (cpu.max, v1 cpu.cfs_quota_us; rounded up), >= 1. Writes
 * why (e.g. "affinity mask 1 of 2 online CPUs, no cgroup CPU quota; in use: the CPUs other work leaves
 * free (HERD_DYNAMIC_THREADS=0: all)") into why[cap] when why is not NULL. Of any context's threads,
 * only as many run as other work leaves CPUs free, rechecked every 0.1 s, unless HERD_DYNAMIC_THREADS=0. */
int herd_default_threads(char *why, size_t cap);

/* ---- tensor types (numbering is GGUF's / ggml's) --------------------------------------------- */

typedef enum {
    HERD_TYPE_F32 = 0,
    HERD_TYPE_F16 = 1,
    HERD_TYPE_Q4_0 = 2,
    HERD_TYPE_Q4_1 = 3, /* legacy and i-quant types: src/kernels/legacy.h */
    HERD_TYPE_Q5_0 = 6,
    HERD_TYPE_Q5_1 = 7,
    HERD_TYPE_Q8_0 = 8,
    HERD_TYPE_Q8_1 = 9, /* activations only: the dot partner of q4_1 and q5_1 */
    HERD_TYPE_Q2_K = 10, /* K-quants: super-blocks of 256 (see src/kernels/kquants.h) */
    HERD_TYPE_Q3_K = 11,
    HERD_TYPE_Q4_K = 12,
    HERD_TYPE_Q5_K = 13,
    HERD_TYPE_Q6_K = 14,
    HERD_TYPE_Q8_K = 15, /* activations only: the K-quants' dot partner */
    HERD_TYPE_IQ2_XXS = 16, /* low-bit i-quants and ternary types (read only): src/kernels/iquants.h */
    HERD_TYPE_IQ2_XS = 17,
    HERD_TYPE_IQ3_XXS = 18,
    HERD_TYPE_IQ1_S = 19,
    HERD_TYPE_IQ4_NL = 20,
    HERD_TYPE_IQ3_S = 21,
    HERD_TYPE_IQ2_S = 22,
    HERD_TYPE_IQ4_XS = 23,
    HERD_TYPE_IQ1_M = 29,
    HERD_TYPE_BF16 = 30,
    HERD_TYPE_TQ1_0 = 34,
    HERD_TYPE_TQ2_0 = 35,
    HERD_TYPE_Q1_0 = 41, /* 1-bit and 2-bit block types (read only): src/kernels/bitquants.h */
    HERD_TYPE_Q2_0 = 42,
    /* herd extension (docs/FORMATS.md): FP8 E4M3 rows with one f32 scale per row in a companion
     * tensor NAME_scale (Meta's fbgemm rowwise FP8). Ids >= 4096 are herd's; ggml's readers refuse them. */
    HERD_TYPE_FP8_E4M3 = 4096,
} herd_type;

/* "f32", "q8_0", ... for any GGUF type id (also those herd cannot compute); "unknown" otherwise. */
const char *herd_type_name(int type);
/* Parses a type name ("f32", "q8_0", "q4_k", ...; case-insensitive); -1 if unknown. */
int herd_type_from_name(const char *name);

/* ---- model ----------------------------------------------------------------------------------- */

typedef struct herd_model herd_model;

typedef struct {
    char arch[32];        /* general.architecture, e.g. "llama" */
    char name[128];       /* general.name, may be empty */
    int64_t n_vocab;
    int64_t n_ctx_train;  /* llama.context_length */
    int64_t n_embd;
    int64_t n_layer;
    int64_t n_head;
    int64_t n_head_kv;
    int64_t head_dim;     /* per head, for Q and K and V */
    int64_t n_ff;
    float rope_theta;
    float norm_eps;
    bool tied_output;     /* no output.weight: logits use token_embd.weight */
    bool has_rope_freqs;  /* rope_freqs.weight present (Llama 3.1 scaling) */
    int weight_type;      /* most common type among the 2-D weights */
    int64_t n_params;
    uint64_t file_bytes;
    char tokenizer[16];   /* "gpt2" (byte-level BPE) or "llama" (SentencePiece) */
    char tokenizer_pre[32];
    bool has_chat_template;
    int64_t n_tensors;    /* tensors in the file (0 for a vocabulary-only GGUF) */
    uint64_t decode_bytes; /* weight bytes read per decoded token: every layer matrix and the output
                            * matrix (the embedding table only when tied to the output) */
    bool vocab_only;      /* loaded without weights */
    uint64_t packed_bytes; /* weights repacked at load into the interleaved layout of the packed kernels
                            * (q8_0, q4_0, q5_0, iq4_nl, q4_1, q5_1, q4_K, q5_K, q6_K, iq4_xs, iq3_s,
                            * iq3_xxs, iq2_s on AVX-512 VNNI CPUs; 0 with HERD_REPACK=0) */
} herd_model_info;

int herd_model_load(const char *path, herd_model **out);
/* Loads only the metadata and tokenizer (enough for tokenize/detokenize/info; works on the
 * vocabulary-only GGUFs that llama.cpp ships). Such a model cannot make a context. */
int herd_model_load_vocab(const char *path, herd_model **out);
void herd_model_free(herd_model *m);
void herd_model_get_info(const herd_model *m, herd_model_info *out);
/* Human-readable description for `herd info`: metadata, shapes, tensor type histogram, sizes;
 * with list_tensors every tensor's name, type and shape. */
void herd_model_print_info(const herd_model *m, FILE *fp, bool list_tensors);
/* tokenizer.chat_template, or NULL. Owned by the model. */
const char *herd_model_chat_template(const herd_model *m);

/* ---- tokenizer ------------------------------------------------------------------------------- */

enum {
    HERD_TOKENIZE_ADD_BOS = 1,       /* prepend BOS (callers usually pass herd_vocab_add_bos()) */
    HERD_TOKENIZE_PARSE_SPECIAL = 2, /* "<|eot_id|>" in the text becomes the special token */
};

int32_t herd_vocab_n_tokens(const herd_model *m);
bool herd_vocab_add_bos(const herd_model *m); /* tokenizer.ggml.add_bos_token (or model default) */
int32_t herd_vocab_bos(const herd_model *m);  /* -1 when absent */
int32_t herd_vocab_eos(const herd_model *m);
/* End of generation: EOS, <|eot_id|>, <|eom_id|> and the vocabulary's other end tokens. */
bool herd_vocab_is_eog(const herd_model *m, int32_t id);
/* Id of a token given its exact text ("<|eot_id|>"), or -1. */
int32_t herd_vocab_find(const herd_model *m, const char *text);

/* Tokenizes len bytes of text (any bytes; invalid UTF-8 is tokenized as bytes).
 * OUT: *ids (caller frees), *n_ids. */
int herd_tokenize(const herd_model *m, const char *text, size_t len, int flags, int32_t **ids, int64_t *n_ids);

/* Appends the bytes of one token to buf (up to cap) and returns how many it needs (may exceed cap).
 * Control tokens (BOS, <|eot_id|>) give their text only when render_special. -1 for a bad id. */
int64_t herd_token_to_piece(const herd_model *m, int32_t id, bool render_special, char *buf, size_t cap);
/* Detokenizes ids into a NUL-terminated string; SentencePiece's leading space after BOS is removed
 * as llama.cpp does. OUT: *text (caller frees), *len. HERD_E_ARG for an id outside the vocabulary. */
int herd_detokenize(const herd_model *m, const int32_t *ids, int64_t n, bool render_special, char **text,
                    size_t *len);

/* ---- inference context (KV cache + scratch + threads) ---------------------------------------- */

typedef struct herd_context herd_context;

/* KV cache element types. q8_0 and q4_0 are llama.cpp's blocks of 32 (see docs/KVCACHE.md): attention
 * converts the query to q8_0 blocks for their dots, as ggml does. head_dim must be a multiple of 32 for
 * them. K and V may differ: kv_type = HERD_KV_PAIR(k, v) (a half of 0xff: the default type); a plain
 * herd_kv_type means both. */
typedef enum {
    HERD_KV_AUTO = -1,
    HERD_KV_F32 = HERD_TYPE_F32,
    HERD_KV_F16 = HERD_TYPE_F16,
    HERD_KV_BF16 = HERD_TYPE_BF16,
    HERD_KV_Q8_0 = HERD_TYPE_Q8_0,
    HERD_KV_Q4_0 = HERD_TYPE_Q4_0
} herd_kv_type;
#define HERD_KV_PAIR(k, v) (0x10000 | (((k) & 0xff) << 8) | ((v) & 0xff))
#define HERD_KV_TYPE_K(t) ((t) >= 0x10000 ? ((t) >> 8) & 0xff : (t))
#define HERD_KV_TYPE_V(t) ((t) >= 0x10000 ? (t) & 0xff : (t))

typedef struct {
    int64_t n_ctx;    /* KV cache length in tokens, per sequence; 0 = min(4096, the model's n_ctx_train) */
    int64_t n_seq;    /* independent sequences (each its own KV cache of n_ctx); 0 = 1 */
    int64_t n_batch;  /* most tokens per forward pass; 0 = 512 */
    int n_threads;    /* 0 = herd_default_threads() */
    int kv_type;      /* herd_kv_type or HERD_KV_PAIR(k, v); AUTO = F32 when the weights are F32, else F16 */
} herd_context_params;

herd_context_params herd_context_default_params(void);
/* herd_context_new refuses (HERD_E_NOMEM, with the numbers) a context whose KV cache and scratch exceed
 * MemAvailable; HERD_MEMCHECK=0 in the environment turns that check off. */
int herd_context_new(herd_model *m, const herd_context_params *p, herd_context **out);

/* The memory a context with these parameters takes (nothing allocated): herd info -c N prints it. */
typedef struct {
    int64_t n_ctx, n_seq, n_batch; /* the parameters as resolved (defaults filled in) */
    int n_threads, kv_type_k, kv_type_v;
    uint64_t weights;   /* the model file, mapped (resident as it is read) */
    uint64_t packed;    /* weights repacked at load (allocated) */
    uint64_t kv;        /* the KV cache: n_seq x n_ctx positions of K and V */
    uint64_t scratch;   /* activations and kernel scratch: n_batch tokens, n_threads threads (not n_ctx) */
    uint64_t available; /* MemAvailable of /proc/meminfo now, 0 when unknown */
} herd_context_memory;
int herd_context_memory_estimate(const herd_model *m, const herd_context_params *p, herd_context_memory *out);
void herd_context_free(herd_context *c);
int64_t herd_context_n_ctx(const herd_context *c);
const herd_model *herd_context_model(const herd_context *c);
int herd_context_kv_type(const herd_context *c); /* as given: a type or HERD_KV_PAIR(k, v) */
/* Number of positions held in the KV cache (the next token's position). */
int64_t herd_context_n_past(const herd_context *c);
/* Forgets cached positions >= pos (pos <= n_past). */
void herd_context_truncate(herd_context *c, int64_t pos);
/* For benchmarks: reads every weight byte one decode step reads, once, with a plain read loop on the
 * context's threads (one parallel pass per matrix, as decode runs them), and returns the seconds it
 * took; *bytes (if not NULL) gets the bytes read. bytes / seconds is the bandwidth at which decode
 * could at best stream its weights, measured on the same threads and pages: its roofline
 * (herd bench --roofline times each decoded token against one such read). */
double herd_context_read_weights(herd_context *c, uint64_t *bytes);

enum { HERD_LOGITS_NONE = 0, HERD_LOGITS_LAST = 1, HERD_LOGITS_ALL = 2 };

/* Runs tokens[0..n) of sequence 0 at positions n_past.. through the model, appending to the KV
 * cache; splits into n_batch-sized forward passes. logits (if mode != NONE) receives float32 rows of
 * n_vocab: one row for LAST, n rows for ALL. HERD_E_RANGE (and nothing changed) if n_past + n > n_ctx. */
int herd_decode(herd_context *c, const int32_t *tokens, int64_t n, int mode, float *logits);

/* Several sequences in one pass (continuous batching): token i belongs to sequence seq_ids[i] and
 * takes that sequence's next position (a sequence's tokens in order). logits receives one row per
 * token with want_logits[i], in order. A token's logits do not depend on the rest of the batch.
 * HERD_E_RANGE naming the sequence (and nothing changed) if one would overflow its n_ctx. */
int herd_decode_batch(herd_context *c, const int32_t *tokens, const int32_t *seq_ids, int64_t n,
                      const bool *want_logits, float *logits);
int32_t herd_context_n_seq(const herd_context *c);
int64_t herd_seq_n_past(const herd_context *c, int32_t seq);
/* Forgets positions >= pos of a sequence. */
void herd_seq_truncate(herd_context *c, int32_t seq, int64_t pos);
/* Makes dst's cache a copy of the first n positions of src (reuse of a shared prompt prefix). */
int herd_seq_copy(herd_context *c, int32_t src, int32_t dst, int64_t n);
/* Sentence embedding of tokens[0..n) run in sequence seq (its cache is cleared first and left
 * holding the tokens): the mean over tokens of the final normed hidden state (the input of the
 * output matrix), scaled to unit L2 norm. out: n_embd floats. */
int herd_embed(herd_context *c, int32_t seq, const int32_t *tokens, int64_t n, float *out);
/* Pooling of the final normed hidden states, as llama.cpp's pooling types (the same meaning, not the same
 * numbers: mean is 0 so that zeroed parameters pool by mean; none = one row per token). */
enum { HERD_POOLING_MEAN = 0, HERD_POOLING_CLS = 1, HERD_POOLING_LAST = 2, HERD_POOLING_NONE = 3 };
/* herd_embed with a pooling: out receives n_embd floats, or n * n_embd (row per token) for NONE; normalize:
 * each row scaled to unit L2 norm (llama.cpp's --embd-normalize 2), else the raw pooled state. */
int herd_embed_pooled(herd_context *c, int32_t seq, const int32_t *tokens, int64_t n, int pooling, bool normalize,
                      float *out);
/* "mean", "cls", "last", "none" -> HERD_POOLING_*, else -1. */
int herd_pooling_parse(const char *name);
int64_t herd_model_n_embd(const herd_model *m);

/* ---- LoRA adapters (docs/FORMATS.md, src/model/lora.h) ------------------------------------------ */

/* An adapter loaded for one base model: on each matrix it adapts, y = W x + scale * (alpha / rank) * B (A x). */
typedef struct herd_lora herd_lora;

/* path: llama.cpp's adapter GGUF (general.type = adapter, adapter.type = lora; f32/f16/bf16 tensors) or a PEFT
 * folder (adapter_config.json + adapter_model.safetensors). Every tensor is checked against m's shapes; a
 * misfit is refused with one line naming the file and the tensor (expected vs found). m is borrowed and must
 * outlive the adapter. OUT: *out (free with herd_lora_free). */
int herd_lora_load(const herd_model *m, const char *path, herd_lora **out);
void herd_lora_free(herd_lora *a);

typedef struct {
    float alpha;          /* adapter.lora.alpha / lora_alpha; 0: the scale is the user's scale alone */
    int64_t rank;         /* the largest rank of its matrices */
    int64_t n_matrices;   /* matrices it adapts (of n_layer * 7) */
    int64_t n_params;     /* floats in A and B */
} herd_lora_info;
void herd_lora_get_info(const herd_lora *a, herd_lora_info *out);

enum { HERD_LORA_GGUF = 0, HERD_LORA_PEFT = 1 };
/* Writes the adapter as llama.cpp's adapter GGUF (path: a file) or as a PEFT folder (path: a folder, created if
 * missing), F32, each file atomically (temporary file + rename). */
int herd_lora_save(const herd_lora *a, const char *path, int format);

/* Sets the adapters of every sequence of the context: from the next decode on, each matrix an adapter adapts
 * gives W x + sum_i scales[i] * (alpha_i / rank) * B_i (A_i x) (scales[i] 1: the adapter as trained). n = 0
 * removes them (the plain model, bit for bit). The context borrows the adapters: free them after the context,
 * or after setting n = 0. The KV cache is kept: positions already cached were computed with the previous
 * adapters (truncate them to recompute). HERD_E_ARG for an adapter loaded for another model. */
int herd_context_set_lora(herd_context *c, herd_lora *const *adapters, const float *scales, int n);
/* The same for one sequence (the engine and server: each request's sequence its own adapter). A token's
 * result depends on its own sequence's adapters only, whatever else is in the batch. */
int herd_seq_set_lora(herd_context *c, int32_t seq, herd_lora *const *adapters, const float *scales, int n);

/* herd export: writes the model at base_path (GGUF or HF folder) as a GGUF with the adapters merged,
 * W' = W + sum_i scales[i] * (alpha_i / rank) * B_i A_i in f32, every other tensor and key copied as herd
 * convert does. type: NULL = each tensor keeps the base's type (merged ones requantized from f32); "f32", "f16",
 * "bf16", "q8_0", "q4_0" for every matrix; a herd quantize target (Q4_K_M, Q6_K, ...) quantizes the merged f32
 * model. Written atomically (temporary file + rename). */
int herd_export_lora(const char *base_path, const char *const *lora_paths, const float *scales, int n,
                     const char *out_path, const char *type);

/* ---- sampling -------------------------------------------------------------------------------- */

typedef struct herd_sampler herd_sampler;

typedef struct {
    float temp;           /* <= 0: greedy (argmax) */
    int32_t top_k;        /* <= 0: off */
    float top_p;          /* >= 1: off */
    float min_p;          /* <= 0: off */
    float repeat_penalty; /* 1: off */
    int32_t repeat_last_n;
    uint64_t seed;
} herd_sampler_params;

/* llama.cpp's defaults: temp 0.8, top_k 40, top_p 0.95, min_p 0.05, repeat_penalty 1, last_n 64. */
herd_sampler_params herd_sampler_default_params(void);
herd_sampler *herd_sampler_new(const herd_sampler_params *p, int32_t n_vocab);
void herd_sampler_free(herd_sampler *s);
/* Picks the next token from n_vocab logits (not modified). */
int32_t herd_sampler_sample(herd_sampler *s, const float *logits);
/* Records a generated token: the penalty window, and the constraint (if any) advances. */
void herd_sampler_accept(herd_sampler *s, int32_t id);
/* Records a prompt token: the penalty window only. */
void herd_sampler_accept_prompt(herd_sampler *s, int32_t id);

/* ---- constrained decoding (grammar / JSON schema) ---------------------------------------------- */

/* A constraint restricts sampling to tokens that keep the output a prefix of a valid document:
 * JSON matching a JSON schema (or any JSON object). It is incremental: apply() masks the logits of
 * every token that cannot continue the text so far, accept() advances by a sampled token. End-of-
 * generation tokens are allowed only once the document is complete. A constraint holds the state
 * of one generation; make one per request (cheap after the first compile of a schema). */
typedef struct herd_constraint herd_constraint;

/* schema_json: a JSON Schema (draft 2020-12 subset: type, properties, required, items, enum, const,
 * anyOf/oneOf, minItems/maxItems, minLength/maxLength, additionalProperties false, $ref/$defs), or NULL
 * for "any JSON object" (response_format json_object). HERD_E_UNSUPPORTED naming the keyword for
 * schema features it cannot enforce; HERD_E_FORMAT for invalid JSON. */
int herd_constraint_json_schema(const herd_model *m, const char *schema_json, herd_constraint **out);
void herd_constraint_free(herd_constraint *c);
/* Sets logits[i] = -INFINITY for every token i not allowed next (n_vocab entries). */
void herd_constraint_apply(herd_constraint *c, float *logits);
/* Advances by token id; HERD_E_ARG if the token was not allowed (the state is unchanged). */
int herd_constraint_accept(herd_constraint *c, int32_t id);
/* True when the text so far is a complete valid document. */
bool herd_constraint_complete(const herd_constraint *c);
/* The sampler applies the constraint before sampling and advances it in herd_sampler_accept(); it
 * does not own it (free the constraint after the sampler). NULL removes it. */
void herd_sampler_set_constraint(herd_sampler *s, herd_constraint *c);

/* ---- generation ------------------------------------------------------------------------------ */

typedef struct {
    int64_t n_predict;       /* most tokens to generate; < 0: until end of generation or context */
    const char **stop;       /* stop strings (not included in the output); may be NULL */
    int n_stop;
    /* Called with each newly final piece of output text (stop-string prefixes are held back
     * until resolved). Return false to stop. May be NULL. */
    bool (*on_text)(const char *piece, size_t len, void *user);
    void *user;
    bool render_python_tag;  /* write the <|python_tag|> token as its text (for tool-call parsing) */
    /* test-only scripted model: these tokens are "generated" in order (the model still runs, the
     * sampler is not consulted); when they run out generation ends as at end of turn */
    const int32_t *forced;
    int64_t n_forced;
    /* Speculative decoding (src/spec/spec.h, docs/SPECULATIVE.md). Greedy output is the same token for
     * token; sampled output has the same distribution (not the same tokens for a seed). */
    herd_context *draft;     /* a context of a draft model with the same vocabulary (herd_vocab_compatible),
                              * holding the same first n_past tokens as c (herd_generate leaves it so); NULL: none */
    int lookup_ngram;        /* > 0 (without draft): prompt-lookup drafting, n-grams of up to this many tokens */
    int64_t draft_max;       /* most tokens drafted per step; 0 = 16 */
    int64_t draft_min;       /* a proposal shorter than this is not verified (plain step); 0 = any */
    float draft_p_min;       /* greedy draft model: stop drafting when its softmax probability of its argmax is below
                              * this; sampled: of the drawn token (0 = never) */
} herd_generate_params;

typedef struct {
    int32_t *ids;            /* generated ids (caller frees), the stop token not included */
    int64_t n_ids;
    char *text;              /* generated text, NUL-terminated (caller frees) */
    size_t text_len;
    int stop_reason;         /* HERD_STOP_* */
    int32_t stop_token;      /* the end-of-generation token, when stop_reason == HERD_STOP_EOG */
    int64_t n_prompt;
    double prompt_seconds, gen_seconds;
    /* speculative decoding: verification passes, tokens drafted (and verified), drafts accepted */
    int64_t n_spec_steps, n_drafted, n_accepted;
} herd_generate_result;

enum { HERD_STOP_EOG = 1, HERD_STOP_LENGTH = 2, HERD_STOP_STRING = 3, HERD_STOP_CONTEXT = 4, HERD_STOP_USER = 5 };

/* Appends prompt[0..n_prompt) to the context, then samples until a stop condition. */
int herd_generate(herd_context *c, herd_sampler *s, const int32_t *prompt, int64_t n_prompt,
                  const herd_generate_params *p, herd_generate_result *out);
void herd_generate_result_free(herd_generate_result *r);
/* HERD_OK when draft can draft for target: the same vocabulary (size, every token's text with special
 * tokens rendered, which tokens end generation, BOS and EOS); else HERD_E_ARG naming the first difference. */
int herd_vocab_compatible(const herd_model *target, const herd_model *draft);

/* ---- chat (Llama 3.1 prompt format, see docs and LLAMA31.md) --------------------------------- */

typedef struct {
    const char *role;    /* "system", "user", "assistant", "ipython" (or "tool") */
    const char *content; /* NULL only for an assistant message that carries a tool call */
    /* an assistant message that called a tool (the template renders exactly one call) */
    const char *tool_name;      /* NULL: no tool call */
    const char *tool_arguments; /* the call's arguments as JSON text (an object), as OpenAI clients send */
} herd_chat_message;

typedef struct {
    const char *date_string;    /* "Today Date:" line; NULL = "26 Jul 2024" as the official template */
    bool add_generation_prompt; /* end with the assistant header */
    /* custom tools: a JSON array of OpenAI tool definitions ({"type": "function", "function": {...}}),
     * or NULL for none. By default they go into the first user message, as the template does. */
    const char *tools_json;
    bool tools_in_system;       /* the template's tools_in_user_message = false */
    /* built-in tools: n names among brave_search, wolfram_alpha, code_interpreter ("Environment:
     * ipython", "Tools: ..."). NULL: not given (the template's "not defined"); non-NULL with n = 0 is
     * an empty list, which still switches on "Environment: ipython". */
    const char *const *builtin_tools;
    int n_builtin_tools;
} herd_chat_params;

/* Renders messages exactly as the official Llama 3.1 template does — system block with the date
 * lines, built-in tools, custom tools in the first user message (or the system message), assistant
 * tool calls (<|python_tag|>name.call(...) for built-ins, {"name": ..., "parameters": ...} for custom
 * functions, ended by <|eom_id|> when built-in tools are on), ipython results — beginning with
 * "<|begin_of_text|>". HERD_E_ARG for what the template rejects (two tool calls in one message,
 * tools in the user message without a user message, unparsable tool JSON). OUT: *text (caller frees). */
int herd_chat_format(const herd_chat_message *msgs, size_t n, const herd_chat_params *p, char **text);
/* Parses OpenAI chat messages (a JSON array, see docs/API.md): content strings or text parts,
 * assistant tool_calls (arguments as JSON text or an object), tool results. OUT: *msgs and *n, valid
 * until herd_chat_messages_free(*owner). HERD_E_ARG / HERD_E_FORMAT with "messages[i]..." otherwise. */
int herd_chat_parse_messages(const char *json, size_t len, herd_chat_message **msgs, size_t *n, void **owner);
void herd_chat_messages_free(void *owner);

/* The token ids of that prompt: the template's special tokens become their ids, and everything
 * else — message contents included — is tokenized as plain text, so "<|eot_id|>" typed by a user
 * cannot end a turn. Equals tokenizing the rendered text with special parsing whenever contents
 * hold no special-token text. OUT: *ids (caller frees), *n_ids. */
int herd_chat_tokenize(const herd_model *m, const herd_chat_message *msgs, size_t n, const herd_chat_params *p,
                       int32_t **ids, int64_t *n_ids);
/* The context-full policy "shift" (docs/CONTEXT.md): the ids of the conversation with its oldest turns
 * left out, so that they and `reserve` (at least 1) more tokens fit n_ctx. A turn is a user message and everything
 * after it up to the next user message (replies, tool calls, tool results); the leading system messages
 * and the last turn are always kept, and the rest is re-templated whole (custom tools move to the first
 * user message that is left). Turns go oldest first, one at a time, while n_ids + reserve > n_ctx and
 * more than the last turn is left. OUT: *ids, *n_ids as herd_chat_tokenize; messages [*drop_from,
 * *drop_from + *n_dropped) were left out (*n_dropped 0: none). HERD_E_RANGE, with the numbers, when even
 * the system messages and the last turn leave no position free (n_ids >= n_ctx); *n_dropped is set then. */
int herd_chat_tokenize_fit(const herd_model *m, const herd_chat_message *msgs, size_t n, const herd_chat_params *p,
                           int64_t n_ctx, int64_t reserve, size_t *drop_from, size_t *n_dropped, int32_t **ids,
                           int64_t *n_ids);

/* ---- tool calls in model output --------------------------------------------------------------- */

typedef struct {
    char *name;      /* function or built-in tool name; raw python is "code_interpreter" */
    char *arguments; /* the arguments as compact JSON object text ({"code": ...} for raw python) */
    bool builtin;    /* written as <|python_tag|>name.call(...) or raw python */
} herd_tool_call;

typedef struct {
    char *content;   /* the text that is not a call ("" when the reply was only calls) */
    size_t content_len;
    herd_tool_call *calls;
    int n_calls;
} herd_parsed_output;

/* Splits a generated reply into tool calls and content (see src/chat/toolcall.h for the formats).
 * The <|python_tag|> token must appear as its text. Malformed calls stay content; never fails on
 * input. OUT: *out (free with herd_parsed_output_free). */
int herd_parse_tool_calls(const char *text, size_t len, herd_parsed_output *out);
void herd_parsed_output_free(herd_parsed_output *out);

/* The same, incrementally: feed the reply as it streams; what cannot be part of a call comes back
 * at once as content (so a chat UI can show it), what might be a call is held until finish. */
typedef struct herd_tool_stream herd_tool_stream;
herd_tool_stream *herd_tool_stream_new(void);
/* OUT: *content points at the newly final content bytes (valid until the next call); returns their count. */
size_t herd_tool_stream_feed(herd_tool_stream *ts, const char *s, size_t n, const char **content);
/* The calls, and the content that was held back. Frees nothing: call herd_tool_stream_free after. */
int herd_tool_stream_finish(herd_tool_stream *ts, herd_parsed_output *out);
void herd_tool_stream_free(herd_tool_stream *ts);

/* ---- writing models (random weights for tests, demos and benchmarks) ------------------------- */

typedef struct {
    const char *vocab_path;  /* GGUF whose tokenizer.* metadata is copied (e.g. ggml-vocab-llama-bpe.gguf) */
    int64_t n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff;
    int64_t n_ctx_train;
    float rope_theta, norm_eps;
    float rope_scale;        /* Llama 3 scaling factor (8 or 32) written as rope_freqs.weight; 0 = none */
    bool tied_output;
    int type;                /* herd_type of the 2-D weights (norms stay F32) */
    int output_type;         /* type of output.weight / token_embd.weight; -1 = same as type */
    float weight_scale;      /* std of the random matrices; 0 = 0.02 */
    uint64_t seed;
    const char *name;        /* general.name */
    /* K-quant types only: rows of random valid blocks (every quant and sub-block scale byte random, f16
     * super-block scales set for block mean ~0 and RMS weight_scale) instead of quantized random weights,
     * to test a reader's decoding of the layout independently of any quantizer */
    bool random_blocks;
} herd_synth_params;

/* Writes a llama-architecture GGUF with seeded random weights to out_path. */
int herd_synth_model(const herd_synth_params *p, const char *out_path);

/* ---- converting models (docs/FORMATS.md) ----------------------------------------------------- */

typedef struct {
    /* Type of the 2-D weights: HERD_TYPE_F32/F16/BF16/Q8_0/Q4_0 for all of them, or
     * HERD_TYPE_FP8_E4M3 for Meta's FP8 scheme (the FFN weights of every layer but the first and the
     * last in FP8 with per-row scales, the rest kept as in the source); -1 = as in the source. */
    int type;
    float fp8_act_ub;        /* activation_scale_ub written with FP8 weights; 0 = the source's, else 1200 */
} herd_convert_params;

/* Writes the model at in_path — a Hugging Face directory or a GGUF — as a llama GGUF that
 * llama.cpp loads (unless it holds FP8, a herd extension llama.cpp refuses): llama.* metadata,
 * the tokenizer as tokenizer.ggml.* keys, the chat template, rope_freqs.weight for Llama 3 rope
 * scaling, and Q/K rows permuted from HF's order to GGUF's. */
int herd_convert(const char *in_path, const char *out_path, const herd_convert_params *p);

/* ---- quantizing models (docs/FORMATS.md, src/quant/quant.h) ---------------------------------- */

typedef struct {
    int64_t tensor, n_tensors;  /* the tensor being written (0-based) of n_tensors */
    const char *name;
    int type_in, type_out;
    uint64_t bytes_done, bytes_total; /* input tensor bytes processed so far / in the file */
    double seconds;             /* since the start */
    const char *warning;        /* non-NULL once per tensor that needs one: input already quantized
                                 * (dequantized, then requantized) or a row length that forced a
                                 * fallback type */
} herd_quantize_progress;

typedef struct {
    int n_threads;  /* 0 = herd_default_threads() */
    bool pure;      /* every quantized tensor gets the base type: no mix, no Q6_K output rule */
    /* called on the calling thread after each chunk of rows and at each tensor's end; may be NULL */
    void (*progress)(const herd_quantize_progress *p, void *user);
    void *user;
    /* an importance matrix file (llama-imatrix's GGUF or .dat, or herd imatrix's), or NULL: each tensor it has
     * an entry for is quantized as llama-quantize --imatrix does (ggml's weighted searches: the K-quants, Q4_0,
     * Q4_1, Q5_0, Q5_1, IQ4_NL, IQ4_XS; same bytes); the mix follows llama.cpp's rules with one (quant.h) */
    const char *imatrix;
} herd_quantize_params;

typedef struct {
    char *name;          /* owned by the result */
    int type_in, type_out;
    int64_t n_elements;
    bool quantized;      /* false: copied unchanged (1-D, norms, or already of the target type) */
    bool requantized;    /* the input was quantized already */
    bool fallback;       /* the rule's type did not fit the row length */
    double nmse;         /* sum (x - x')^2 / sum x^2 of the written tensor vs the input's values;
                          * 0 when copied, NaN when all inputs are zero */
    bool imatrix;        /* quantized with importance weights */
} herd_quantize_tensor;

typedef struct {
    herd_quantize_tensor *tensors; /* in file order (free with herd_quantize_result_free) */
    int64_t n_tensors;
    uint64_t bytes_in, bytes_out;  /* file sizes */
    double seconds;
    int file_type;                 /* general.file_type written (llama.cpp's llama_ftype) */
} herd_quantize_result;

herd_quantize_params herd_quantize_default_params(void);
/* Quantizes the GGUF at in_path into out_path. type: Q8_0, Q4_0, Q4_K, Q5_K, Q6_K, Q4_K_M or Q5_K_M
 * (case-insensitive; which tensor gets which type: docs/FORMATS.md). Input tensors may be F32, F16,
 * BF16 or of any type herd computes with (those are dequantized first). All metadata is kept but
 * general.file_type (set) and general.quantization_version (2). out (may be NULL) receives per-tensor
 * statistics. HERD_E_ARG for an unknown type or out_path naming the input file. */
int herd_quantize_model(const char *in_path, const char *out_path, const char *type, const herd_quantize_params *p,
                        herd_quantize_result *out);
void herd_quantize_result_free(herd_quantize_result *r);

/* ---- built-in tools executed by herd (docs/TOOLS.md) ------------------------------------------ */

typedef struct {
    double timeout_s;     /* code_interpreter: wall clock; searches: the whole HTTP request (0: 10 s / 15 s) */
    int cpu_s;            /* code_interpreter: CPU seconds per process (0: 5) */
    int64_t memory_bytes; /* code_interpreter: address space per process (0: 1 GiB) */
    int max_procs;        /* code_interpreter: processes and threads (0: 32) */
    size_t max_output;    /* code_interpreter: bytes kept of stdout and of stderr each (0: 16 KiB) */
    int top_k;            /* brave_search: results given to the model (0: 3) */
} herd_tool_params;

/* Runs the built-in tool `name` — "code_interpreter" (python3 in a sandbox), "brave_search",
 * "wolfram_alpha" — with the call's arguments as herd_parse_tool_calls gives them (a JSON object:
 * {"code": "..."} or {"query": "..."}). OUT: *result, the content of the ipython message to give the
 * model (caller frees). A tool that fails (code that raises or is killed, a missing API key, an
 * HTTP error or timeout) still returns HERD_OK with a result saying so; the formats are in
 * docs/TOOLS.md. HERD_E_ARG (no result) for an unknown tool or arguments without the needed string.
 * Blocks for at most about the timeout. Thread-safe. p may be NULL (defaults). */
int herd_builtin_tool_run(const char *name, const char *args_json, char **result);
int herd_builtin_tool_run_ex(const char *name, const char *args_json, const herd_tool_params *p, char **result);

/* ---- training (src/train/, docs/TRAINING.md) ---------------------------------------------------- */

enum { HERD_TRAIN_CPT = 0, HERD_TRAIN_SFT = 1, HERD_TRAIN_DPO = 2, HERD_TRAIN_DISTILL = 3 };
enum { HERD_TRAIN_LORA = 0, HERD_TRAIN_FULL = 1 };

/* What herd_train reports to its caller as it goes. */
enum { HERD_TRAIN_EV_START = 0, HERD_TRAIN_EV_STEP, HERD_TRAIN_EV_VAL, HERD_TRAIN_EV_SAVE, HERD_TRAIN_EV_DONE };
typedef struct {
    int event;                  /* HERD_TRAIN_EV_* */
    int64_t step, total_steps;  /* optimizer steps done / planned */
    double loss;                /* STEP: the step's loss (mean over its predicted tokens, or the objective's) */
    double lr, grad_norm;       /* STEP: learning rate used, gradient norm before clipping */
    double tokens_per_s, eta_s; /* STEP: sequence tokens processed per second (forward + backward), time left */
    double val_loss;            /* VAL: mean loss over the held-out examples */
    int64_t n_train, n_val;     /* START: examples used for training / held out */
    int64_t n_truncated, n_skipped; /* START: examples cut to --seq-len / dropped */
    int64_t n_params;           /* START: trainable parameters */
    const char *path;           /* SAVE: the checkpoint directory; DONE: the output written */
} herd_train_progress;

typedef struct {
    const char *model;          /* base model (GGUF or HF directory) */
    const char *data;           /* training file (text for cpt, JSONL otherwise; src/train/data.h) */
    const char *out;            /* LoRA: an adapter .gguf (llama.cpp's format) or a PEFT directory; full: a GGUF */
    const char *teacher;        /* distill: the teacher model (same vocabulary) */
    const char *resume;         /* a checkpoint directory to continue from, or NULL */
    const char *checkpoint_dir; /* where save_every writes; NULL = OUT.ckpt */
    const char *metrics;        /* JSONL metrics log, or NULL */
    const char *lora_init;      /* LoRA: start from this adapter (.gguf or PEFT directory) instead of B = 0 */
    const char *dump_data;      /* write every example's tokens and targets as JSONL here (inspect masks) */
    int objective;              /* HERD_TRAIN_CPT .. DISTILL */
    int method;                 /* HERD_TRAIN_LORA or HERD_TRAIN_FULL */
    int64_t lora_rank;          /* 8 */
    float lora_alpha;           /* 16 */
    float lora_dropout;         /* 0 */
    const char *lora_targets;   /* comma-separated among q,k,v,o,gate,up,down; NULL = all seven */
    int optimizer;              /* 0 adamw, 1 sgd */
    double lr, weight_decay;    /* 3e-4, 0.01 */
    int64_t warmup;             /* linear warmup steps (0) */
    int schedule;               /* 0 cosine, 1 constant */
    float grad_clip;            /* max global gradient norm; 0 = off (1.0) */
    int64_t steps;              /* optimizer steps; 0 = from epochs */
    double epochs;              /* used when steps == 0 (1) */
    int64_t batch, grad_accum;  /* sequences per micro-batch (1), micro-batches per step (1) */
    int64_t seq_len;            /* tokens predicted per sequence at most (512) */
    uint64_t seed;              /* initialisation, shuffling, dropout (42) */
    bool shuffle;               /* reshuffle the examples every epoch (true) */
    double val_split;           /* fraction of the examples, the last ones, held out (0) */
    int64_t val_every;          /* validation every N steps (and at the end); 0 = only at the end */
    int64_t save_every;         /* checkpoint every N steps; 0 = never */
    int n_threads;              /* 0 = herd_default_threads() */
    bool train_on_input;        /* sft/distill: loss on every token */
    bool skip_overlong;         /* drop sequences longer than seq_len + 1 instead of truncating them */
    bool checkpoint_activations; /* recompute each layer in the backward pass (true): less memory */
    float dpo_beta;             /* 0.1 */
    float nll_coef;             /* dpo: weight of the chosen response's NLL (0) */
    float kd_ratio, kd_temp;    /* distill: 0.5, 1.0 */
    int64_t teacher_top_k;      /* distill: keep the teacher's top K tokens (0 = all) */
    void (*on_progress)(const herd_train_progress *pr, void *user);
    void *user;
    /* polled between steps: when it reads non-zero, a checkpoint is saved and herd_train returns
     * HERD_E_INTERRUPTED (a SIGINT handler sets it) */
    volatile int *stop;
    /* LoRA: the products with the frozen base's weights (forward x W^T and the input gradient dy W) in
     * HERD_TRAIN_BASE_F32 (exact, the default), HERD_TRAIN_BASE_BF16 (both operands rounded to bf16,
     * sums in F32: torch.autocast's numerics for the base) or HERD_TRAIN_BASE_INT8 (as inference computes
     * them: activations and gradients to q8_0, integer dots; a transposed Q8_0 copy of each frozen matrix
     * for dy W; docs/TRAINING.md). Full: F32 only. */
    int base_compute;
} herd_train_params;

enum { HERD_TRAIN_BASE_F32 = 0, HERD_TRAIN_BASE_BF16 = 1, HERD_TRAIN_BASE_INT8 = 2 };

#define HERD_E_INTERRUPTED (-7)

herd_train_params herd_train_default_params(void);
/* Trains and writes p->out (atomically). HERD_E_* with one line naming the file, line, option or step. */
int herd_train(const herd_train_params *p);
/* ---- safety: Llama Guard 3 (src/safety/llamaguard.h; LLAMA31.md, Llama Guard 3) ------------------ */

/* One hazard category of the prompt: the line "{code}: {name}." and, when description is not NULL,
 * the description on the lines after it. */
typedef struct {
    const char *code;        /* "S1"; letters, digits, '_', '-', '.' (at most 32 bytes) */
    const char *name;        /* "Violent Crimes"; one line */
    const char *description; /* NULL: none */
} herd_guard_category;

enum { HERD_GUARD_ROLE_AUTO = 0, HERD_GUARD_ROLE_USER = 1, HERD_GUARD_ROLE_AGENT = 2 };

typedef struct {
    /* NULL: Meta's default list, S1 Violent Crimes .. S14 Code Interpreter Abuse (short names) */
    const herd_guard_category *categories;
    int n_categories;
    /* length of the default list: 13 or 14; 0 = from the model: 13 for the Llama 3.2-1B shape
     * (n_embd 2048, 16 layers: Llama Guard 3 1B), else 14 (8B); 14 without a model */
    int n_default;
    const char *const *exclude; /* codes whose lines are dropped; the others keep their codes */
    int n_exclude;
    /* whose message is assessed ($agent_type: "User" or "Agent"); AUTO = the last message's role */
    int role;
} herd_guard_params;

herd_guard_params herd_guard_default_params(void);

/* Llama Guard's prompt for a conversation of user and assistant messages (content text; no system,
 * tool or tool-call messages), exactly as Meta's reference builds it: one user turn holding the task,
 * the category list, the conversation ("User: ..." / "Agent: ..." turns, contents stripped, joined by
 * blank lines) and the instructions, wrapped in the Llama 3 chat format with the generation prompt.
 * m may be NULL (then the default list has 14 categories unless p->n_default says 13). HERD_E_ARG
 * naming the message, category or code for bad input (no messages, a role other than user/assistant,
 * an unknown or duplicate code, every category excluded). OUT: *text (caller frees), special tokens
 * as their text. */
int herd_guard_prompt(const herd_model *m, const herd_chat_message *msgs, size_t n, const herd_guard_params *p,
                      char **text);
/* Its token ids: the template's special tokens become their ids, the rest (contents included) is plain
 * text. OUT: *ids (caller frees), *n_ids. */
int herd_guard_tokenize(const herd_model *m, const herd_chat_message *msgs, size_t n, const herd_guard_params *p,
                        int32_t **ids, int64_t *n_ids);

typedef struct {
    bool unsafe;       /* the verdict */
    char **categories; /* unsafe: the violated codes, as generated (repeats dropped); caller frees */
    int n_categories;
    double p_unsafe;   /* softmax of the first generated position's logits at the token "unsafe" */
    char *text;        /* the verdict as generated, "safe" or "unsafe\nS1,S10" (caller frees) */
    int64_t n_prompt, n_generated;
    double prompt_seconds, gen_seconds;
} herd_guard_result;

/* Classifies with the context's model (a Llama Guard 3 model; any Llama 3 vocabulary works): the prompt
 * is decoded in sequence 0 (cleared first), then the verdict greedily under a grammar that admits
 * only "safe" or "unsafe\n" followed by comma-separated known (not excluded) codes, then <|eot_id|>,
 * so every verdict parses. HERD_E_RANGE when the prompt does not fit the context. OUT: *out (free
 * with herd_guard_result_free). */
int herd_guard_run(herd_context *c, const herd_chat_message *msgs, size_t n, const herd_guard_params *p,
                   herd_guard_result *out);
void herd_guard_result_free(herd_guard_result *r);
/* The verdict grammar alone, as a constraint over m's vocabulary (for tests and servers): end token
 * <|eot_id|>. */
int herd_guard_constraint(const herd_model *m, const herd_guard_params *p, herd_constraint **out);
/* Parses a verdict text ("safe", "unsafe\nS1,S10"; surrounding whitespace ignored) into out's verdict
 * and categories (p_unsafe 0, text copied). HERD_E_FORMAT when it is neither. */
int herd_guard_parse(const char *text, size_t len, herd_guard_result *out);
/* ---- evaluation: perplexity and KL divergence (src/eval/, docs/EVAL.md) ------------------------ */

/* llama.cpp's llama-perplexity, number for number and line for line (see src/eval/perplexity.c). */
typedef struct {
    int64_t n_ctx;        /* window length in tokens (llama-perplexity -c); the context must hold it. 512 */
    int64_t n_chunks;     /* windows to score (--chunks); < 0: all the text gives */
    const char *kld_base; /* --kl-divergence-base: without kl_divergence, the base file to write (llama.cpp's
                           * layout, atomically); with it, the base file to compare against */
    bool kl_divergence;   /* compare against kld_base (its tokens and window length; text is unused) */
    int output_type;      /* --ppl-output-type: 0 "[i]ppl," values; 1 one line per window: "tokens ppl mean sd" */
    bool hellaswag;       /* --hellaswag: text is llama.cpp's HellaSwag file (6 lines per task); the context
                           * needs 4 sequences of 4 * n_ctx (llama.cpp's unified cache of 4 sequences) */
    int64_t hellaswag_tasks; /* --hellaswag-tasks: tasks drawn (llama.cpp's draw); default 400 */
    bool winogrande;      /* --winogrande: text is llama.cpp's Winogrande CSV; context as for hellaswag */
    int64_t winogrande_tasks; /* --winogrande-tasks: 0 all, in order; else that many drawn as llama.cpp does */
    bool multiple_choice; /* --multiple-choice: text is llama.cpp's binary task file; context as for hellaswag */
    int64_t multiple_choice_tasks; /* --multiple-choice-tasks: as winogrande_tasks */
} herd_perplexity_params;

herd_perplexity_params herd_perplexity_default_params(void);
/* Runs the measurement on sequence 0 of c (its cache is cleared window by window). The lines llama.cpp prints
 * to stdout (the "[i]ppl," values, the KL table and statistics) go to out, those it prints to stderr
 * (progress, "Final estimate: PPL = x +/- y") to log (NULL: stdout / stderr). OUT: *ppl (if not NULL): the
 * final perplexity. HERD_E_RANGE when the text has fewer than 2 windows of tokens; HERD_E_FORMAT for a base
 * file that is corrupt or made with another vocabulary. */
int herd_perplexity(herd_context *c, const char *text, size_t len, const herd_perplexity_params *p, FILE *out,
                    FILE *log, double *ppl);
/* Reads a KL base file's header (validating the whole file). OUT: window length, vocabulary, windows. */
int herd_kld_base_info(const char *path, int64_t *n_ctx, int64_t *n_vocab, int64_t *n_chunk);
/* New declarations go above this line: what follows the pop is not exported from libherd.so. */
/* ---- Prompt Guard: DeBERTa-v2 classifier (src/deberta/, docs/PROMPT_GUARD.md) ------------------ */

typedef struct herd_classifier herd_classifier;

/* true when path is a directory whose config.json says model_type "deberta-v2". */
bool herd_classifier_dir(const char *path);
/* Loads a Hugging Face directory (config.json, model.safetensors, tokenizer.json or spm.model) and
 * runs on n_threads (>= 1). herd_classifier_load_tokenizer reads the tokenizer alone (no weights:
 * herd_classifier_logits / herd_classify then fail with HERD_E_ARG). OUT: *out. */
int herd_classifier_load(const char *dir, int n_threads, herd_classifier **out);
int herd_classifier_load_tokenizer(const char *dir, herd_classifier **out);
void herd_classifier_free(herd_classifier *c);
int herd_classifier_n_labels(const herd_classifier *c);        /* 0 without weights */
const char *herd_classifier_label(const herd_classifier *c, int i); /* id2label; NULL out of range */
/* [CLS] + the unigram ids of text + [SEP], the pieces cut to fit one window (512 ids).
 * OUT: *ids (caller frees), *n_ids. */
int herd_classifier_tokenize(const herd_classifier *c, const char *text, size_t len, int32_t **ids, int64_t *n_ids);
/* The classifier's raw logits (n_labels floats) for one window of ids. Not thread-safe per classifier. */
int herd_classifier_logits(herd_classifier *c, const int32_t *ids, int64_t n_ids, float *logits);

#define HERD_CLASSIFY_MAX_LABELS 16
typedef struct {
    int64_t n_windows;  /* 512-character chunks of the text (0 for an empty text) */
    int n_labels;
    float *logits;      /* [n_windows][n_labels] raw logits (malloc'd; herd_classify_result_free) */
    float probs[HERD_CLASSIFY_MAX_LABELS]; /* softmax of the window with the highest injection score */
    double jailbreak_score; /* max over windows of p[last] (3 labels: JAILBREAK) */
    double injection_score; /* max over windows of 1 - p[0] (3 labels: INJECTION + JAILBREAK) */
} herd_classify_result;
/* Meta's scoring (LLAMA31.md, Prompt Guard): the text cut into 512-character chunks, each a window of
 * [CLS] + at most 510 pieces + [SEP], softmax at temperature 1, the maximum over windows. */
int herd_classify(herd_classifier *c, const char *text, size_t len, herd_classify_result *out);
void herd_classify_result_free(herd_classify_result *r);

/* ---- evaluation: benchmark tasks from local JSONL files (src/eval/eval.c, docs/EVAL.md) ---------- */

enum { HERD_EVAL_MC = 0, HERD_EVAL_GEN = 1, HERD_EVAL_MMLU = 2, HERD_EVAL_CODE = 3 };

typedef struct {
    int type;                 /* HERD_EVAL_*: mc {question|context, choices, answer}; mmlu {question, choices[4],
                               * answer, subject?}; gen {question|prompt, answer}; code {prompt, test,
                               * entry_point?} (HumanEval: the completion + test run in herd's sandbox) */
    int64_t limit;            /* items scored at most (the first ones); <= 0: all */
    const char *fewshot_path; /* mmlu: JSONL the shots come from (the first n_shot of the item's subject) */
    int64_t n_shot;           /* mmlu: 5 */
    bool chat;                /* gen: the prompt as one user message in the chat template (else raw text + BOS) */
    int64_t max_tokens;       /* gen, code: tokens generated at most (256) */
    const char **stop;        /* gen, code: stop strings (code, none given: HumanEval's \nclass \ndef \n#
                               * \nif \nprint) */
    int n_stop;
    bool progress;            /* "eval: i/n" on the log stream */
    /* gen: LLM-as-judge. judge: a context over the judge model (may be another model; NULL: no judge);
     * each answer is graded with rubric (NULL: a default) in the chat template, the judge's reply greedy and
     * constrained to the JSON schema {"score": 1..10} (src/constrain); metric judge_score (mean). */
    herd_context *judge;
    const char *rubric;
} herd_eval_params;

herd_eval_params herd_eval_default_params(void);
/* Scores every item of the task file on sequence 0 of c (cleared per item): mc/mmlu by the log-likelihood
 * of each choice as lm-evaluation-harness computes it (acc, acc_norm), gen by greedy generation and the
 * final number of the text (exact_match), code by greedy completion of the prompt run with the item's test
 * in herd's python sandbox (src/tools/sandbox.h; pass@1: the program exits 0). A summary table goes to out, progress to log; with json_path the
 * metrics and every item's record are written there as JSON. HERD_E_FORMAT naming the file and line for
 * a malformed item; HERD_E_RANGE for an item longer than the context. */
int herd_eval(herd_context *c, const char *task_path, const herd_eval_params *p, const char *json_path, FILE *out,
              FILE *log);

/* ---- a sequence's KV as bytes (prefix cache, slot save/restore) -------------------------------- */

/* Bytes of one position's KV: every layer's K row and V row (the cache's own type and row format). Under
 * tensor or pipeline parallelism (herd-mpi) the same bytes, gathered from the ranks; 0 (and the calls
 * below fail) in the one split where a rank's part of a quantized row is not whole blocks. */
uint64_t herd_seq_kv_bytes_per_pos(const herd_context *c);
/* Copies positions [pos, pos + n) of sequence seq (all < its n_past) into buf, laid out
 * [layer][K rows n][V rows n], n * herd_seq_kv_bytes_per_pos bytes. HERD_E_ARG when out of range. */
int herd_seq_kv_read(const herd_context *c, int32_t seq, int64_t pos, int64_t n, void *buf);
/* The inverse: writes buf (as herd_seq_kv_read lays it out) into positions [pos, pos + n) of seq, which
 * needs pos <= n_past and pos + n <= n_ctx; n_past becomes pos + n. The bytes must come from a context
 * of the same model and KV type (the caller's contract; KV rows are not checked). */
int herd_seq_kv_write(herd_context *c, int32_t seq, int64_t pos, int64_t n, const void *buf);
/* ---- retrieval: vector stores in SQLite (src/rag/, docs/RAG.md) ------------------------------- */

/* One store = one SQLite file DIR/store.sqlite (WAL) holding collections ("vector stores"), documents,
 * their chunks (text, token range, metadata JSON) and each chunk's F32 vector. A document is written in
 * one transaction: after a crash (kill -9 included) it is either wholly in the store or absent. */
typedef struct herd_store herd_store;

/* Embeds tokens[0..n) into out (n_embd floats, unit L2 norm); HERD_OK or an error (herd_err). */
typedef int (*herd_embed_fn)(void *user, const int32_t *tokens, int64_t n, float *out);

typedef struct {
    int64_t chunk_tokens; /* Llama 3 tokens per chunk; 0 = 512 */
    int64_t overlap;      /* tokens shared by neighbouring chunks; -1 = chunk_tokens / 4 */
} herd_chunk_params;

typedef struct {
    int64_t chunk_id, doc_id, tok_start, tok_end; /* [tok_start, tok_end) in the document's tokens */
    float score;                                  /* cosine similarity */
    char *text, *source, *metadata;               /* owned (herd_store_hits_free); metadata: JSON object */
} herd_store_hit;

/* Opens (creating DIR and the file if needed) the store in dir. OUT: *out (herd_store_close). */
int herd_store_open(const char *dir, herd_store **out);
void herd_store_close(herd_store *s);
/* The key/value settings the store remembers (the embedding model, n_embd, pooling); value: owned, NULL if
 * unset. */
char *herd_store_meta_get(herd_store *s, const char *key);
int herd_store_meta_set(herd_store *s, const char *key, const char *value);
/* Collections: id of a new one (owned) with a name and a metadata JSON object (NULL: {}). */
int herd_store_collection_create(herd_store *s, const char *name, const char *metadata_json, char **id);
/* JSON array of {id, name, created_at, metadata, n_documents, n_chunks}, oldest first (owned string). */
char *herd_store_collection_list(herd_store *s);
/* HERD_E_ARG naming it if the collection does not exist. */
int herd_store_collection_check(herd_store *s, const char *id);
int herd_store_collection_delete(herd_store *s, const char *id);
/* Cuts text into token windows (tokenized with m, no BOS), embeds BOS + each window with fn and writes
 * the document and its chunks in one transaction. source: a name (file path); metadata_json: an object or
 * NULL. HERD_E_FORMAT for empty text. OUT: *doc_id (may be NULL). */
int herd_store_add_text(herd_store *s, const char *collection, const herd_model *m, herd_embed_fn fn, void *user,
                        const char *source, const char *text, size_t len, const char *metadata_json,
                        const herd_chunk_params *p, int64_t *doc_id);
/* The same for a file: .txt/.md as text, .html/.htm with tags, scripts and styles removed and entities
 * decoded, .pdf through pdftotext (poppler-utils; a clear error if absent). HERD_E_UNSUPPORTED for
 * another extension. */
int herd_store_add_file(herd_store *s, const char *collection, const herd_model *m, herd_embed_fn fn, void *user,
                        const char *path, const char *metadata_json, const herd_chunk_params *p, int64_t *doc_id);
/* Pre-cut chunks (Llama Stack vector-io insert): one document of n chunks, texts[i] embedded as BOS +
 * its tokens, metadata_json[i] an object or NULL. */
int herd_store_add_chunks(herd_store *s, const char *collection, const herd_model *m, herd_embed_fn fn, void *user,
                          const char *source, const char *const *texts, const char *const *metadata_json, int64_t n,
                          int64_t *doc_id);
/* Removes a document and its chunks; HERD_E_ARG if there is none with that id. */
int herd_store_delete_doc(herd_store *s, int64_t doc_id);
/* Top k chunks of the collection by cosine with q (n_embd floats). filter_json: NULL, an object of
 * key: value pairs every one of which a chunk's metadata (plus "source") must equal, or an OpenAI
 * comparison / compound filter ({"type":"eq|ne|gt|gte|lt|lte","key","value"}, {"type":"and|or",
 * "filters":[...]}). ef 0: exact search (AVX-512, all rows); ef > 0: approximate — on a collection of at
 * least HERD_STORE_IVF_MIN_ROWS chunks (herd_store_set_ivf) the IVF index probing ef lists, on a smaller one
 * an in-memory HNSW index with ef candidates; ef < 0: the IVF index with HERD_STORE_NPROBE lists on a big
 * collection, exact search on a small one (a filtered search is always exact, over the matching rows).
 * The IVF index is trained on the first approximate search of a big collection (minutes at ~1M chunks)
 * and saved in the store; chunks added or deleted later keep it whole (see src/rag/store.c).
 * Vectors are read from the file once and kept in memory until the collection changes. OUT: *hits
 * (herd_store_hits_free), *n_hits. */
int herd_store_search(herd_store *s, const char *collection, const float *q, int64_t k, const char *filter_json,
                      int ef, herd_store_hit **hits, int64_t *n_hits);
#define HERD_STORE_IVF_MIN_ROWS 10000
#define HERD_STORE_NPROBE 32
/* Approximate search of big collections: those of at least min_rows chunks (<= 0: HERD_STORE_IVF_MIN_ROWS)
 * use the IVF index with nlist lists (0: ~sqrt(chunks)); a saved index of another nlist is retrained. */
void herd_store_set_ivf(herd_store *s, int64_t min_rows, int64_t nlist);
void herd_store_hits_free(herd_store_hit *hits, int64_t n);
/* Vector store files (OpenAI /v1/vector_stores/{id}/files): the file at path, read by the type of
 * filename's extension as herd_store_add_file reads it, becomes one document (source: filename;
 * attributes_json: an object or NULL, the metadata of its chunks) recorded under file_id, in the same
 * transaction. HERD_E_ARG if file_id is already in the collection, HERD_E_UNSUPPORTED for another
 * extension, HERD_E_FORMAT for a file without text. OUT: *doc_id (may be NULL). */
int herd_store_file_add(herd_store *s, const char *collection, const herd_model *m, herd_embed_fn fn, void *user,
                        const char *file_id, const char *filename, const char *path, const char *attributes_json,
                        const herd_chunk_params *p, int64_t *doc_id);
/* JSON array of the collection's files, oldest first: {file_id, doc_id, filename, created_at, usage_bytes
 * (chunk text + vector bytes), n_chunks, chunk_tokens, overlap, attributes}; file_id non-NULL: that file
 * only ([] if absent). Owned string; NULL (error logged) when the collection does not exist. */
char *herd_store_file_list(herd_store *s, const char *collection, const char *file_id);
/* Removes the file's document and its chunks; HERD_E_ARG naming it when it is not in the collection. */
int herd_store_file_delete(herd_store *s, const char *collection, const char *file_id);
/* Replaces the file's attributes (a JSON object or NULL: {}) on it and all its chunks, in one
 * transaction; HERD_E_ARG naming it when it is not in the collection. */
int herd_store_file_update(herd_store *s, const char *collection, const char *file_id, const char *attributes_json);
/* A document's chunks in order: JSON array of {chunk_id, seq, tok_start, tok_end, text} (owned string;
 * [] for no such document; NULL on a database error). */
char *herd_store_doc_chunks(herd_store *s, int64_t doc_id);
/* The file id a document was added under (owned), or NULL for a document added otherwise. */
char *herd_store_doc_file_id(herd_store *s, int64_t doc_id);

/* ---- importance matrices: llama-imatrix (src/api/imatrix_api.c, src/quant/imatrix.h, docs/FORMATS.md) ---- */

typedef struct {
    int64_t n_ctx;        /* window length in tokens (llama-imatrix -c); the context must hold it. 512 */
    int64_t n_chunks;     /* windows to run (--chunks); < 0: all the text gives */
    bool process_output;  /* --process-output: collect output.weight's input too (not with tied embeddings) */
    const char *dataset;  /* recorded in the file's imatrix.datasets (llama-imatrix: the -f path); NULL: none */
    bool dat;             /* write llama.cpp's older .dat format instead of its GGUF format */
    int64_t save_every;   /* --output-frequency: also write the file after every that many windows; 0: at the end */
} herd_imatrix_params;

herd_imatrix_params herd_imatrix_default_params(void);
/* Runs text through c's model in windows as llama-imatrix does (window i: tokens [i n_ctx, (i+1) n_ctx) of the
 * text tokenized with BOS, its first token replaced by BOS, from an empty cache of sequence 0) and collects, for
 * every matrix of the layers (blk.*), the sum over tokens of each input column's square and the token count,
 * from every forward pass of at least 16 tokens (llama.cpp's rule); writes them to out_path (atomically).
 * Progress lines go to log (NULL: stderr). HERD_E_RANGE when the text has fewer than 2 windows of tokens;
 * HERD_E_FORMAT for non-finite activations; HERD_E_IO when the file cannot be written. */
int herd_imatrix(herd_context *c, const char *text, size_t len, const herd_imatrix_params *p, const char *out_path,
                 FILE *log);
/* Checks an importance-matrix file (GGUF or .dat) and prints one line per entry (name, values, count) and a
 * summary to out. HERD_E_IO / HERD_E_FORMAT naming the problem. */
int herd_imatrix_show(const char *path, FILE *out);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif
#endif
