/* The thread pool (src/thread/pool.h) and the default thread count (src/thread/cpus.h):
 *   - pool_for runs every chunk exactly once, on a valid ith, for any chunk count and pool size, also
 *     when a thread stalls in the middle of a job (another takes the rest);
 *   - pool_run gives each share i < nth once;
 *   - idle workers sleep: their CPU time barely grows over a second with no job (read from
 *     /proc/self/task/TID/stat; a spinning thread would gain ~100 ticks);
 *   - the thread count honours the affinity mask and a cgroup CPU quota, read from a fake cgroup tree
 *     (v2 cpu.max along the path, v1 cfs_quota_us / cfs_period_us, hybrid unified/, no limit);
 *   - threads in use follow other work: next to as many busy-loop processes as CPUs the pool drops to
 *     fewer threads, and returns to all of them once they stop; HERD_DYNAMIC_THREADS=0 keeps all;
 *     /proc/stat's per-CPU lines and procs_running read for a CPU set (fake file), the free-thread rule;
 *     the pool sees itself contended (pool_contended: the decode relay's switch) next to them, not after. */
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <dirent.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "thread/cpus.h"
#include "thread/pool.h"

typedef struct {
    _Atomic int hits[512];
    _Atomic int bad_ith;
    int nth;
    int64_t stall_chunk; /* this chunk sleeps 20 ms (a descheduled thread); -1 none */
} count_job;

static void count_chunk(void *arg, int64_t c, int ith) {
    count_job *j = arg;
    if (ith < 0 || ith >= j->nth) atomic_fetch_add(&j->bad_ith, 1);
    if (c == j->stall_chunk) nanosleep(&(struct timespec){0, 20000000}, NULL);
    atomic_fetch_add(&j->hits[c], 1);
}

static void count_share(void *arg, int ith, int nth) {
    count_job *j = arg;
    if (nth != j->nth || ith < 0 || ith >= nth) atomic_fetch_add(&j->bad_ith, 1);
    atomic_fetch_add(&j->hits[ith], 1);
}

static void test_chunks(void) {
    setenv("HERD_DYNAMIC_THREADS", "0", 1); /* every thread in every job, whatever else the machine runs */
    for (int nth = 1; nth <= 4; nth++) {
        thread_pool *p = pool_new(nth);
        CHECK(p && pool_size(p) == nth, "pool of %d", nth);
        bool ok = true;
        for (int rep = 0; rep < 200; rep++) {
            int64_t n = rep % 67 + (rep % 3 == 0 ? 400 : 0);
            count_job j = {.nth = nth, .stall_chunk = rep % 50 == 7 ? n / 2 : -1};
            pool_for(p, n, count_chunk, &j);
            for (int64_t c = 0; c < 512; c++) ok &= atomic_load(&j.hits[c]) == (c < n ? 1 : 0);
            ok &= atomic_load(&j.bad_ith) == 0;
        }
        CHECK(ok, "%d threads: every chunk of every job ran exactly once on a valid thread", nth);
        count_job j = {.nth = nth};
        pool_run(p, count_share, &j);
        bool once = atomic_load(&j.bad_ith) == 0;
        for (int i = 0; i < 512; i++) once &= atomic_load(&j.hits[i]) == (i < nth ? 1 : 0);
        CHECK(once, "%d threads: pool_run gives each share once", nth);
        pool_free(p);
    }
    unsetenv("HERD_DYNAMIC_THREADS");
    CHECK(pool_chunks(1000, 2, 8, 10) == 16 && pool_chunks(100, 2, 8, 10) == 10 && pool_chunks(5, 4, 8, 10) == 4 && pool_chunks(3, 4, 8, 10) == 3 &&
              pool_chunks(0, 2, 8, 1) == 0,
          "pool_chunks: %lld %lld %lld", (long long)pool_chunks(1000, 2, 8, 10), (long long)pool_chunks(100, 2, 8, 10),
          (long long)pool_chunks(5, 4, 8, 10));
}

/* utime + stime of every thread of this process but the calling one, in clock ticks */
static long long others_cpu_ticks(int *n_threads) {
    long long sum = 0;
    *n_threads = 0;
    DIR *d = opendir("/proc/self/task");
    if (!d) return -1;
    pid_t self = (pid_t)gettid();
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.' || atoi(e->d_name) == self) continue;
        char path[300], buf[1024];
        snprintf(path, sizeof path, "/proc/self/task/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t k = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[k] = 0;
        char *s = strrchr(buf, ')'); /* fields after the command name: state is field 3, utime 14, stime 15 */
        unsigned long long ut = 0, st = 0;
        if (s && sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) == 2) {
            sum += (long long)(ut + st);
            (*n_threads)++;
        }
    }
    closedir(d);
    return sum;
}

static void test_idle_sleeps(void) {
    thread_pool *p = pool_new(4);
    for (int rep = 0; rep < 50; rep++) { /* some work first, so that the workers' spin budgets are at their top */
        count_job j = {.nth = 4, .stall_chunk = -1};
        pool_for(p, 64, count_chunk, &j);
    }
    nanosleep(&(struct timespec){0, 50000000}, NULL);
    int nt0, nt1;
    long long t0 = others_cpu_ticks(&nt0);
    nanosleep(&(struct timespec){1, 0}, NULL);
    long long t1 = others_cpu_ticks(&nt1);
    long hz = sysconf(_SC_CLK_TCK);
    CHECK(nt0 == 3 && nt1 == 3, "3 worker threads seen (%d, %d)", nt0, nt1);
    /* a worker that spun through the second would gain hz ticks; allow a few for wake-ups */
    CHECK(t0 >= 0 && t1 - t0 <= hz / 20, "idle workers used %lld ticks in 1 s (at most %ld allowed)", t1 - t0, hz / 20);
    printf("idle: 3 workers used %lld of %ld ticks per thread-second\n", t1 - t0, hz);
    pool_free(p);
}

static void put(const char *dir, const char *file, const char *text) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "w");
    if (f) fputs(text, f), fclose(f);
}

static void mkdirs(const char *path) {
    char b[512];
    snprintf(b, sizeof b, "%s", path);
    for (char *s = b + 1; *s; s++)
        if (*s == '/') *s = 0, mkdir(b, 0755), *s = '/';
    mkdir(b, 0755);
}

static void test_cgroup(void) {
    char root[] = "/tmp/herd-test-cg.XXXXXX";
    CHECK(mkdtemp(root), "mkdtemp");
    char d[512], pc[512];
    snprintf(pc, sizeof pc, "%s/proc-cgroup", root);
    cpu_share s;
    cpu_set_t all;
    sched_getaffinity(0, sizeof all, &all);
    const int aff = CPU_COUNT(&all);

    /* v2: the path's own cpu.max is "max", its parent's 1.5 CPUs, the grandparent's 3: 1.5 -> 2 threads */
    put(root, "proc-cgroup", "0::/a/b/c\n");
    snprintf(d, sizeof d, "%s/v2/a/b/c", root), mkdirs(d), put(d, "cpu.max", "max 100000\n");
    snprintf(d, sizeof d, "%s/v2/a/b", root), put(d, "cpu.max", "150000 100000\n");
    snprintf(d, sizeof d, "%s/v2/a", root), put(d, "cpu.max", "300000 100000\n");
    snprintf(d, sizeof d, "%s/v2", root);
    cpus_share_read(pc, d, &s);
    CHECK(fabs(s.quota_cpus - 1.5) < 1e-9 && s.n_threads == (aff < 2 ? aff : 2), "v2 quota 1.5 along the path: %g, %d threads (%s)",
          s.quota_cpus, s.n_threads, s.why);
    CHECK(strstr(s.why, "cpu.max") != NULL, "why names cpu.max: %s", s.why);

    /* v2 at the mount's root (a container: /proc/self/cgroup says "/"): 0.5 CPUs -> 1 thread */
    put(root, "proc-cgroup", "0::/\n");
    snprintf(d, sizeof d, "%s/v2c", root), mkdirs(d), put(d, "cpu.max", "50000 100000\n");
    cpus_share_read(pc, d, &s);
    CHECK(fabs(s.quota_cpus - 0.5) < 1e-9 && s.n_threads == 1, "v2 container root quota 0.5: %g, %d", s.quota_cpus, s.n_threads);

    /* v2 path missing under the mount: the root's quota still applies */
    put(root, "proc-cgroup", "0::/not/here\n");
    cpus_share_read(pc, d, &s);
    CHECK(s.n_threads == 1, "v2 missing path, root quota: %d (%s)", s.n_threads, s.why);

    /* v1: cpu,cpuacct mount, quota 1 CPU (100 ms per 100 ms) on the process's cgroup; v2 line without limits */
    put(root, "proc-cgroup", "12:memory:/x\n3:cpu,cpuacct:/docker/abc\n0::/\n");
    snprintf(d, sizeof d, "%s/v1/cpu,cpuacct/docker/abc", root), mkdirs(d);
    put(d, "cpu.cfs_quota_us", "100000\n"), put(d, "cpu.cfs_period_us", "100000\n");
    snprintf(d, sizeof d, "%s/v1/cpu,cpuacct/docker", root), put(d, "cpu.cfs_quota_us", "-1\n"), put(d, "cpu.cfs_period_us", "100000\n");
    snprintf(d, sizeof d, "%s/v1", root);
    cpus_share_read(pc, d, &s);
    CHECK(fabs(s.quota_cpus - 1.0) < 1e-9 && s.n_threads == 1 && strstr(s.why, "cfs_quota_us"), "v1 quota 1: %g, %d (%s)",
          s.quota_cpus, s.n_threads, s.why);

    /* hybrid: v2 mounted at unified/ with a limit of 1 CPU */
    put(root, "proc-cgroup", "1:cpu:/\n0::/svc\n");
    snprintf(d, sizeof d, "%s/hy/unified/svc", root), mkdirs(d), put(d, "cpu.max", "100000 100000\n");
    snprintf(d, sizeof d, "%s/hy", root);
    cpus_share_read(pc, d, &s);
    CHECK(s.n_threads == 1, "hybrid unified/ quota 1: %d (%s)", s.n_threads, s.why);

    /* no limits anywhere, or no cgroup file: the affinity mask decides */
    put(root, "proc-cgroup", "0::/a/b/c\n");
    snprintf(d, sizeof d, "%s/none", root), mkdirs(d);
    cpus_share_read(pc, d, &s);
    CHECK(s.quota_cpus == 0 && s.n_threads == aff && s.n_affinity == aff, "no quota: %d threads of affinity %d", s.n_threads, aff);
    snprintf(pc, sizeof pc, "%s/absent", root);
    cpus_share_read(pc, d, &s);
    CHECK(s.n_threads == aff, "no cgroup file: %d", s.n_threads);

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    CHECK(system(cmd) == 0, "cleanup");
}

static void test_affinity(void) {
    cpu_set_t old, one;
    sched_getaffinity(0, sizeof old, &old);
    int first = -1;
    for (int i = 0; i < CPU_SETSIZE && first < 0; i++)
        if (CPU_ISSET(i, &old)) first = i;
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    CHECK(sched_setaffinity(0, sizeof one, &one) == 0, "pin to CPU %d", first);
    cpu_share s;
    cpus_share_read("/nonexistent", "/nonexistent", &s);
    CHECK(s.n_affinity == 1 && s.n_threads == 1, "pinned to one CPU: %d threads (%s)", s.n_threads, s.why);
    sched_setaffinity(0, sizeof old, &old);
}

static void test_stat_read(void) {
    char dir[] = "/tmp/herd-stat-XXXXXX", path[64];
    CHECK(mkdtemp(dir) != NULL, "temp dir");
    snprintf(path, sizeof path, "%s/stat", dir);
    put(dir, "stat",
        "cpu  100 100 100 100 100 100 100 100 0 0\n"
        "cpu0 1 2 3 40 5 6 7 8 0 0\n"
        "cpu1 10 20 30 400 50 60 70 80 0 0\n"
        "cpuX 1 1 1 1\n"
        "cpu2 1000 0 0 1000\n" /* an old kernel's 4 fields */
        "intr 12345 1 2 3\n"
        "procs_running 3\n");
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(1, &set);
    uint64_t b = 0, t = 0;
    int run = 0;
    CHECK(cpus_stat_read(path, &set, &b, &t, &run) && b == 10 + 20 + 30 + 60 + 70 + 80 && t == b + 400 + 50 && run == 3,
          "cpu1: busy %llu total %llu running %d", (unsigned long long)b, (unsigned long long)t, run);
    CHECK(cpus_stat_read(path, NULL, &b, &t, NULL) && b == (1 + 2 + 3 + 6 + 7 + 8) + 270 + 1000 && t == b + 45 + 450 + 1000,
          "all CPUs: busy %llu total %llu", (unsigned long long)b, (unsigned long long)t);
    CPU_ZERO(&set);
    CPU_SET(5, &set);
    CHECK(!cpus_stat_read(path, &set, &b, &t, &run), "a set none of whose CPUs the file names");
    CHECK(!cpus_stat_read("/nonexistent/stat", NULL, &b, &t, NULL), "no file");
    put(dir, "stat", "cpu0 1 2 3 40 5 6 7 8 0 0\n");
    CHECK(cpus_stat_read(path, NULL, &b, &t, &run) && run == -1, "no procs_running line: %d", run);
    remove(path);
    rmdir(dir);
    CHECK(cpus_free_threads(2, 2, 0) == 2 && cpus_free_threads(2, 2, 0.4) == 2 && cpus_free_threads(2, 2, 0.6) == 1 &&
              cpus_free_threads(2, 2, 2.0) == 1 && cpus_free_threads(16, 16, 1.0) == 15 && cpus_free_threads(4, 16, 3) == 4 &&
              cpus_free_threads(8, 4, 0) == 4 && cpus_free_threads(2, 2, -1) == 2,
          "free threads: %d %d %d %d %d", cpus_free_threads(2, 2, 0), cpus_free_threads(2, 2, 0.6), cpus_free_threads(2, 2, 2.0),
          cpus_free_threads(16, 16, 1.0), cpus_free_threads(8, 4, 0));
}

static void tiny_chunk(void *arg, int64_t c, int ith) {
    volatile double x = 0;
    for (int i = 0; i < 2000; i++) x += i * 1e-9;
    atomic_fetch_add((_Atomic int64_t *)arg, 1);
}

/* Runs small jobs on p until done(p) or ms pass; whether done(p) held. */
static bool jobs_until_p(thread_pool *p, bool (*done)(thread_pool *, const void *), const void *arg, int ms) {
    _Atomic int64_t count = 0;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        pool_for(p, 64, tiny_chunk, &count);
        if (done(p, arg)) return true;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > ms) return false;
    }
}

typedef struct {
    bool (*want)(int, int);
} active_want;

static bool active_is(thread_pool *p, const void *arg) {
    return ((const active_want *)arg)->want(pool_active(p), pool_size(p));
}

static bool contended_is(thread_pool *p, const void *want) {
    return pool_contended(p) == *(const bool *)want;
}

/* Runs small jobs on p until pool_active(p) satisfies want(active, n) or ms pass; the last active. */
static int jobs_until(thread_pool *p, bool (*want)(int, int), int ms) {
    const active_want w = {want};
    jobs_until_p(p, active_is, &w, ms);
    return pool_active(p);
}

/* Runs small jobs on p until pool_contended(p) == want or ms pass; the last pool_contended. */
static bool contended_within(thread_pool *p, bool want, int ms) {
    jobs_until_p(p, contended_is, &want, ms);
    return pool_contended(p);
}

/* Every thread of this process: the CPUs its affinity allows, into sets[] (at most 64); the count. */
static int task_cpus(cpu_set_t *sets) {
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] == '.' || n == 64) continue;
        if (sched_getaffinity(atoi(e->d_name), sizeof sets[n], &sets[n]) != 0) CPU_ZERO(&sets[n]);
        n++;
    }
    if (d) closedir(d);
    return n;
}

static void test_team_cpus(void) {
    CHECK(pool_team_cpus(2, 2, 2) == 1, "2 threads, 2 busy loops, 2 CPUs: %d", pool_team_cpus(2, 2, 2));
    CHECK(pool_team_cpus(2, 2, 1.6) == 1, "2 threads, 1.6 others: %d", pool_team_cpus(2, 2, 1.6));
    CHECK(pool_team_cpus(4, 4, 4) == 2, "4 threads, 4 others, 4 CPUs: %d", pool_team_cpus(4, 4, 4));
    CHECK(pool_team_cpus(16, 16, 48) == 4, "16 threads, 48 others, 16 CPUs: %d", pool_team_cpus(16, 16, 48));
    CHECK(pool_team_cpus(8, 2, 6) == 1, "8 threads, 6 others, 2 CPUs: %d", pool_team_cpus(8, 2, 6));
    CHECK(pool_team_cpus(2, 2, 0) == 0, "alone: a CPU per thread, nothing to pin");
    CHECK(pool_team_cpus(4, 8, 4) == 0, "4 threads, 4 others, 8 CPUs: %d", pool_team_cpus(4, 8, 4));
    CHECK(pool_team_cpus(2, 2, -1) == 0 && pool_team_cpus(1, 2, 2) == 0 && pool_team_cpus(2, 1, 2) == 0,
          "no estimate, one thread, one CPU: nothing to pin");
}

static bool fewer(int a, int n) { return a < n; }
static bool all(int a, int n) { return a == n; }
static bool never(int a, int n) { return false; }

static void test_dynamic(void) {
    cpu_set_t set;
    sched_getaffinity(0, sizeof set, &set);
    int n = CPU_COUNT(&set);
    if (n < 2 || n > 16) {
        printf("dynamic threads: %d CPUs, not checked (needs 2-16)\n", n);
        return;
    }
    thread_pool *p = pool_new(n);
    int a0 = jobs_until(p, all, 3000);
    CHECK(a0 == n, "alone: %d of %d threads in use", a0, n);
    pid_t kids[16];
    const pid_t parent = getpid();
    for (int i = 0; i < n; i++)
        if ((kids[i] = fork()) == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL); /* not left spinning if the test dies (or died before this) */
            if (getppid() != parent) _exit(0);
            for (;;) {
            }
        }
    int a1 = jobs_until(p, fewer, 3000);
    CHECK(a1 < n, "next to %d busy processes on %d CPUs: %d threads in use (fewer than %d)", n, n, a1, n);
    bool crowded = contended_within(p, true, 3000);
    CHECK(crowded, "next to %d busy processes on %d CPUs: the pool does not see itself contended", n, n);
    /* the team onto its share of the CPUs (n / 2 of n): every thread on the same ones; then back */
    static cpu_set_t before[64], pinned[64], after[64];
    int nt = task_cpus(before);
    CHECK(pool_pin_here(p), "next to %d busy processes on %d CPUs: the team was not pinned", n, n);
    CHECK(!pool_pin_here(p), "pinned twice");
    pool_release_caller(p);
    cpu_set_t back;
    CHECK(sched_getaffinity(0, sizeof back, &back) == 0 && CPU_COUNT(&back) == n, "released: the caller allows %d CPUs",
          CPU_COUNT(&back));
    CHECK(pool_pin_here(p), "pinned again after its release");
    cpu_set_t mine;
    CHECK(sched_getaffinity(0, sizeof mine, &mine) == 0 && CPU_COUNT(&mine) >= 1 && CPU_COUNT(&mine) < n,
          "pinned: the caller's mask has %d CPUs (fewer than %d)", CPU_COUNT(&mine), n);
    CHECK(task_cpus(pinned) == nt && nt == n, "%d threads (pool of %d)", nt, n);
    for (int i = 0; i < nt; i++)
        CHECK(CPU_EQUAL(&pinned[i], &mine), "pinned: thread %d allows %d CPUs, not the caller's %d", i,
              CPU_COUNT(&pinned[i]), CPU_COUNT(&mine));
    pool_unpin(p);
    task_cpus(after);
    for (int i = 0; i < nt; i++)
        CHECK(CPU_EQUAL(&after[i], &before[i]) && CPU_COUNT(&after[i]) == n,
              "unpinned: thread %d allows %d CPUs, before %d", i, CPU_COUNT(&after[i]), CPU_COUNT(&before[i]));
    setenv("HERD_DYNAMIC_THREADS", "0", 1);
    thread_pool *q = pool_new(n);
    int a2 = jobs_until(q, never, 300);
    CHECK(a2 == n, "HERD_DYNAMIC_THREADS=0 next to them: %d of %d threads in use", a2, n);
    pool_free(q);
    unsetenv("HERD_DYNAMIC_THREADS");
    for (int i = 0; i < n; i++) kill(kids[i], SIGKILL);
    for (int i = 0; i < n; i++) waitpid(kids[i], NULL, 0);
    int a3 = jobs_until(p, all, 3000);
    CHECK(a3 == n, "after they stop: %d of %d threads in use", a3, n);
    CHECK(!contended_within(p, false, 3000), "after they stop: the pool still sees itself contended");
    printf("dynamic threads on %d CPUs: alone %d, next to %d busy loops %d, after %d\n", n, a0, n, a1, a3);
    pool_free(p);
}

int main(void) {
    test_stat_read();
    test_chunks();
    test_team_cpus();
    test_dynamic();
    test_idle_sleeps();
    test_cgroup();
    test_affinity();
    return TU_DONE("test_pool");
}
