/* What training writes besides checkpoints: the fully fine-tuned model as a GGUF, and the loss curve
 * as an SVG. Both are written to a temporary file beside the target and renamed over it, so a crash
 * never leaves half a file under the target's name. */
#ifndef HERD_TRAIN_SAVE_H
#define HERD_TRAIN_SAVE_H

#include <stdint.h>

#include "../model/model.h"
#include "tmodel.h"

/* The base GGUF with every trained tensor replaced by its values, written in the base tensor's type
 * (F32 / F16 / BF16); every key and every other tensor (rope_freqs) copied as is. */
int train_save_full_gguf(const herd_model *base, const tparam *params, int n, const char *path);

/* The loss curve: training loss per step (and validation loss where measured, NaN elsewhere). */
typedef struct {
    int64_t *step;
    double *loss, *val;
    int64_t n, cap;
} train_history;
void train_history_add(train_history *h, int64_t step, double loss, double val);
void train_history_free(train_history *h);
int train_save_svg(const train_history *h, const char *path, const char *title);

#endif
