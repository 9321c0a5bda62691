/* The pool of pool.h: chunks claimed from per-thread ranges (stolen when a thread lags), adaptive spins,
 * futex sleeps (Linux). */
#include "pool.h"

#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../base/log.h"
#include "cpus.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

/* Spin budget of one wait, in ns, adapted per thread from how long its waits that had to sleep
 * turned out to be. A wait that slept but ended within SPIN_MAX_NS would have been cheaper spun: the
 * budget grows to cover it (1.5x its length, at least double). One that lasted longer (the peer we wait
 * for is off its core: busy neighbours, a CPU quota; or there is simply no work) halves it. On a machine
 * we have to ourselves the waits inside a forward pass (a peer's last chunk: up to ~0.5 ms on an 8B
 * layer; a few us of serial work on the caller) are then spun, without a futex wake-up per job (~190
 * jobs per decoded token; a wake-up costs 10-50 us on a VM), while a contended thread spins little and
 * sleeps. A pool with more threads than the CPUs it may run on (taskset, cpuset) never spins longer than
 * SPIN_MIN_NS: the peer cannot run while we spin on its core. */
#define SPIN_MAX_NS 1000000
#define SPIN_MIN_NS 500
/* A thread that the scheduler preempts more than CONTENDED_PER_S times a second (its involuntary context
 * switches, getrusage RUSAGE_THREAD, counted over windows of at least WINDOW_NS) shares its core with
 * other work: it spins SPIN_MIN_NS only, whatever its waits were. Measured here: ~40 a second per thread
 * on a quiet machine, 300-1000 next to busy processes. A thread that sleeps at once when it waits wakes
 * with the scheduler's favour (a sleeper preempts a busy loop); one that spins has spent its share. */
#define CONTENDED_PER_S 150
#define WINDOW_NS 50000000

typedef struct {
    int64_t budget;      /* ns, adapted by spin_adapt */
    int64_t win_start;   /* the current window of the preemption count */
    long nivcsw;         /* the count at its start */
    bool contended;      /* the last window's verdict */
} spin_state;

/* A job's chunks are cut into one contiguous range per thread (pool_range), each with its claim word:
 * the job's generation in the high 32 bits, the next unclaimed chunk of the range in the low 32;
 * CLOSED once the range's last chunk is claimed. Thread i claims from range i first, in order, so on a
 * machine we have to ourselves every thread streams through the same rows in every pass, as a static
 * split would (one sequential stream, and the same data in the same core's caches token after token);
 * then it takes chunks from the others' ranges, so a thread the scheduler parks holds up only the
 * chunk it is in. A late worker holding an old generation fails its CAS, so it never touches a later
 * job's chunks, and the caller never waits for it. */
#define CLOSED 0xffffffffu

typedef struct {
    _Alignas(64) _Atomic uint64_t w; /* gen << 32 | next chunk of the range, or gen << 32 | CLOSED */
} claim_word;

/* Threads in use (pool.h, "Sharing the machine"): every DYN_WINDOW_NS of jobs the caller reads how busy
 * the CPUs it may use were (cpus_stat_read: /proc/stat's ticks, 100 a second per CPU) and how much of that
 * was this process (CLOCK_PROCESS_CPUTIME_ID); the rest, other work, is smoothed over windows (half the
 * new window, half the old estimate), and the pool runs on the CPUs it leaves free (cpus_free_threads),
 * at least the caller. Measured on 2 cores next to 2 busy loops (docs/BENCHMARKS.md): the caller-driven
 * pool's 2 threads decoded at 41-57 % of 1 thread's uncontended speed, 1 thread at 72 %: with every core
 * taken, a second thread mostly waits for the first's time slices (only the caller issues the next job). */
#define DYN_WINDOW_NS 100000000
#define DYN_FIRST_NS 25000000 /* the first window (from pool_new): a decode of a few hundred tokens is short */

typedef struct {
    thread_pool *pool;
    int ith;
    pthread_t th;
} worker;

struct thread_pool {
    int n;
    worker *w;
    /* the current job; written by the caller before it opens the claim word, read by any thread
     * before its claim (a successful claim proves they were this job's: the next job's are written
     * only after every chunk of this one is done) */
    _Atomic(pool_chunk_fn) fn;
    _Atomic(pool_fn) run_fn; /* pool_run's form, or NULL */
    _Atomic(void *) arg;
    _Atomic uint32_t n_chunks;
    claim_word *claim;        /* [n]: thread i's range of the current job (64-byte aligned) */
    void *claim_mem;
    _Atomic uint32_t done;    /* chunks finished (futex word of the caller's wait) */
    _Atomic int caller_sleeps;
    _Atomic uint32_t gen;     /* the job's generation (futex word of the workers' wait) */
    _Atomic int sleepers;     /* workers asleep or about to be */
    _Atomic bool stop;
    int64_t spin_max;      /* SPIN_MAX_NS, or SPIN_MIN_NS with fewer CPUs than threads */
    spin_state caller;     /* the caller's (one caller at a time) */
    /* threads in use; 1 = jobs run on the caller. Workers ith >= active sleep on kick (futex word), which
     * changes with active and with every team job */
    _Atomic uint32_t active;
    _Atomic uint32_t kick;
    /* team jobs (pool_team): the function every thread runs, set once; team_seq counts the jobs */
    pool_team_fn team_fn;
    void *team_arg;
    _Atomic uint32_t team_seq;
    bool dynamic;          /* HERD_DYNAMIC_THREADS unset or not "0" */
    cpu_set_t cpus;        /* the affinity mask at pool_new */
    int n_cpus;
    int64_t dyn_t0, dyn_own0; /* the window's start: wall ns, process CPU ns */
    uint64_t dyn_busy0, dyn_total0;
    double dyn_others;     /* smoothed CPUs' worth of other work; < 0: no window yet */
    double dyn_running;    /* smoothed count of other runnable threads (procs_running); < 0: none yet */
    _Atomic bool crowded;  /* every CPU of the mask has another runnable thread (pool_contended) */
    /* pool_pin_here: the workers on team_set until pool_unpin, the caller until pool_release_caller (its own
     * mask from before in caller_mask) */
    bool team_pinned, caller_pinned;
    cpu_set_t team_set, caller_mask;
};

static long futex(_Atomic uint32_t *addr, int op, uint32_t val) {
    return syscall(SYS_futex, (uint32_t *)addr, op | FUTEX_PRIVATE_FLAG, val, NULL, NULL, 0);
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Spins until *word != val or budget ns pass; true if it changed. */
static bool spin_while_eq(_Atomic uint32_t *word, uint32_t val, int64_t budget) {
    int64_t t0 = 0;
    for (unsigned i = 0;; i++) {
        if (atomic_load_explicit(word, memory_order_acquire) != val) return true;
        if (i % 32 == 0) {
            int64_t t = now_ns();
            if (i == 0) t0 = t;
            else if (t - t0 > budget) return false;
        }
        CPU_RELAX();
    }
}

/* The budget of this thread's next wait: SPIN_MIN_NS while it is contended (see CONTENDED_PER_S). */
static int64_t spin_budget(spin_state *st) {
    int64_t t = now_ns();
    if (t - st->win_start >= WINDOW_NS) {
        struct rusage ru;
        if (getrusage(RUSAGE_THREAD, &ru) == 0) {
            st->contended = st->win_start > 0 &&
                            (double)(ru.ru_nivcsw - st->nivcsw) * 1e9 > (double)CONTENDED_PER_S * (double)(t - st->win_start);
            st->nivcsw = ru.ru_nivcsw;
        }
        st->win_start = t;
    }
    return st->contended ? SPIN_MIN_NS : st->budget;
}

/* Adapts *budget after a wait that began at t0 and had to sleep (see SPIN_MAX_NS). */
static void spin_adapt(int64_t *budget, int64_t t0, int64_t max) {
    int64_t w = now_ns() - t0, b = *budget;
    if (w <= max) {
        b = b * 2 > w + w / 2 ? b * 2 : w + w / 2;
        *budget = b > max ? max : b;
    } else {
        *budget = b / 2 < SPIN_MIN_NS ? SPIN_MIN_NS : b / 2;
    }
}

/* Claims the next chunk of range r of generation g: its index, or -1 when none is left (or g is over). */
static int64_t claim_in(thread_pool *p, int r, uint32_t g) {
    _Atomic uint64_t *cw = &p->claim[r].w;
    uint64_t w = atomic_load(cw);
    for (;;) {
        uint32_t idx = (uint32_t)w;
        if ((uint32_t)(w >> 32) != g || idx == CLOSED) return -1;
        int64_t b, e;
        pool_range(atomic_load(&p->n_chunks), r, p->n, &b, &e);
        uint64_t next = (uint64_t)g << 32 | (idx + 1 >= e ? CLOSED : idx + 1);
        if (atomic_compare_exchange_weak(cw, &w, next)) return idx;
    }
}

/* Claims the next chunk of generation g for thread ith: from its own range, then from the others'. */
static int64_t claim(thread_pool *p, uint32_t g, int ith) {
    for (int k = 0; k < p->n; k++) {
        int64_t c = claim_in(p, (ith + k) % p->n, g);
        if (c >= 0) return c;
    }
    return -1;
}

/* Runs chunks of generation g until none is left. */
static void work(thread_pool *p, uint32_t g, int ith) {
    for (int64_t c; (c = claim(p, g, ith)) >= 0;) {
        pool_fn rf = atomic_load(&p->run_fn);
        void *arg = atomic_load(&p->arg);
        if (rf) rf(arg, (int)c, p->n);
        else atomic_load(&p->fn)(arg, c, ith);
        uint32_t n = atomic_load(&p->n_chunks);
        if (atomic_fetch_add(&p->done, 1) + 1 == n && atomic_load(&p->caller_sleeps)) futex(&p->done, FUTEX_WAKE, 1);
    }
}

/* Whether worker ith, having run team jobs up to seen_team, may sleep on kick: out of use, no team job
 * waiting, not stopping. */
static bool idle_out_of_use(thread_pool *p, int ith, uint32_t seen_team) {
    return atomic_load(&p->active) <= (uint32_t)ith && atomic_load(&p->team_seq) == seen_team && !atomic_load(&p->stop);
}

static void *worker_main(void *arg) {
    worker *self = arg;
    thread_pool *p = self->pool;
    uint32_t seen = 0, seen_team = 0;
    spin_state st = {.budget = p->spin_max};
    for (;;) {
        for (uint32_t k; idle_out_of_use(p, self->ith, seen_team);) {
            k = atomic_load(&p->kick);
            if (idle_out_of_use(p, self->ith, seen_team)) futex(&p->kick, FUTEX_WAIT, k);
        }
        uint32_t ts = atomic_load(&p->team_seq);
        if (ts != seen_team && !atomic_load(&p->stop)) { /* a team job (every thread, in use or not) */
            seen_team = ts;
            p->team_fn(p->team_arg, self->ith);
            continue; /* a job published meanwhile: gen != seen, joined at once */
        }
        int64_t t0 = now_ns();
        if (!spin_while_eq(&p->gen, seen, spin_budget(&st))) {
            atomic_fetch_add(&p->sleepers, 1);
            while (atomic_load(&p->gen) == seen) futex(&p->gen, FUTEX_WAIT, seen);
            atomic_fetch_sub(&p->sleepers, 1);
            spin_adapt(&st.budget, t0, p->spin_max);
        }
        seen = atomic_load(&p->gen);
        if (atomic_load(&p->stop)) return NULL;
        if (atomic_load(&p->team_seq) != seen_team) continue; /* the team job first */
        if (atomic_load(&p->active) <= (uint32_t)self->ith) continue; /* out of use since: the others do it */
        work(p, seen, self->ith);
    }
}

static void dyn_update(thread_pool *p, int64_t t);

thread_pool *pool_new(int n_threads) {
    if (n_threads < 1) n_threads = 1;
    thread_pool *p = herd_xcalloc(1, sizeof *p);
    p->n = n_threads;
    p->w = herd_xcalloc((size_t)n_threads, sizeof *p->w);
    p->n_cpus = sched_getaffinity(0, sizeof p->cpus, &p->cpus) == 0 ? CPU_COUNT(&p->cpus) : 0;
    p->spin_max = p->n_cpus > 0 && p->n_cpus < n_threads ? SPIN_MIN_NS : SPIN_MAX_NS;
    p->caller.budget = p->spin_max;
    p->dynamic = n_threads > 1 && p->n_cpus > 0 && pool_dynamic_enabled();
    p->dyn_others = -1;
    p->dyn_running = -1;
    atomic_store(&p->active, (uint32_t)n_threads);
    if (p->dynamic) dyn_update(p, now_ns()); /* the first window starts here */
    p->claim_mem = herd_xcalloc((size_t)n_threads + 1, sizeof *p->claim); /* + 1: room to align */
    p->claim = (claim_word *)(((uintptr_t)p->claim_mem + 63) & ~(uintptr_t)63);
    for (int i = 0; i < n_threads; i++) atomic_store(&p->claim[i].w, CLOSED);
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

/* Opens generation gen+1 (its job already written) and wakes the sleeping workers. */
static uint32_t publish(thread_pool *p) {
    uint32_t g = atomic_load(&p->gen) + 1;
    atomic_store(&p->done, 0);
    uint32_t n = atomic_load(&p->n_chunks);
    for (int i = 0; i < p->n; i++) {
        int64_t b, e;
        pool_range(n, i, p->n, &b, &e);
        atomic_store(&p->claim[i].w, (uint64_t)g << 32 | (b < e ? (uint32_t)b : CLOSED));
    }
    atomic_store(&p->gen, g);
    if (atomic_load(&p->sleepers) > 0) futex(&p->gen, FUTEX_WAKE, INT_MAX);
    return g;
}

void pool_free(thread_pool *p) {
    if (!p) return;
    atomic_store(&p->stop, true);
    atomic_fetch_add(&p->kick, 1);
    futex(&p->kick, FUTEX_WAKE, INT_MAX);
    atomic_store(&p->n_chunks, 0);
    publish(p);
    for (int i = 1; i < p->n; i++) pthread_join(p->w[i].th, NULL);
    free(p->w);
    free(p->claim_mem);
    free(p);
}

int pool_size(const thread_pool *p) {
    return p->n;
}

bool pool_dynamic_enabled(void) {
    const char *dyn = getenv("HERD_DYNAMIC_THREADS");
    return !(dyn && !strcmp(dyn, "0"));
}

int pool_active(const thread_pool *p) {
    return (int)atomic_load(&p->active);
}

/* The caller, every DYN_WINDOW_NS: threads in use from the CPUs other work left free (see DYN_WINDOW_NS). */
static void dyn_update(thread_pool *p, int64_t t) {
    uint64_t busy, total;
    int running;
    struct timespec ts;
    if (!cpus_stat_read(NULL, &p->cpus, &busy, &total, &running) || clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0) {
        p->dynamic = false; /* no /proc: every thread, always */
        return;
    }
    int64_t own = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    if (p->dyn_t0 > 0 && total > p->dyn_total0 && t > p->dyn_t0) {
        double busy_cpus = (double)p->n_cpus * (double)(busy - p->dyn_busy0) / (double)(total - p->dyn_total0);
        double own_cpus = (double)(own - p->dyn_own0) / (double)(t - p->dyn_t0);
        double others = busy_cpus - own_cpus < 0 ? 0 : busy_cpus - own_cpus;
        /* down on the smoothed estimate (a neighbour that lasts), up at once on one window's (a burst, say a
         * process starting next to us, must not keep a short run on fewer threads) */
        p->dyn_others = p->dyn_others < 0 ? others : 0.5 * p->dyn_others + 0.5 * others;
        uint32_t was = atomic_load(&p->active), k = (uint32_t)cpus_free_threads(p->n, p->n_cpus, others);
        if (k > was) p->dyn_others = others;
        else k = (uint32_t)cpus_free_threads(p->n, p->n_cpus, p->dyn_others);
        /* other runnable threads: procs_running (the whole machine's) less the caller and the workers in use
         * and not asleep */
        if (running >= 0) {
            int awake = (int)was - 1 - atomic_load(&p->sleepers);
            double o = (double)(running - 1 - (awake > 0 ? awake : 0));
            p->dyn_running = p->dyn_running < 0 ? o : 0.5 * p->dyn_running + 0.5 * o;
            atomic_store(&p->crowded, p->dyn_running >= (double)p->n_cpus - 0.5);
        }
        if (k != was) {
            atomic_store(&p->active, k);
            atomic_fetch_add(&p->kick, 1);
            if (k > was) futex(&p->kick, FUTEX_WAKE, INT_MAX);
        }
    }
    p->dyn_t0 = t;
    p->dyn_own0 = own;
    p->dyn_busy0 = busy;
    p->dyn_total0 = total;
}

static void dyn_maybe_update(thread_pool *p) {
    if (p->dynamic) {
        int64_t t = now_ns();
        if (t - p->dyn_t0 >= (p->dyn_others < 0 ? DYN_FIRST_NS : DYN_WINDOW_NS)) dyn_update(p, t);
    }
}

static void run_job(thread_pool *p, int64_t n_chunks, pool_chunk_fn fn, pool_fn rf, void *arg) {
    HERD_ASSERT(n_chunks >= 0 && n_chunks < INT_MAX);
    if (n_chunks == 0) return;
    dyn_maybe_update(p);
    if (p->n == 1 || n_chunks == 1 || atomic_load(&p->active) == 1) {
        for (int64_t c = 0; c < n_chunks; c++) rf ? rf(arg, (int)c, p->n) : fn(arg, c, 0);
        return;
    }
    atomic_store(&p->fn, fn);
    atomic_store(&p->run_fn, rf);
    atomic_store(&p->arg, arg);
    atomic_store(&p->n_chunks, (uint32_t)n_chunks);
    uint32_t g = publish(p);
    work(p, g, 0);
    /* every chunk is claimed; wait for the ones other threads still hold */
    uint32_t d, n = (uint32_t)n_chunks;
    int64_t t0 = now_ns();
    bool slept = false;
    while ((d = atomic_load(&p->done)) != n) {
        if (spin_while_eq(&p->done, d, spin_budget(&p->caller))) continue;
        atomic_store(&p->caller_sleeps, 1);
        if ((d = atomic_load(&p->done)) != n) futex(&p->done, FUTEX_WAIT, d);
        atomic_store(&p->caller_sleeps, 0);
        slept = true;
    }
    if (slept) spin_adapt(&p->caller.budget, t0, p->spin_max);
}

void pool_for(thread_pool *p, int64_t n_chunks, pool_chunk_fn fn, void *arg) {
    run_job(p, n_chunks, fn, NULL, arg);
}

void pool_run(thread_pool *p, pool_fn fn, void *arg) {
    run_job(p, p->n, NULL, fn, arg);
}

void pool_set_team(thread_pool *p, pool_team_fn fn, void *arg) {
    HERD_ASSERT(atomic_load(&p->team_seq) == 0);
    p->team_fn = fn;
    p->team_arg = arg;
}

void pool_team(thread_pool *p) {
    HERD_ASSERT(p->team_fn);
    dyn_maybe_update(p);
    if (p->n > 1) {
        atomic_fetch_add(&p->team_seq, 1);
        /* workers in use wait on gen: an empty job wakes them (its claim words closed) */
        atomic_store(&p->n_chunks, 0);
        publish(p);
        if (atomic_load(&p->active) < (uint32_t)p->n) {
            atomic_fetch_add(&p->kick, 1);
            futex(&p->kick, FUTEX_WAKE, INT_MAX);
        }
    }
    p->team_fn(p->team_arg, 0);
}

int pool_team_cpus(int n_threads, int n_cpus, double others) {
    if (n_threads < 2 || n_cpus < 2 || others < 0) return 0;
    double share = (double)n_threads * n_cpus / (n_threads + others);
    int k = (int)(share + 0.5);
    if (k < 1) k = 1;
    return k < n_threads && k < n_cpus ? k : 0;
}

bool pool_pin_here(thread_pool *p) {
    if (p->caller_pinned) return false;
    if (!p->team_pinned) { /* the team's CPUs: the caller's, then the mask's next ones (wrapping) */
        int k = pool_team_cpus(p->n, p->n_cpus, p->dyn_running), cpu = sched_getcpu();
        if (k < 1 || cpu < 0 || !CPU_ISSET(cpu, &p->cpus)) return false;
        CPU_ZERO(&p->team_set);
        for (int c = cpu, got = 0; got < k; c = (c + 1) % CPU_SETSIZE)
            if (CPU_ISSET(c, &p->cpus)) CPU_SET(c, &p->team_set), got++;
        for (int i = 1; i < p->n; i++) pthread_setaffinity_np(p->w[i].th, sizeof p->team_set, &p->team_set);
        p->team_pinned = true;
    }
    if (pthread_getaffinity_np(pthread_self(), sizeof p->caller_mask, &p->caller_mask) != 0 ||
        pthread_setaffinity_np(pthread_self(), sizeof p->team_set, &p->team_set) != 0)
        return false;
    p->caller_pinned = true;
    return true;
}

void pool_release_caller(thread_pool *p) {
    if (!p->caller_pinned) return;
    pthread_setaffinity_np(pthread_self(), sizeof p->caller_mask, &p->caller_mask);
    p->caller_pinned = false;
}

void pool_unpin(thread_pool *p) {
    pool_release_caller(p);
    if (!p->team_pinned) return;
    for (int i = 1; i < p->n; i++) pthread_setaffinity_np(p->w[i].th, sizeof p->cpus, &p->cpus);
    p->team_pinned = false;
}

bool pool_contended(const thread_pool *p) {
    return p->n_cpus > 1 && atomic_load(&p->active) < (uint32_t)p->n && atomic_load(&p->crowded);
}

void pool_range(int64_t n, int ith, int nth, int64_t *begin, int64_t *end) {
    int64_t q = n / nth, r = n % nth;
    *begin = ith * q + (ith < r ? ith : r);
    *end = *begin + q + (ith < r ? 1 : 0);
}

int64_t pool_chunks(int64_t n, int nth, int64_t per_thread, int64_t min_items) {
    if (n <= 0) return 0;
    int64_t c = (int64_t)nth * per_thread, most = min_items > 0 ? n / min_items : n;
    if (c > most) c = most;
    /* never fewer chunks than threads while there are items for each: a small pass still uses every
     * thread, as a static split would */
    if (c < nth) c = nth < n ? nth : n;
    return c;
}
