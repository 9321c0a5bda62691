/* herd eval: llama-perplexity's task modes (src/eval/tasks.c). Internal to src/eval. */
#ifndef HERD_EVAL_TASKS_H
#define HERD_EVAL_TASKS_H

#include <stdint.h>
#include <stdio.h>

#include "herd.h"

/* llama.cpp's mt19937 + std::uniform_int_distribution<size_t>(0, n - 1) as libstdc++ computes it (Lemire's
 * nearly divisionless method on the engine's 32-bit output), so that task selection matches llama.cpp's. */
typedef struct {
    uint32_t mt[624];
    int idx;
} eval_mt19937;
void eval_mt19937_seed(eval_mt19937 *r, uint32_t seed);
uint32_t eval_mt19937_next(eval_mt19937 *r);
/* uniform in [0, n), n >= 1 and < 2^32 */
uint64_t eval_uniform(eval_mt19937 *r, uint64_t n);

/* --hellaswag over text (6 lines per task); c needs 4 sequences. */
int eval_hellaswag(herd_context *c, const char *text, size_t len, int64_t n_tasks, FILE *out, FILE *err);

/* --winogrande over text (llama.cpp's CSV); n_tasks > 0: draw that many; c needs 2 sequences. */
int eval_winogrande(herd_context *c, const char *text, size_t len, int64_t n_tasks, FILE *out, FILE *err);
/* --multiple-choice over text (llama.cpp's binary task file); n_tasks > 0: draw that many; c needs as many
 * sequences as a task has answers. */
int eval_multiple_choice(herd_context *c, const char *text, size_t len, int64_t n_tasks, FILE *out, FILE *err);

#endif
