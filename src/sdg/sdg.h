/* herd sdg: synthetic data generation — generate K candidates per seed, judge each with an LLM under a
 * rubric, keep the good ones, drop duplicates, write training data `herd train` reads (docs/SDG.md).
 *
 * How: like herd batch (src/batch), the runner starts the server (src/server) on a loopback port with a
 * random API key over the generator's engine (and a second one over the judge's, when it is another
 * model) and posts /v1/chat/completions requests from `parallel` worker threads, so the chat template,
 * sampling, response_format json_schema and continuous batching are the server's own. A worker takes one
 * seed at a time: K generations (sampling seed derived from --seed, the seed's id and k), then K
 * judgments (greedy unless judge_temp, constrained to {"score": 1..10, "reason": string}, score first so that
 * even an answer cut by max_tokens names its score), then the selection under the run's lock.
 *
 * Selection: a candidate is kept when its score >= threshold (best_of: only the highest-scoring one,
 * ties to the lowest k), it is not empty, and its example text (the conversation's contents plus the
 * answer) is neither an exact nor a near duplicate (MinHash Jaccard >= dedupe, minhash.h) of an example
 * already kept in this run or the output. dpo: one pair per seed, the best (>= threshold) as chosen and
 * the worst as rejected, when the best scores strictly higher.
 *
 * Files: the output (JSONL, the training data) and the journal (JSONL, one line per finished seed with
 * every candidate, its score, the judge's reason and its fate). A seed's output lines are written with
 * one write() on an O_APPEND descriptor, then its journal line; both are fdatasync'd at intervals and at
 * the end. Resuming: at start both files are read back (a torn last line is cut off); a seed named in
 * either is done and skipped, and the kept examples go back into the duplicate index. So a rerun after
 * kill -9 or Ctrl-C gives every seed once. */
#ifndef HERD_SDG_H
#define HERD_SDG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../engine/engine.h"
#include "seeds.h"

typedef enum { SDG_TASK_SFT, SDG_TASK_DPO, SDG_TASK_QA, SDG_TASK_COT } sdg_task;

typedef struct {
    sdg_task task;
    const char *output, *journal;
    int k;        /* candidates per seed */
    int parallel; /* seeds worked on at once (requests in flight) */
    float temperature, top_p, min_p;
    int32_t top_k;
    uint64_t seed;
    int64_t max_tokens, judge_max_tokens;
    float judge_temp; /* 0: the judge is greedy (default); else it samples, seeded per candidate */
    int threshold;    /* 1..10 */
    bool best_of;
    double dedupe;                 /* near-duplicate Jaccard threshold; > 1: exact duplicates only */
    const char *system;            /* a system prompt for generation (kept in the output), or NULL */
    const char *rubric;            /* the judge's rubric, or NULL: the task's default */
    const char *gen_id, *judge_id; /* the model names the servers answer to */
    int64_t n_ctx_slot, judge_ctx_slot;
    bool progress;
    double fsync_interval_s;
} sdg_config;

typedef struct {
    int64_t seeds, skipped;               /* all seeds; done in an earlier run */
    int64_t done, candidates, gen_failed; /* this run */
    int64_t judged, judge_failed;         /* judge answers with a score / without */
    int64_t kept, below, duplicates,
        lines; /* candidates kept, under the threshold, duplicates; lines written */
    int64_t gen_prompt_tokens, gen_tokens, judge_prompt_tokens, judge_tokens;
    double seconds;
    int64_t torn_bytes;
} sdg_stats;

/* Runs the pipeline over engines gen and judge (judge NULL: the generator judges), both borrowed.
 * HERD_E_IO for unwritable files or a server that stopped answering; HERD_OK otherwise (a seed whose
 * requests were refused is recorded in the journal with the reason). */
int sdg_run(engine *gen, engine *judge, const sdg_seeds *seeds, const sdg_config *cfg, sdg_stats *st);

/* The judge's score from its answer (a JSON object, or a prefix of one cut short): 1..10, or 0 when the
 * answer names none. *reason (may be NULL) gets the reason string when the answer is complete (malloc'd). */
int sdg_judge_score(const char *answer, size_t len, char **reason);

#endif
