/* How many threads this process should run by default: the CPUs it may actually use, not the number
 * the hardware has. Two limits apply on Linux:
 *   - the affinity mask (sched_getaffinity: taskset, cpusets, a container's --cpuset-cpus);
 *   - the cgroup CPU quota (v2 cpu.max "QUOTA PERIOD", v1 cpu.cfs_quota_us / cpu.cfs_period_us:
 *     a container's --cpus), the tightest along the process's cgroup and its ancestors, rounded up
 *     (1.5 CPUs -> 2 threads: the pool's chunks let 2 threads use the whole quota; 1 would leave a
 *     third of it idle).
 * More threads than that make them wait for each other's time slices. */
#ifndef HERD_THREAD_CPUS_H
#define HERD_THREAD_CPUS_H

#include <sched.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct {
    int n_threads;      /* the default: min(affinity, quota rounded up), >= 1 */
    int n_online;       /* CPUs online */
    int n_affinity;     /* CPUs in the affinity mask (n_online if it cannot be read) */
    double quota_cpus;  /* the cgroup quota in CPUs; 0: none */
    char why[256];      /* e.g. "affinity mask: 1 of 2 online CPUs; cgroup cpu.max: no limit" */
} cpu_share;

/* Reads the limits. proc_cgroup: the process's cgroup list (NULL: /proc/self/cgroup); cgroup_root:
 * where the cgroup hierarchies are mounted (NULL: /sys/fs/cgroup). Tests point both at a fake tree.
 * Unreadable files mean no limit. */
void cpus_share_read(const char *proc_cgroup, const char *cgroup_root, cpu_share *out);
/* cpus_share_read(NULL, NULL)'s n_threads, read once per process. */
int cpus_default_threads(void);

/* Time the CPUs of a set spent busy (user, nice, system, irq, softirq, steal: a steal tick is a tick another
 * virtual machine took) and in all (busy + idle + iowait), in clock ticks since boot, summed over the
 * "cpuN" lines of stat_path (NULL: /proc/stat) whose N is in set (NULL: every line). false if the file
 * cannot be read or names none of the set's CPUs. running (if not NULL): the file's procs_running, the
 * threads runnable on the whole machine at that instant (this one included), or -1 if it has none. */
bool cpus_stat_read(const char *stat_path, const cpu_set_t *set, uint64_t *busy, uint64_t *total, int *running);

/* How many of n threads to run when other work keeps others_cpus of the n_cpus CPUs a process may use
 * busy (on average: their busy time less the process's own): the CPUs it leaves free, rounded to
 * nearest, between 1 and n. */
int cpus_free_threads(int n, int n_cpus, double others_cpus);

#endif
