/* A persistent worker pool: threads are created once and run parallel-for jobs on demand.
 *
 * pool_run(p, fn, arg) calls fn(arg, ith, nth) on every thread (the caller is thread 0) and
 * returns when all have finished. Workers spin briefly for the next job (decode issues hundreds of
 * small jobs per token, so waking through the kernel each time would dominate), then sleep on a
 * condition variable. Jobs split work by (ith, nth) row ranges: see pool_range(). */
#ifndef HERD_THREAD_POOL_H
#define HERD_THREAD_POOL_H

#include <stdint.h>

typedef struct thread_pool thread_pool;
typedef void (*pool_fn)(void *arg, int ith, int nth);

/* n_threads >= 1 (1 means: run everything on the caller). NULL with a message on failure. */
thread_pool *pool_new(int n_threads);
void pool_free(thread_pool *p);
int pool_size(const thread_pool *p);
void pool_run(thread_pool *p, pool_fn fn, void *arg);

/* The [*begin, *end) share of n items for thread ith of nth (contiguous, sizes differ by <= 1). */
void pool_range(int64_t n, int ith, int nth, int64_t *begin, int64_t *end);

#endif
