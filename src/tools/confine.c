/* Confinement layers of the code sandbox (see confine.h). Linux only. */
#include "confine.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <grp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../base/log.h"

/* ---- prepared in the parent ------------------------------------------------------------------- */

/* mountinfo escapes space, tab, newline and backslash as \ooo */
static char *unescape(const char *s, size_t n) {
    char *o = herd_xmalloc(n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\' && i + 3 < n + 1 && s[i + 1] >= '0' && s[i + 1] <= '3') {
            o[k++] = (char)((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
            i += 3;
        } else {
            o[k++] = s[i];
        }
    }
    o[k] = 0;
    return o;
}

static void read_mounts(confine_plan *p) {
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f) return;
    char *line = NULL;
    size_t cap = 0;
    int capm = 0;
    while (getline(&line, &cap, f) > 0) {
        /* id parent major:minor root mount-point ... */
        char *q = line;
        for (int field = 0; field < 4 && q; field++) {
            q = strchr(q, ' ');
            if (q) q++;
        }
        if (!q) continue;
        char *end = strchr(q, ' ');
        if (!end) continue;
        if (p->n_mounts == capm) {
            capm = capm ? capm * 2 : 32;
            p->mounts = herd_xrealloc(p->mounts, (size_t)capm * sizeof *p->mounts);
        }
        p->mounts[p->n_mounts++] = unescape(q, (size_t)(end - q));
    }
    free(line);
    fclose(f);
}

static long count_procs_of(uid_t uid) {
    DIR *d = opendir("/proc");
    if (!d) return 0;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
        char path[300];
        snprintf(path, sizeof path, "/proc/%s", e->d_name);
        struct stat st;
        if (stat(path, &st) == 0 && st.st_uid == uid) n++;
    }
    closedir(d);
    return n;
}

void confine_plan_init(confine_plan *p, const char *workdir) {
    static unsigned counter;
    p->workdir = workdir;
    const char *home = getenv("HOME");
    p->home = home && home[0] == '/' && home[1] ? strdup(home) : NULL;
    read_mounts(p);
    p->root = geteuid() == 0;
    if (p->root) {
        /* an unused uid per sandbox, so its process count is its own */
        unsigned k = __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED);
        p->uid = (uid_t)(1500000000u + ((unsigned)getpid() * 131u + k) % 400000000u);
        p->gid = (gid_t)p->uid;
    } else {
        p->uid = geteuid();
        p->gid = getegid();
    }
    p->nproc_base = p->root ? 0 : count_procs_of(p->uid);
    snprintf(p->uid_map, sizeof p->uid_map, "0 %u 1\n", (unsigned)p->uid);
    snprintf(p->gid_map, sizeof p->gid_map, "0 %u 1\n", (unsigned)p->gid);
    snprintf(p->tmpfs_opts, sizeof p->tmpfs_opts, "size=%lld,mode=0700", (long long)p->tmpfs_bytes);
    snprintf(p->shm_opts, sizeof p->shm_opts, "size=%lld,mode=1777", (long long)p->tmpfs_bytes);
}

void confine_plan_free(confine_plan *p) {
    for (int i = 0; i < p->n_mounts; i++) free(p->mounts[i]);
    free(p->mounts);
    free(p->home);
    p->mounts = NULL;
    p->home = NULL;
    p->n_mounts = 0;
}

/* ---- in the child: namespaces and mounts ------------------------------------------------------ */

static bool write_file(const char *path, const char *s) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return false;
    ssize_t n = write(fd, s, strlen(s));
    close(fd);
    return n == (ssize_t)strlen(s);
}

static bool is_under(const char *path, const char *dir) {
    size_t n = strlen(dir);
    return !strncmp(path, dir, n) && (path[n] == '/' || path[n] == 0);
}

/* Remount one mount read-only, keeping the flags a user namespace may not change (locked). */
static bool remount_ro(const char *mp) {
    struct statvfs sv;
    if (statvfs(mp, &sv) != 0)
        return errno == EACCES || errno == ENOENT || errno == ESTALE || errno == ENOTDIR;
    unsigned long fl = MS_BIND | MS_REMOUNT | MS_RDONLY;
    if (sv.f_flag & ST_NOSUID) fl |= MS_NOSUID;
    if (sv.f_flag & ST_NODEV) fl |= MS_NODEV;
    if (sv.f_flag & ST_NOEXEC) fl |= MS_NOEXEC;
    if (sv.f_flag & ST_NOATIME) fl |= MS_NOATIME;
    if (sv.f_flag & ST_NODIRATIME) fl |= MS_NODIRATIME;
    if (sv.f_flag & ST_RELATIME) fl |= MS_RELATIME;
    if (!(sv.f_flag & (ST_NOATIME | ST_RELATIME))) fl |= MS_STRICTATIME;
    if (mount(NULL, mp, NULL, fl, NULL) == 0) return true;
    /* a mount we cannot reach we cannot write either; an already read-only one is fine */
    return (sv.f_flag & ST_RDONLY) || errno == EACCES || errno == ENOENT;
}

/* mkdir -p of path (absolute) */
static bool mkdirs(const char *path) {
    char buf[4096];
    size_t n = strlen(path);
    if (n >= sizeof buf) return false;
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == 0) {
            char c = buf[i];
            buf[i] = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) return false;
            buf[i] = c;
        }
    }
    return true;
}

static bool setup_mounts(const confine_plan *p) {
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) return false;
    bool ok = true;
    for (int i = 0; i < p->n_mounts; i++) {
        if (!remount_ro(p->mounts[i])) ok = false;
    }
    if (!ok) return false;
    /* hide the places where other programs keep sockets, secrets and scratch files */
    const char *hide[] = {"/tmp", "/var/tmp", "/run", "/dev/shm", p->home};
    bool work_done = false;
    for (size_t i = 0; i < sizeof hide / sizeof *hide; i++) {
        const char *h = hide[i];
        if (!h) continue;
        struct stat st;
        if (lstat(h, &st) != 0 || !S_ISDIR(st.st_mode)) continue;
        if (!work_done && is_under(p->workdir, h)) {
            /* an empty tmpfs with only the work directory's path in it */
            if (mount("herd-sandbox", h, "tmpfs", MS_NOSUID | MS_NODEV, "size=65536,mode=0755") != 0)
                return false;
            if (!mkdirs(p->workdir)) return false;
            if (mount("herd-sandbox", p->workdir, "tmpfs", MS_NOSUID | MS_NODEV, p->tmpfs_opts) != 0)
                return false;
            if (mount(NULL, h, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) != 0)
                return false;
            work_done = true;
        } else if (!strcmp(h, "/dev/shm")) {
            /* private and small, but writable: POSIX semaphores (multiprocessing) live there */
            if (mount("herd-sandbox", h, "tmpfs", MS_NOSUID | MS_NODEV, p->shm_opts) != 0) return false;
        } else if (!is_under(p->workdir, h)) {
            if (mount("herd-sandbox", h, "tmpfs", MS_NOSUID | MS_NODEV | MS_RDONLY, "size=4096,mode=0755") !=
                    0 &&
                errno != ENOENT && errno != EACCES)
                return false;
        }
    }
    if (!work_done && mount("herd-sandbox", p->workdir, "tmpfs", MS_NOSUID | MS_NODEV, p->tmpfs_opts) != 0)
        return false;
    return true;
}

unsigned confine_enter(const confine_plan *p, const char **err) {
    unsigned layers = 0;
    *err = NULL;
    if (p->root) {
        if (setgroups(0, NULL) != 0 || setresgid(p->gid, p->gid, p->gid) != 0 ||
            setresuid(p->uid, p->uid, p->uid) != 0) {
            *err = "cannot switch from root to an unprivileged uid";
            return 0;
        }
        layers |= LAYER_UID;
    }
    /* uid switches make the process non-dumpable, and then /proc/self/uid_map is not ours */
    prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
    if (p->disable & CONFINE_NO_USERNS) return layers;
    if (unshare(CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS) != 0)
        return layers;
    layers |= LAYER_USERNS | LAYER_NETNS | LAYER_PIDNS;
    write_file("/proc/self/setgroups", "deny");
    write_file("/proc/self/uid_map", p->uid_map);
    write_file("/proc/self/gid_map", p->gid_map);
    if (setup_mounts(p)) layers |= LAYER_MOUNTNS;
    return layers;
}

void confine_proc(unsigned *layers) {
    if (!(*layers & LAYER_MOUNTNS)) return;
    /* the pid namespace's own /proc: only the sandbox's processes; else none at all */
    if ((*layers & LAYER_PIDNS) &&
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, NULL) == 0)
        return;
    if (mount("herd-sandbox", "/proc", "tmpfs", MS_NOSUID | MS_NODEV | MS_RDONLY, "size=4096") != 0)
        *layers &= ~(unsigned)LAYER_MOUNTNS;
}

/* ---- in the child: capabilities, rlimits, Landlock, seccomp ----------------------------------- */

static bool set_limit(int res, rlim_t soft, rlim_t hard) {
    struct rlimit r = {soft, hard};
    return setrlimit(res, &r) == 0;
}

static void drop_caps(void) {
    for (int c = 0; c < 64; c++) prctl(PR_CAPBSET_DROP, c, 0, 0, 0);
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    memset(d, 0, sizeof d);
    syscall(SYS_capset, &h, d);
}

/* Landlock, with the constants of newer ABIs than Debian 12's headers know */
#define LL_FS_TRUNCATE (1ULL << 14) /* ABI 3 */
#define LL_NET_BIND_TCP (1ULL << 0) /* ABI 4 */
#define LL_NET_CONNECT_TCP (1ULL << 1)
#define LL_SCOPE_ABSTRACT_UNIX (1ULL << 0) /* ABI 6 */
#define LL_SCOPE_SIGNAL (1ULL << 1)

struct ll_ruleset_attr {
    uint64_t handled_access_fs, handled_access_net, scoped;
};

static bool add_path_rule(int ruleset, const char *path, uint64_t access) {
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd < 0) return false;
    struct landlock_path_beneath_attr pb = {.allowed_access = access, .parent_fd = fd};
    long r = syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &pb, 0);
    close(fd);
    return r == 0;
}

static bool apply_landlock(const confine_plan *p, unsigned layers) {
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    if (abi < 1) return false;
    uint64_t write = LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_REMOVE_DIR |
                     LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_CHAR |
                     LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG |
                     LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_MAKE_FIFO |
                     LANDLOCK_ACCESS_FS_MAKE_BLOCK | LANDLOCK_ACCESS_FS_MAKE_SYM;
    if (abi >= 2) write |= LANDLOCK_ACCESS_FS_REFER;
    if (abi >= 3) write |= LL_FS_TRUNCATE;
    struct ll_ruleset_attr attr = {.handled_access_fs = write};
    size_t size = sizeof attr.handled_access_fs;
    if (abi >= 4) {
        attr.handled_access_net = LL_NET_BIND_TCP | LL_NET_CONNECT_TCP; /* no rule: no TCP at all */
        size = 2 * sizeof(uint64_t);
    }
    if (abi >= 6) {
        attr.scoped = LL_SCOPE_ABSTRACT_UNIX | LL_SCOPE_SIGNAL;
        size = sizeof attr;
    }
    int rs = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
    if (rs < 0) return false;
    bool ok = add_path_rule(rs, p->workdir, write);
    uint64_t file_w = LANDLOCK_ACCESS_FS_WRITE_FILE | (abi >= 3 ? LL_FS_TRUNCATE : 0);
    add_path_rule(rs, "/dev/null", file_w);
    if (layers & LAYER_MOUNTNS) add_path_rule(rs, "/dev/shm", write); /* the private tmpfs, not the host's */
    if (ok) ok = prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0;
    if (ok) ok = syscall(SYS_landlock_restrict_self, rs, 0) == 0;
    close(rs);
    return ok;
}

#if defined(__x86_64__)
#define SECCOMP_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SECCOMP_ARCH AUDIT_ARCH_AARCH64
#endif

#ifdef SECCOMP_ARCH
#define LD_NR BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr))
#define LD_ARG0 BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0]))
#define RET(v) BPF_STMT(BPF_RET | BPF_K, (v))
#define DENY(nr, e) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), RET(SECCOMP_RET_ERRNO | (e))

static bool apply_seccomp(void) {
    const unsigned ns_flags = CLONE_NEWNS | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWUTS |
                              CLONE_NEWIPC | CLONE_NEWCGROUP;
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SECCOMP_ARCH, 1, 0),
        RET(SECCOMP_RET_KILL_PROCESS),
        LD_NR,
#ifdef __x86_64__
        BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, 0, 1), /* the x32 ABI */
        RET(SECCOMP_RET_ERRNO | EPERM),
#endif
        /* socket(): only AF_UNIX */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_socket, 0, 4),
        LD_ARG0,
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_UNIX, 0, 1),
        RET(SECCOMP_RET_ALLOW),
        RET(SECCOMP_RET_ERRNO | EAFNOSUPPORT),
        /* clone(): no new namespaces; clone3() (flags out of reach): ENOSYS makes libc use clone */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 0, 4),
        LD_ARG0,
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, ns_flags, 0, 1),
        RET(SECCOMP_RET_ERRNO | EPERM),
        RET(SECCOMP_RET_ALLOW),
#ifdef __NR_clone3
        DENY(__NR_clone3, ENOSYS),
#endif
        DENY(__NR_setsid, EPERM),
        DENY(__NR_setpgid, EPERM),
        DENY(__NR_unshare, EPERM),
        DENY(__NR_setns, EPERM),
        DENY(__NR_mount, EPERM),
        DENY(__NR_umount2, EPERM),
        DENY(__NR_pivot_root, EPERM),
        DENY(__NR_chroot, EPERM),
        DENY(__NR_ptrace, EPERM),
        DENY(__NR_process_vm_readv, EPERM),
        DENY(__NR_process_vm_writev, EPERM),
        DENY(__NR_bpf, EPERM),
        DENY(__NR_perf_event_open, EPERM),
        DENY(__NR_keyctl, EPERM),
        DENY(__NR_add_key, EPERM),
        DENY(__NR_request_key, EPERM),
        DENY(__NR_userfaultfd, EPERM),
        DENY(__NR_io_uring_setup, EPERM),
        DENY(__NR_io_uring_enter, EPERM),
        DENY(__NR_io_uring_register, EPERM),
        DENY(__NR_open_by_handle_at, EPERM),
        DENY(__NR_init_module, EPERM),
        DENY(__NR_finit_module, EPERM),
        DENY(__NR_delete_module, EPERM),
        DENY(__NR_kexec_load, EPERM),
        DENY(__NR_fsopen, EPERM),
        DENY(__NR_fsmount, EPERM),
        DENY(__NR_move_mount, EPERM),
        DENY(__NR_open_tree, EPERM),
        DENY(__NR_fspick, EPERM),
        DENY(__NR_swapon, EPERM),
        DENY(__NR_reboot, EPERM),
        DENY(__NR_acct, EPERM),
        RET(SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = (unsigned short)(sizeof f / sizeof *f), .filter = f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return false;
    return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == 0;
}
#else
static bool apply_seccomp(void) {
    return false;
}
#endif

unsigned confine_lock(const confine_plan *p, unsigned layers) {
    if (layers & LAYER_USERNS) {
        drop_caps();
        layers |= LAYER_CAPS;
    } else if (layers & LAYER_UID || geteuid() != 0) {
        layers |= LAYER_CAPS; /* a uid switch away from root drops every capability */
    }
    rlim_t nproc = (rlim_t)p->max_procs + 3;                      /* + the sandbox's own two processes */
    if (!(layers & LAYER_USERNS)) nproc += (rlim_t)p->nproc_base; /* counted per uid, not per namespace */
    bool ok = set_limit(RLIMIT_CPU, (rlim_t)p->cpu_s, (rlim_t)p->cpu_s + 1) &&
              set_limit(RLIMIT_AS, (rlim_t)p->mem_bytes, (rlim_t)p->mem_bytes) &&
              set_limit(RLIMIT_NPROC, nproc, nproc) &&
              set_limit(RLIMIT_FSIZE, (rlim_t)p->file_bytes, (rlim_t)p->file_bytes) &&
              set_limit(RLIMIT_NOFILE, (rlim_t)p->max_files, (rlim_t)p->max_files) &&
              set_limit(RLIMIT_CORE, 0, 0) && set_limit(RLIMIT_MEMLOCK, 0, 0) &&
              set_limit(RLIMIT_MSGQUEUE, 0, 0);
    if (ok) layers |= LAYER_RLIMITS;
    if (!(p->disable & CONFINE_NO_LANDLOCK) && apply_landlock(p, layers)) layers |= LAYER_LANDLOCK;
    if (!(p->disable & CONFINE_NO_SECCOMP) && apply_seccomp()) layers |= LAYER_SECCOMP;
    return layers;
}

void confine_layer_names(unsigned layers, char *buf, size_t cap) {
    static const char *names[] = {"uid",      "userns",  "netns", "pidns",  "mountns",
                                  "landlock", "seccomp", "caps",  "rlimits"};
    size_t n = 0;
    buf[0] = 0;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        if (!(layers & (1u << i))) continue;
        int w = snprintf(buf + n, cap - n, "%s%s", n ? " " : "", names[i]);
        if (w < 0 || (size_t)w >= cap - n) break;
        n += (size_t)w;
    }
}
