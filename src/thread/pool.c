#include "pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include "../base/log.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

/* spins ~ tens of microseconds before sleeping: long enough to bridge the gap between the jobs of
 * one forward pass, short enough not to burn a core between requests. Every YIELD_EVERY spins the
 * thread yields: when the machine has more runnable threads than cores, the peer we wait for may
 * be waiting for our core, and pure spinning would stall both for a whole scheduler slice. */
#define SPIN_ITERS 20000
#define YIELD_EVERY 64

typedef struct {
    thread_pool *pool;
    int ith;
    pthread_t th;
} worker;

struct thread_pool {
    int n;
    worker *w;
    pool_fn fn;
    void *arg;
    _Atomic uint64_t gen;     /* bumped for each job */
    _Atomic int pending;      /* workers still running the current job */
    _Atomic bool stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int sleepers;             /* guarded by mu */
};

static void *worker_main(void *arg) {
    worker *self = arg;
    thread_pool *p = self->pool;
    uint64_t seen = 0;
    for (;;) {
        uint64_t g;
        int spins = 0;
        while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen && spins < SPIN_ITERS) {
            if (++spins % YIELD_EVERY == 0) sched_yield();
            else CPU_RELAX();
        }
        if (g == seen) {
            pthread_mutex_lock(&p->mu);
            p->sleepers++;
            while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen) pthread_cond_wait(&p->cv, &p->mu);
            p->sleepers--;
            pthread_mutex_unlock(&p->mu);
        }
        seen = g;
        if (atomic_load_explicit(&p->stop, memory_order_acquire)) return NULL;
        p->fn(p->arg, self->ith, p->n);
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel);
    }
}

thread_pool *pool_new(int n_threads) {
    if (n_threads < 1) n_threads = 1;
    thread_pool *p = herd_xcalloc(1, sizeof *p);
    p->n = n_threads;
    p->w = herd_xcalloc((size_t)n_threads, sizeof *p->w);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    for (int i = 1; i < n_threads; i++) {
        p->w[i].pool = p;
        p->w[i].ith = i;
        if (pthread_create(&p->w[i].th, NULL, worker_main, &p->w[i]) != 0) {
            p->n = i; /* stop only the ones that started */
            pool_free(p);
            herd_err(HERD_E_NOMEM, "cannot start worker thread %d of %d", i, n_threads);
            return NULL;
        }
    }
    return p;
}

static void publish(thread_pool *p) {
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_acq_rel);
    if (p->sleepers) pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void pool_free(thread_pool *p) {
    if (!p) return;
    atomic_store(&p->stop, true);
    publish(p);
    for (int i = 1; i < p->n; i++) pthread_join(p->w[i].th, NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->w);
    free(p);
}

int pool_size(const thread_pool *p) {
    return p->n;
}

void pool_run(thread_pool *p, pool_fn fn, void *arg) {
    if (p->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    atomic_store_explicit(&p->pending, p->n - 1, memory_order_release);
    publish(p);
    fn(arg, 0, p->n);
    for (unsigned spins = 1; atomic_load_explicit(&p->pending, memory_order_acquire) > 0; spins++) {
        if (spins % YIELD_EVERY == 0) sched_yield();
        else CPU_RELAX();
    }
}

void pool_range(int64_t n, int ith, int nth, int64_t *begin, int64_t *end) {
    int64_t q = n / nth, r = n % nth;
    *begin = ith * q + (ith < r ? ith : r);
    *end = *begin + q + (ith < r ? 1 : 0);
}
