/* The default thread count of cpus.h: affinity mask and cgroup CPU quota. */
#include "cpus.h"

#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The quota in CPUs that dir/<file(s)> sets, or 0 for none or unreadable. v2: cpu.max "max P" or "Q P";
 * v1: cpu.cfs_quota_us (-1 = none) over cpu.cfs_period_us. */
static double quota_in(const char *dir, bool v2) {
    char path[4096 + 32]; /* dir (< 4096) + the file name */
    long long q = 0, per = 0;
    if (v2) {
        snprintf(path, sizeof path, "%s/cpu.max", dir);
        FILE *f = fopen(path, "r");
        if (!f) return 0;
        char qs[32] = "";
        int k = fscanf(f, "%31s %lld", qs, &per);
        fclose(f);
        if (k != 2 || !strcmp(qs, "max")) return 0;
        q = strtoll(qs, NULL, 10);
    } else {
        snprintf(path, sizeof path, "%s/cpu.cfs_quota_us", dir);
        FILE *f = fopen(path, "r");
        if (!f) return 0;
        int k = fscanf(f, "%lld", &q);
        fclose(f);
        snprintf(path, sizeof path, "%s/cpu.cfs_period_us", dir);
        if (k != 1 || !(f = fopen(path, "r"))) return 0;
        k = fscanf(f, "%lld", &per);
        fclose(f);
        if (k != 1) return 0;
    }
    return q > 0 && per > 0 ? (double)q / (double)per : 0;
}

/* The tightest quota on base/cg and each of its ancestors up to base itself (a container sees its own
 * cgroup at the mount's root; a path that does not exist under the mount is skipped). */
static double quota_along(const char *base, const char *cg, bool v2) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s%s%s", base, cg[0] == '/' ? "" : "/", cg);
    size_t nb = strlen(base);
    double best = 0;
    for (;;) {
        double q = quota_in(dir, v2);
        if (q > 0 && (best == 0 || q < best)) best = q;
        char *slash = strrchr(dir, '/');
        if (strlen(dir) <= nb || !slash || (size_t)(slash - dir) < nb) break;
        *slash = 0;
    }
    return best;
}

/* Whether the comma list ctl names the cpu controller. */
static bool has_cpu(const char *ctl) {
    for (const char *p = ctl; *p;) {
        size_t n = strcspn(p, ",");
        if (n == 3 && !strncmp(p, "cpu", 3)) return true;
        p += n + (p[n] == ',');
    }
    return false;
}

void cpus_share_read(const char *proc_cgroup, const char *cgroup_root, cpu_share *out) {
    memset(out, 0, sizeof *out);
    long on = sysconf(_SC_NPROCESSORS_ONLN);
    out->n_online = on > 0 ? (int)on : 1;
    out->n_affinity = out->n_online;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) out->n_affinity = CPU_COUNT(&set);

    const char *root = cgroup_root ? cgroup_root : "/sys/fs/cgroup";
    const char *src = "cgroup";
    FILE *f = fopen(proc_cgroup ? proc_cgroup : "/proc/self/cgroup", "r");
    char line[4096], base[4096];
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2) continue;
        *c1 = *c2 = 0;
        const char *ctl = c1 + 1, *cg = c2 + 1;
        double q = 0;
        if (!strcmp(line, "0") && !*ctl) { /* v2 (hybrid systems mount it at unified/) */
            q = quota_along(root, cg, true);
            snprintf(base, sizeof base, "%s/unified", root);
            double qu = quota_along(base, cg, true);
            if (qu > 0 && (q == 0 || qu < q)) q = qu;
            if (q > 0) src = "cgroup cpu.max";
        } else if (has_cpu(ctl)) { /* v1: mounted as the controller list (cpu,cpuacct) or as cpu */
            snprintf(base, sizeof base, "%s/%s", root, ctl);
            q = quota_along(base, cg, false);
            if (q == 0) {
                snprintf(base, sizeof base, "%s/cpu", root);
                q = quota_along(base, cg, false);
            }
            if (q > 0) src = "cgroup cpu.cfs_quota_us";
        }
        if (q > 0 && (out->quota_cpus == 0 || q < out->quota_cpus)) out->quota_cpus = q;
    }
    if (f) fclose(f);

    int n = out->n_affinity;
    if (out->quota_cpus > 0) {
        int qn = (int)ceil(out->quota_cpus - 1e-9);
        if (qn < n) n = qn;
    }
    out->n_threads = n < 1 ? 1 : n;
    char qs[96];
    if (out->quota_cpus > 0) snprintf(qs, sizeof qs, "%s quota %.2f CPUs", src, out->quota_cpus);
    else snprintf(qs, sizeof qs, "no cgroup CPU quota");
    snprintf(out->why, sizeof out->why, "affinity mask %d of %d online CPUs, %s", out->n_affinity, out->n_online, qs);
}

static int default_threads;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

static void read_default(void) {
    cpu_share s;
    cpus_share_read(NULL, NULL, &s);
    default_threads = s.n_threads;
}

int cpus_default_threads(void) {
    pthread_once(&default_once, read_default);
    return default_threads;
}

bool cpus_stat_read(const char *stat_path, const cpu_set_t *set, uint64_t *busy, uint64_t *total, int *running) {
    FILE *f = fopen(stat_path ? stat_path : "/proc/stat", "r");
    if (!f) return false;
    char line[512];
    uint64_t b = 0, t = 0;
    int found = 0;
    if (running) *running = -1;
    while (fgets(line, sizeof line, f)) {
        int cpu = -1, at = 0, r = 0;
        if (running && sscanf(line, "procs_running %d", &r) == 1 && r >= 0) *running = r;
        /* "cpuN user nice system idle iowait irq softirq steal ..." ("cpu " is the sum: skipped) */
        if (strncmp(line, "cpu", 3) != 0 || line[3] < '0' || line[3] > '9' || sscanf(line + 3, "%d%n", &cpu, &at) != 1) continue;
        if (set && (cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, set))) continue;
        unsigned long long v[8] = {0};
        if (sscanf(line + 3 + at, "%llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
                   &v[7]) < 4)
            continue;
        uint64_t bz = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
        b += bz;
        t += bz + v[3] + v[4];
        found++;
    }
    fclose(f);
    if (!found) return false;
    *busy = b;
    *total = t;
    return true;
}

int cpus_free_threads(int n, int n_cpus, double others_cpus) {
    double free_cpus = (double)n_cpus - (others_cpus > 0 ? others_cpus : 0);
    int k = (int)floor(free_cpus + 0.5);
    return k < 1 ? 1 : k > n ? n : k;
}
