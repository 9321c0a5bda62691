/* Internal to src/train/data*.c: what the JSONL reader (data_jsonl.c) shares with the loader (data.c). */
#ifndef HERD_TRAIN_DATA_IMPL_H
#define HERD_TRAIN_DATA_IMPL_H

#include <stddef.h>

#include "data.h"

/* Adds one example: k sequences (1, or 2 for a dpo pair, chosen first) whose arrays it takes over
 * (they are freed when the example is dropped). Applies the overlong policy and the no-target rule
 * (data.h) to the example as a whole and updates the counts. */
void train_data_add_example(train_data *d, const train_data_params *p, train_seq *s, int k);

/* sft / dpo / distill-as-sft over text[0..len) (the mapped file; not NUL-terminated). path names the
 * file in errors. 0 ok; HERD_E_FORMAT naming path:line and the field otherwise. */
int train_data_load_jsonl(const herd_model *m, const char *path, const char *text, size_t len,
                          const train_data_params *p, train_data *d);

#endif
