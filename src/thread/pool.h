/* A persistent worker pool: threads are created once and run parallel jobs on demand.
 *
 * A job is n_chunks independent pieces of work. pool_for(p, n, fn, arg) calls fn(arg, chunk, ith) once
 * for every chunk < n, on whichever thread claims it (ith: that thread, 0 = the caller, < pool_size),
 * and returns when all are done. Threads claim chunks one at a time from a shared counter, so a thread
 * the scheduler takes off its core (a busy machine, a CPU quota, more threads than cores) delays only
 * the chunk it holds: the others take the rest. The caller waits only for chunks that were claimed,
 * never for a worker that has not woken up yet. Results must not depend on which thread runs a chunk:
 * a chunk's outputs are computed by one thread, in one order, whatever the thread count or timing.
 *
 * Waiting: a thread with nothing to do spins, then sleeps on a futex. It spins up to 1 ms while it has
 * not been preempted for a while (decode issues ~190 small jobs per token, and a kernel wake-up costs
 * 10-50 us), and only 0.5 us once the scheduler has taken its core (a peer that is not running will not
 * finish while we spin on its core), so an idle pool costs no CPU and a contended one wastes little.
 *
 * Sharing the machine: every 0.1 s of jobs the caller measures how much of the CPUs the process may use
 * (its affinity mask) other work kept busy (/proc/stat's ticks less the process's own CPU time, smoothed)
 * and runs the following jobs on as many threads as that leaves CPUs free, at least on the caller alone
 * (pool_active). A caller-driven pool gains nothing from a thread that has no core of its own: only the
 * caller issues the next job, so next to busy processes a second thread mostly waits for the first's
 * time slices (2 cores, 2 busy loops: 2 threads decoded at ~50 % of one uncontended thread, 1 thread at
 * ~70 %). Team jobs (below) are how every thread still helps then: model/relay.c runs a decode step that
 * way while the pool is contended (pool_contended). Results do not change: every job's outputs are
 * computed as with all threads (see above). HERD_DYNAMIC_THREADS=0 keeps every thread in use.
 *
 * pool_run(p, fn, arg) is the (ith, nth) form: fn(arg, i, nth) for i < nth = pool_size, each i once,
 * on any thread (use i, not the calling thread, to pick per-share scratch); see pool_range(). */
#ifndef HERD_THREAD_POOL_H
#define HERD_THREAD_POOL_H

#include <stdbool.h>
#include <stdint.h>

typedef struct thread_pool thread_pool;
typedef void (*pool_fn)(void *arg, int ith, int nth);
typedef void (*pool_chunk_fn)(void *arg, int64_t chunk, int ith);
typedef void (*pool_team_fn)(void *arg, int ith);

/* n_threads >= 1 (1 means: run everything on the caller). NULL with a message on failure. */
thread_pool *pool_new(int n_threads);
void pool_free(thread_pool *p);
int pool_size(const thread_pool *p);
/* Threads in use now, 1 .. pool_size (see "Sharing the machine"). */
int pool_active(const thread_pool *p);
/* Whether new pools adapt the threads in use (HERD_DYNAMIC_THREADS unset or not "0"). */
bool pool_dynamic_enabled(void);
/* n_chunks < 2^31; 0 does nothing; 1, or a pool of one thread, runs on the caller. Not reentrant: one
 * job at a time per pool, issued from one thread. */
void pool_for(thread_pool *p, int64_t n_chunks, pool_chunk_fn fn, void *arg);
void pool_run(thread_pool *p, pool_fn fn, void *arg);

/* Team jobs: pool_team(p) runs fn(arg, ith) (set once with pool_set_team, before the first) on the caller
 * (ith 0) and on every worker, in use or not, and returns when the caller's call returns, without waiting
 * for the workers': fn decides among its callers who does what (model/relay.c: a decode step that any
 * running thread carries forward). A worker may enter fn late, after pool_team returned, even after the
 * next pool_team or pool_for began: fn must then find nothing to do and return. */
void pool_set_team(thread_pool *p, pool_team_fn fn, void *arg);
void pool_team(thread_pool *p);
/* Whether other work takes every CPU: it leaves fewer CPUs free than the pool has threads (pool_active <
 * pool_size), several CPUs are in the mask, and each has another runnable thread (/proc/stat's
 * procs_running, less the pool's own awake threads, smoothed; it counts the whole machine). Only then
 * does a team of threads get more CPU than one thread: with a CPU free one thread has a core to itself
 * (2 cores, 1 busy loop: one thread 103 % of its speed alone, a team of two 76 %), and on one CPU
 * (taskset -c 0) threads only take turns. */
bool pool_contended(const thread_pool *p);

/* Team jobs on a contended machine. A team of n threads next to `others` runnable threads of other work
 * gets about n * n_cpus / (n + others) CPUs' worth of time (2 threads, 2 busy loops, 2 CPUs: one), spread
 * over every CPU it runs on: its threads then run side by side part of the time, where a decode step's
 * phases wait for each other and share the memory bandwidth, and take turns the rest. pool_team_cpus:
 * that share rounded (at least 1), or 0 when it is not fewer CPUs than threads and than n_cpus (or
 * others < 0: no estimate). pool_pin_here puts the workers on that many CPUs of the pool's mask, the
 * caller's own first, and keeps them there until pool_unpin; and the caller on the same CPUs until
 * pool_release_caller (which gives it back its own mask from before). false, the caller unchanged: no
 * share to pin to, the caller already pinned, or the calls failed. With the team staying on its CPUs the
 * kernel's balancer moves other runnable work to the other CPUs. Measured (docs/BENCHMARKS.md, the decode
 * relay): 2 threads next to 2 busy loops on 2 CPUs decode at 84-89 % of one thread's speed alone, not 69-78 %. */
int pool_team_cpus(int n_threads, int n_cpus, double others);
bool pool_pin_here(thread_pool *p);
void pool_release_caller(thread_pool *p);
void pool_unpin(thread_pool *p);

/* The [*begin, *end) share of n items for thread ith of nth (contiguous, sizes differ by <= 1). */
void pool_range(int64_t n, int ith, int nth, int64_t *begin, int64_t *end);

/* How many chunks of at least min_items items to cut n items into for a pool of nth threads: about
 * per_thread chunks per thread, so that a thread that stalls holds up only a small part; never fewer
 * than min(nth, n), whatever min_items. */
int64_t pool_chunks(int64_t n, int nth, int64_t per_thread, int64_t min_items);

#endif
