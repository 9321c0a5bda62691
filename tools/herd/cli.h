/* The herd CLI: one binary, one subcommand per file (cmd_*.c), using only include/herd.h.
 * Every command returns the process exit status; errors are printed as one line
 * "herd <cmd>: error: ..." on stderr. */
#ifndef HERD_CLI_H
#define HERD_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "herd.h"

int cmd_info(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);
int cmd_classify(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_format(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_guard(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_imatrix(int argc, char **argv);
int cmd_batch(int argc, char **argv);
int cmd_sdg(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_embed(int argc, char **argv);
int cmd_rag(int argc, char **argv);
/* cmd_rag.c: embeds query (BOS + its tokens) with pooling on sequence 0 of ctx and searches the store. */
/* herd chat --store: the store's embedding model, and the retrieved chunks (k, with their sources) put before
 * each user message (owned result; NULL: error printed). */
typedef struct rag_session rag_session;
rag_session *rag_session_open(const char *dir, int64_t k, int n_threads);
void rag_session_close(rag_session *rs);
char *rag_session_augment(rag_session *rs, const char *question);
int rag_query_context(herd_store *s, const herd_model *m, herd_context *ctx, int pooling, const char *collection,
                      const char *query, int64_t k, const char *filter, int ef, herd_store_hit **hits, int64_t *n);

/* ---- help texts ---- */

/* One command's help, generated at build time from tools/herd/help/NAME.txt by tools/gen_help.sh
 * (see there for the file format and how to add a command); the man pages come from the same files. */
typedef struct {
    const char *name;
    const char *summary; /* the man page's NAME line */
    const char *list;    /* the line `herd --help` prints after "herd NAME" */
    const char *text;    /* what `herd NAME --help` prints */
} cli_help_entry;

extern const cli_help_entry cli_help_table[]; /* sorted by name */
extern const size_t cli_help_n;
extern const char cli_help_main[]; /* `herd --help`, with the placeholders @COMMANDS@ and @CPU@ */

/* The entry of a command, or NULL. */
const cli_help_entry *cli_help_find(const char *cmd);
/* Prints the command's help text to stdout (its answer to -h / --help) and returns 0. */
int cli_help(const char *cmd);

/* ---- shared helpers (cli.c) ---- */

/* Prints "herd <cmd>: error: <fmt>" and returns 1. */
int cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Same with herd_last_error() as the message. */
int cli_fail_lib(const char *cmd);

/* Option values: parse argv[*i + 1] (advancing *i); false with an error printed when absent or bad. */
bool cli_str(const char *cmd, int argc, char **argv, int *i, const char **out);
bool cli_i64(const char *cmd, int argc, char **argv, int *i, int64_t lo, int64_t hi, int64_t *out);
bool cli_f32(const char *cmd, int argc, char **argv, int *i, float lo, float hi, float *out);

/* Parses a JSON array of token ids ("[1, 2, 3]"). OUT: *ids (caller frees), *n. */
bool cli_parse_ids(const char *cmd, const char *json, size_t len, int32_t **ids, int64_t *n);
/* Writes ids as a JSON array "[1, 2, 3]". */
void cli_print_ids(FILE *fp, const int32_t *ids, int64_t n);

/* Reads the prompt from -p TEXT, -f FILE or stdin. OUT: *text (caller frees), *len. */
bool cli_read_text(const char *cmd, const char *text_arg, const char *file_arg, char **text, size_t *len);

/* One --lora [NAME=]FILE[:SCALE]: NAME (before a '=' that comes before any '/') only serve uses; SCALE a number
 * after the last ':' (default 1). */
typedef struct {
    const char *name; /* NULL: none given */
    char *path;       /* owned */
    float scale;
    char *spec_copy;  /* owned: holds name */
} cli_lora;

/* Common model/context options of run, logits, chat, bench, serve. */
typedef struct {
    const char *model;
    herd_context_params ctx;
    herd_sampler_params samp;
    cli_lora *lora;   /* --lora, in order (owned: cli_common_free) */
    int n_lora;
} cli_common;

void cli_common_init(cli_common *c);
void cli_common_free(cli_common *c);
/* Consumes argv[*i] if it is one of -m -t -c --batch --kv-type --temp --top-k --top-p --min-p
 * --repeat-penalty --repeat-last-n --seed -v --lora. Returns 1 consumed, 0 not ours, -1 error (printed). */
int cli_common_opt(const char *cmd, cli_common *c, int argc, char **argv, int *i);
/* Parses one --lora value into l. false with an error printed. */
bool cli_lora_parse(const char *cmd, const char *spec, cli_lora *l);
/* Loads the --lora adapters for m. OUT: *out (n_lora handles; free with cli_lora_free). false: error printed. */
bool cli_lora_load(const char *cmd, const cli_common *c, const herd_model *m, herd_lora ***out);
void cli_lora_free(herd_lora **a, int n);
/* Loads the --lora adapters and sets them on every sequence of ctx with their scales. OUT: *out as above. */
bool cli_lora_apply(const char *cmd, const cli_common *c, const herd_model *m, herd_context *ctx, herd_lora ***out);

/* ---- speculative decoding options of run and chat (spec_opts.c) ---- */

typedef struct {
    const char *draft_path; /* --draft MODEL */
    int64_t draft_max;      /* --draft-max (16) */
    int64_t draft_min;      /* --draft-min (0) */
    float p_min;            /* --draft-p-min (0) */
    int lookup;             /* --lookup N: prompt-lookup n-grams up to N (0: off) */
    herd_model *model;      /* the loaded draft (owned) */
    herd_context *ctx;      /* its context (owned) */
} cli_spec;

void cli_spec_init(cli_spec *sp);
/* Consumes argv[*i] if it is a speculative option. Returns 1 consumed, 0 not ours, -1 error (printed). */
int cli_spec_opt(const char *cmd, cli_spec *sp, int argc, char **argv, int *i);
/* Checks the options, loads the draft model, refuses one whose vocabulary differs from target's, and makes
 * its context (tctx's length, cp's threads). false: error printed. */
bool cli_spec_load(const char *cmd, cli_spec *sp, const herd_model *target, herd_context *tctx,
                   const herd_context_params *cp);
void cli_spec_params(const cli_spec *sp, herd_generate_params *gp);
/* ", drafted N, accepted M (x%) in S steps" when r was speculative, else "". */
void cli_spec_stats(const herd_generate_result *r, char *buf, size_t cap);
void cli_spec_free(cli_spec *sp);

#endif
