/* Training checkpoints: one directory holding `state.bin`, everything needed to continue a run
 * exactly: the trainable tensors, the optimizer's moments and step count, the data position (the
 * index of the next example in the run's example stream, whose order is a function of the seed and
 * the epoch) and a fingerprint of the settings that must not change across a resume.
 *
 * File layout (little-endian): "HERDCKPT" | u32 version | u64 step | u64 next_example | u64 seed |
 * u64 opt_t | u32 fingerprint_len | fingerprint | u32 n_tensors | n_tensors x { u32 name_len | name |
 * u64 n | f32 w[n] | u8 has_moments | (f32 m[n] | f32 v[n]) } | u64 FNV-1a of everything before it.
 *
 * What survives a crash: state.bin is written to state.bin.tmp, fsynced and renamed over the old one,
 * so the directory always holds either the previous complete checkpoint or the new one. */
#ifndef HERD_TRAIN_CKPT_H
#define HERD_TRAIN_CKPT_H

#include <stdint.h>

#include "optim.h"
#include "tmodel.h"

typedef struct {
    int64_t step;          /* optimizer steps done */
    int64_t next_example;  /* position in the example stream */
    uint64_t seed;
    const char *fingerprint; /* settings that a resume must match, as text */
} ckpt_meta;

int ckpt_save(const char *dir, const ckpt_meta *meta, const tparam *params, int n, const optim *o);
/* Restores tensors and moments in place (names and sizes must match: otherwise an error naming the
 * tensor); OUT: meta->step, next_example. The fingerprint must equal meta->fingerprint, or the error
 * names the setting that differs. */
int ckpt_load(const char *dir, ckpt_meta *meta, tparam *params, int n, optim *o);

#endif
