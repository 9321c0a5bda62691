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

#endif
