/* The code sandbox's processes: fork, pipes, timeout, reaping, work directory (see sandbox.h). */
#include "sandbox.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../base/log.h"
#include "../base/strbuf.h"
#include "confine.h"

void sandbox_default_limits(sandbox_limits *l) {
    *l = (sandbox_limits){.wall_s = 10,
                          .cpu_s = 5,
                          .mem_bytes = 1ll << 30,
                          .max_procs = 32,
                          .file_bytes = 16ll << 20,
                          .max_output = 16 << 10};
    const char *d = getenv("HERD_SANDBOX_DISABLE"); /* for tests: weakens, never below the minimum */
    if (d && strstr(d, "userns")) l->disable |= CONFINE_NO_USERNS;
    if (d && strstr(d, "landlock")) l->disable |= CONFINE_NO_LANDLOCK;
    if (d && strstr(d, "seccomp")) l->disable |= CONFINE_NO_SECCOMP;
}

void sandbox_result_free(sandbox_result *r) {
    free(r->out);
    free(r->err);
    free(r->error);
    memset(r, 0, sizeof *r);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static char *find_python(void) {
    const char *env = getenv("HERD_PYTHON");
    if (env && *env) return access(env, X_OK) == 0 ? realpath(env, NULL) : NULL;
    const char *path = getenv("PATH");
    if (!path || !*path) path = "/usr/local/bin:/usr/bin:/bin";
    /* $HOME is hidden inside the sandbox (and not readable by its uid when herd runs as root), so
     * a python there (pyenv shims, virtual environments) would not start */
    const char *home = getenv("HOME");
    size_t hl = home && home[0] == '/' && home[1] ? strlen(home) : 0;
    char buf[PATH_MAX];
    for (const char *p = path; *p;) {
        const char *e = strchr(p, ':');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        bool in_home = hl && n >= hl && !strncmp(p, home, hl) && (n == hl || p[hl] == '/');
        if (n > 0 && n + 9 < sizeof buf && p[0] == '/' && !in_home) {
            snprintf(buf, sizeof buf, "%.*s/python3", (int)n, p);
            if (access(buf, X_OK) == 0) return realpath(buf, NULL);
        }
        p += n;
        if (*p == ':') p++;
    }
    return NULL;
}

static int unlock_dir(const char *path, const struct stat *st, int type, struct FTW *ftw) {
    (void)st;
    (void)ftw;
    if (type == FTW_D || type == FTW_DNR) chmod(path, 0700);
    return 0;
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw) {
    (void)st;
    (void)type;
    (void)ftw;
    remove(path);
    return 0;
}

static void remove_tree(const char *dir) {
    nftw(dir, unlock_dir, 16, FTW_PHYS);
    nftw(dir, remove_one, 16, FTW_PHYS | FTW_DEPTH);
}

/* ---- the sandbox's processes (after fork: system calls only) ---------------------------------- */

typedef struct {
    confine_plan plan;
    const char *python, *script;
    char *const *argv, *const *envp;
    const char *code;
    size_t code_len;
} child_spec;

static void report(const char *fmt, long a, const char *s) {
    char buf[512];
    int n = s ? snprintf(buf, sizeof buf, fmt, s) : snprintf(buf, sizeof buf, fmt, a);
    if (n > 0) {
        if ((size_t)n >= sizeof buf) n = (int)sizeof buf - 1;
        ssize_t w = write(3, buf, (size_t)n);
        (void)w;
    }
}

static void close_from(int lo) {
    if (syscall(SYS_close_range, (unsigned)lo, ~0u, 0) == 0) return;
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 65536) max = 65536;
    for (int fd = lo; fd < max; fd++) close(fd);
}

static bool write_all(int fd, const char *s, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        s += w;
        n -= (size_t)w;
    }
    return true;
}

/* C: lock down, then exec python on the code */
static void __attribute__((noreturn)) run_code(const child_spec *cs, unsigned layers) {
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    int fd = open(cs->script, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || !write_all(fd, cs->code, cs->code_len)) {
        report("E cannot write the code into the work directory: %s\n", 0, strerror(errno));
        _exit(126);
    }
    close(fd);
    layers = confine_lock(&cs->plan, layers);
    report("L %ld\n", (long)layers, NULL);
    if (!(layers & (LAYER_NETNS | LAYER_SECCOMP))) {
        report("E %s\n", 0,
               "sandbox unavailable: neither a network namespace nor seccomp could be set up, so the code "
               "could reach the network; not running it");
        _exit(126);
    }
    if (!(layers & (LAYER_MOUNTNS | LAYER_LANDLOCK))) {
        report("E %s\n", 0,
               "sandbox unavailable: neither a read-only mount namespace nor Landlock could be set up, "
               "so the code could write files outside its directory; not running it");
        _exit(126);
    }
    if (!(layers & LAYER_RLIMITS)) {
        report("E %s\n", 0, "sandbox unavailable: the resource limits could not be set; not running it");
        _exit(126);
    }
    execve(cs->python, cs->argv, cs->envp);
    report("E cannot run python3: %s\n", 0, strerror(errno));
    _exit(127);
}

/* B: pid 1 of the sandbox (or a subreaper without a pid namespace): start C, reap, report */
static void __attribute__((noreturn)) run_init(const child_spec *cs, unsigned layers) {
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    confine_proc(&layers);
    if (!(layers & LAYER_PIDNS)) prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    if (chdir(cs->plan.workdir) != 0) {
        report("E cannot enter the work directory: %s\n", 0, strerror(errno));
        _exit(1);
    }
    pid_t c = fork();
    if (c < 0) {
        report("E fork: %s\n", 0, strerror(errno));
        _exit(1);
    }
    if (c == 0) run_code(cs, layers);
    for (;;) {
        int st;
        pid_t w = waitpid(-1, &st, 0);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) break;
        if (w != c) continue; /* an orphan of the code, reaped */
        if (WIFEXITED(st))
            report("S exit %ld\n", WEXITSTATUS(st), NULL);
        else if (WIFSIGNALED(st))
            report("S signal %ld\n", WTERMSIG(st), NULL);
        break;
    }
    _exit(0);
}

/* A: new process group, clean fds and signals, namespaces, then B */
static void __attribute__((noreturn))
run_sandbox(const child_spec *cs, int devnull, int out_w, int err_w, int rep_w, pid_t herd) {
    setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (int s = 1; s < NSIG; s++)
        if (s != SIGKILL && s != SIGSTOP) signal(s, SIG_DFL);
    if (dup2(devnull, 0) < 0 || dup2(out_w, 1) < 0 || dup2(err_w, 2) < 0 || dup2(rep_w, 3) < 0) _exit(1);
    close_from(4);
    fcntl(3, F_SETFD, FD_CLOEXEC);
    const char *err;
    unsigned layers = confine_enter(&cs->plan, &err);
    if (err) {
        report("E sandbox setup failed: %s\n", 0, err);
        _exit(1);
    }
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0); /* after the uid switch, which clears it */
    if (getppid() != herd) _exit(1);
    pid_t b = fork();
    if (b < 0) {
        report("E fork: %s\n", 0, strerror(errno));
        _exit(1);
    }
    if (b == 0) run_init(cs, layers);
    int st;
    while (waitpid(b, &st, 0) < 0 && errno == EINTR) {
    }
    _exit(0);
}

/* ---- herd's side --------------------------------------------------------------------------------- */

typedef struct {
    int fd;
    strbuf buf;
    size_t cap;
    bool truncated;
} stream;

/* Reads what is there; false at end of file. Beyond cap, bytes are read and dropped (so a chatty
 * program is not blocked on a full pipe). */
static bool drain(stream *s) {
    char tmp[8192];
    for (;;) {
        ssize_t n = read(s->fd, tmp, sizeof tmp);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return errno == EAGAIN;
        if (n == 0) return false;
        size_t keep = s->buf.n < s->cap ? s->cap - s->buf.n : 0;
        if ((size_t)n > keep) s->truncated = true;
        strbuf_put(&s->buf, tmp, (size_t)n < keep ? (size_t)n : keep);
    }
}

static void parse_report(const char *rep, sandbox_result *r, bool *status_seen) {
    for (const char *l = rep; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        const char *e = strchr(l, '\n');
        size_t n = e ? (size_t)(e - l) : strlen(l);
        if (l[0] == 'L') {
            r->layers = (unsigned)strtoul(l + 2, NULL, 10);
        } else if (l[0] == 'E' && !r->error) {
            r->error = herd_xstrndup(l + 2, n > 2 ? n - 2 : 0);
        } else if (!strncmp(l, "S exit ", 7)) {
            r->exit_code = atoi(l + 7);
            *status_seen = true;
        } else if (!strncmp(l, "S signal ", 9)) {
            r->term_signal = atoi(l + 9);
            *status_seen = true;
        }
    }
}

int sandbox_run_python(const char *code, size_t len, const sandbox_limits *l, sandbox_result *r) {
    memset(r, 0, sizeof *r);
    r->exit_code = -1;
    char *python = find_python();
    if (!python) {
        r->error = strdup("python3 is not installed (not found in PATH)");
        return 0;
    }
    const char *tmp = getenv("TMPDIR");
    if (!tmp || tmp[0] != '/') tmp = "/tmp";
    char tmpl[PATH_MAX];
    snprintf(tmpl, sizeof tmpl, "%s/herd-sandbox-XXXXXX", tmp);
    char *made = mkdtemp(tmpl);
    char *workdir = made ? realpath(made, NULL) : NULL;
    if (!workdir) {
        free(python);
        if (made) rmdir(made);
        return herd_err(HERD_E_IO, "code_interpreter: cannot create a directory in %s: %s", tmp,
                        strerror(errno));
    }
    child_spec cs = {.python = python, .code = code, .code_len = len};
    cs.plan.cpu_s = l->cpu_s;
    cs.plan.mem_bytes = l->mem_bytes;
    cs.plan.file_bytes = l->file_bytes;
    cs.plan.tmpfs_bytes = l->file_bytes * 4;
    cs.plan.max_procs = l->max_procs;
    cs.plan.max_files = 64;
    cs.plan.disable = l->disable;
    confine_plan_init(&cs.plan, workdir);
    if (cs.plan.root && chown(workdir, cs.plan.uid, cs.plan.gid) != 0) {
        /* only matters without a mount namespace; the run will say if it cannot write */
    }
    size_t wl = strlen(workdir);
    char *script = herd_xmalloc(wl + 16), *env_home = herd_xmalloc(wl + 8), *env_tmp = herd_xmalloc(wl + 8);
    snprintf(script, wl + 16, "%s/main.py", workdir);
    snprintf(env_home, wl + 8, "HOME=%s", workdir);
    snprintf(env_tmp, wl + 8, "TMPDIR=%s", workdir);
    char *argv[] = {"python3", "-I", "-u", script, NULL};
    char *envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin",
                    "LANG=C.UTF-8",
                    env_home,
                    env_tmp,
                    "PYTHONDONTWRITEBYTECODE=1",
                    NULL};
    cs.script = script;
    cs.argv = argv;
    cs.envp = envp;

    int rc = 0;
    int po[2] = {-1, -1}, pe[2] = {-1, -1}, pr[2] = {-1, -1};
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull < 0 || pipe2(po, O_CLOEXEC) || pipe2(pe, O_CLOEXEC) || pipe2(pr, O_CLOEXEC)) {
        rc = herd_err(HERD_E_IO, "code_interpreter: cannot create pipes: %s", strerror(errno));
        goto out;
    }
    pid_t herd = getpid();
    double t0 = now_s();
    pid_t pid = fork();
    if (pid < 0) {
        rc = herd_err(HERD_E_IO, "code_interpreter: fork: %s", strerror(errno));
        goto out;
    }
    if (pid == 0) run_sandbox(&cs, devnull, po[1], pe[1], pr[1], herd);
    setpgid(pid, pid); /* as the child does, so that killpg works from the start */
    close(po[1]);
    close(pe[1]);
    close(pr[1]);
    po[1] = pe[1] = pr[1] = -1;
    stream ss[3] = {
        {.fd = po[0], .cap = l->max_output}, {.fd = pe[0], .cap = l->max_output}, {.fd = pr[0], .cap = 4096}};
    bool open_[3] = {true, true, true};
    for (int i = 0; i < 3; i++) fcntl(ss[i].fd, F_SETFL, O_NONBLOCK);
    bool killed = false, timed_out = false;
    double deadline = t0 + l->wall_s, drain_until = 0;
    while (open_[0] || open_[1] || open_[2]) {
        double t = now_s();
        if (!killed && t >= deadline) {
            killpg(pid, SIGKILL);
            killed = timed_out = true;
            drain_until = t + 5;
        } else if (killed && t >= drain_until) {
            break; /* something outside the process group holds a pipe: stop reading */
        }
        double until = killed ? drain_until : deadline;
        int ms = (int)((until - t) * 1000) + 1;
        struct pollfd pf[3];
        int np = 0, map[3];
        for (int i = 0; i < 3; i++)
            if (open_[i]) {
                pf[np] = (struct pollfd){.fd = ss[i].fd, .events = POLLIN};
                map[np++] = i;
            }
        int n = poll(pf, (nfds_t)np, ms);
        if (n < 0 && errno != EINTR) break;
        for (int k = 0; k < np && n > 0; k++) {
            if (!(pf[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            int i = map[k];
            if (!drain(&ss[i])) {
                open_[i] = false;
                if (i == 2 && !killed) {
                    /* A and B are gone: whatever the code left running goes too */
                    killpg(pid, SIGKILL);
                    killed = true;
                    drain_until = now_s() + 5;
                }
            }
        }
    }
    if (!killed) killpg(pid, SIGKILL);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    bool status_seen = false;
    parse_report(ss[2].buf.p ? ss[2].buf.p : "", r, &status_seen);
    r->timed_out = timed_out && !status_seen;
    r->out = ss[0].buf.p ? ss[0].buf.p : strdup("");
    r->out_len = ss[0].buf.n;
    r->out_truncated = ss[0].truncated;
    r->err = ss[1].buf.p ? ss[1].buf.p : strdup("");
    r->err_len = ss[1].buf.n;
    r->err_truncated = ss[1].truncated;
    free(ss[2].buf.p);
    for (int i = 0; i < 3; i++) close(ss[i].fd);
    po[0] = pe[0] = pr[0] = -1;
    confine_layer_names(r->layers, r->layer_names, sizeof r->layer_names);
    if (!status_seen && !r->timed_out && !r->error) r->error = strdup("the sandbox ended without a status");
out:
    for (int i = 0; i < 2; i++) {
        if (po[i] >= 0) close(po[i]);
        if (pe[i] >= 0) close(pe[i]);
        if (pr[i] >= 0) close(pr[i]);
    }
    if (devnull >= 0) close(devnull);
    remove_tree(workdir);
    confine_plan_free(&cs.plan);
    free(script);
    free(env_home);
    free(env_tmp);
    free(workdir);
    free(python);
    return rc;
}
