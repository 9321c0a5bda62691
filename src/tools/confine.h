/* The confinement layers of the code sandbox (see sandbox.h for the process structure and
 * docs/TOOLS.md for the security model). Each layer is tried; which ones took effect is recorded.
 *
 *   uid       running as root: switch to an unused unprivileged uid first (root would bypass
 *             RLIMIT_NPROC and file permissions)
 *   userns    own user namespace (uid 0 inside = that uid outside, no capabilities outside), with
 *   netns     an empty network namespace (no interface but a down loopback: no network at all),
 *   pidns     a pid namespace (its init's exit kills every process in it),
 *   mountns   a mount namespace in which every mount is read-only, /tmp /var/tmp /run and $HOME are
 *             empty, and the work directory and /dev/shm are small private tmpfs
 *   landlock  writes only beneath the work directory (+ /dev/null), no TCP, no signals or abstract
 *             unix sockets outside the sandbox (as far as the kernel's Landlock ABI goes)
 *   seccomp   socket() only for AF_UNIX; no setsid/setpgid, namespaces, mount, ptrace, bpf, io_uring...
 *   caps      no capabilities (bounding set emptied, so not even inside the user namespace)
 *   rlimits   CPU, address space, process count, file size, open files, no core files
 *
 * Everything the child needs is prepared here by the parent (confine_plan_init), so that between
 * fork and exec the child makes system calls only. */
#ifndef HERD_TOOLS_CONFINE_H
#define HERD_TOOLS_CONFINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum {
    CONFINE_NO_USERNS = 1,   /* tests: pretend user namespaces are unavailable */
    CONFINE_NO_LANDLOCK = 2, /* tests: pretend Landlock is unavailable */
    CONFINE_NO_SECCOMP = 4,  /* tests: pretend seccomp is unavailable */
};

/* layers that took effect (bits) */
enum {
    LAYER_UID = 1 << 0,
    LAYER_USERNS = 1 << 1,
    LAYER_NETNS = 1 << 2,
    LAYER_PIDNS = 1 << 3,
    LAYER_MOUNTNS = 1 << 4, /* read-only file system, hidden /tmp /run $HOME, private tmpfs */
    LAYER_LANDLOCK = 1 << 5,
    LAYER_SECCOMP = 1 << 6,
    LAYER_CAPS = 1 << 7,
    LAYER_RLIMITS = 1 << 8,
};

typedef struct {
    /* limits */
    int cpu_s;
    int64_t mem_bytes, file_bytes, tmpfs_bytes;
    int max_procs, max_files;
    unsigned disable; /* CONFINE_NO_* */
    /* prepared by the parent */
    const char *workdir;
    char *home;    /* $HOME to hide, or NULL */
    char **mounts; /* mount points of /proc/self/mountinfo, decoded */
    int n_mounts;
    bool root; /* started as euid 0: switch to uid/gid below */
    uid_t uid;
    gid_t gid;
    long nproc_base; /* processes the target uid already has (for RLIMIT_NPROC without userns) */
    char uid_map[64], gid_map[64];
    char tmpfs_opts[64], shm_opts[64];
} confine_plan;

/* Fills the plan's prepared fields (mount list, target uid, ...). */
void confine_plan_init(confine_plan *p, const char *workdir);
void confine_plan_free(confine_plan *p);

/* In the sandbox's first child, before it forks the init: uid switch, namespaces, mounts.
 * Returns the layers that took effect; *err receives a static message on a fatal failure. */
unsigned confine_enter(const confine_plan *p, const char **err);
/* In the sandbox's init (pid 1 of its pid namespace): a /proc that shows only the sandbox. */
void confine_proc(unsigned *layers);
/* In the process that will exec the code: capabilities, rlimits, Landlock, seccomp. `layers` is
 * what confine_enter achieved; returns all layers now in effect. */
unsigned confine_lock(const confine_plan *p, unsigned layers);
/* Writes the layer names, space-separated, into buf. */
void confine_layer_names(unsigned layers, char *buf, size_t cap);

#endif
