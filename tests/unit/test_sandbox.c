/* The code sandbox (src/tools/sandbox.c, confine.c): normal code runs; network, writes outside its
 * directory, fork bombs, endless loops, sleeping past the timeout, memory bombs, huge output and
 * left-behind processes are contained and reported — with every layer the kernel allows, and again
 * with layers switched off to prove each fallback (a combination that cannot contain the code must
 * refuse to run it). Also the code_interpreter result text (herd_builtin_tool_run). Prints which
 * layers were in effect. */
#include <arpa/inet.h>
#include <grp.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "herd.h"
#include "testutil.h"
#include "tools/confine.h"
#include "tools/sandbox.h"

static int tcp_port, udp_port, tcp_fd, udp_fd;

static void listeners(void) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    tcp_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    CHECK(tcp_fd >= 0 && bind(tcp_fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(tcp_fd, 16) == 0,
          "tcp listener: %s", strerror(errno));
    getsockname(tcp_fd, (struct sockaddr *)&a, &al);
    tcp_port = ntohs(a.sin_port);
    a.sin_port = 0;
    udp_fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    CHECK(udp_fd >= 0 && bind(udp_fd, (struct sockaddr *)&a, sizeof a) == 0, "udp socket: %s",
          strerror(errno));
    al = sizeof a;
    getsockname(udp_fd, (struct sockaddr *)&a, &al);
    udp_port = ntohs(a.sin_port);
}

/* nothing reached the loopback listeners */
static bool listeners_untouched(void) {
    int c = accept(tcp_fd, NULL, NULL);
    char b[16];
    ssize_t n = recv(udp_fd, b, sizeof b, 0);
    if (c >= 0) close(c);
    return c < 0 && n < 0;
}

static sandbox_result run(const char *code, const sandbox_limits *l) {
    sandbox_result r;
    int rc = sandbox_run_python(code, strlen(code), l, &r);
    CHECK(rc == 0, "sandbox_run_python failed");
    return r;
}

/* a live (not zombie) process whose command line contains s */
static bool process_alive_now(const char *s) {
    DIR *d = opendir("/proc");
    bool found = false;
    struct dirent *e;
    while (d && !found && (e = readdir(d))) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
        char path[300], buf[4096];
        snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        for (size_t i = 0; i < n; i++)
            if (!buf[i]) buf[i] = ' ';
        buf[n] = 0;
        if (!strstr(buf, s)) continue;
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        f = fopen(path, "r");
        if (!f) continue;
        char st[512] = "";
        if (!fgets(st, sizeof st, f)) st[0] = 0;
        fclose(f);
        const char *p = strrchr(st, ')');
        if (p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X') found = true;
    }
    if (d) closedir(d);
    return found;
}

/* the same, allowing killed processes a moment to finish dying (a bounded wait, not a timing check) */
static bool process_alive_with(const char *s) {
    for (int i = 0; i < 100; i++) {
        if (!process_alive_now(s)) return false;
        usleep(50 * 1000);
    }
    return true;
}

static bool exists(const char *p) {
    struct stat st;
    return lstat(p, &st) == 0;
}

/* the first line of stdout (the code prints its work directory there) */
static void first_line(const sandbox_result *r, char *buf, size_t cap) {
    size_t n = 0;
    while (n + 1 < cap && n < r->out_len && r->out[n] != '\n') {
        buf[n] = r->out[n];
        n++;
    }
    buf[n] = 0;
}

/* ---- what this kernel allows, probed independently of the sandbox's code ---- */

static bool in_child(int (*fn)(void)) {
    pid_t pid = fork();
    if (pid == 0) _exit(fn());
    int st;
    return pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static int probe_userns(void) {
    if (geteuid() == 0 &&
        (setgroups(0, NULL) || setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534)))
        return 1;
    if (unshare(CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWPID) != 0) return 1;
    /* some systems (AppArmor's restrict_unprivileged_userns) allow the namespace but no capability in it */
    return mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0 ? 0 : 1;
}

static int probe_landlock(void) {
    return syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) >= 1 ? 0 : 1;
}

static int probe_seccomp(void) {
    struct sock_filter allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    struct sock_fprog prog = {.len = 1, .filter = &allow};
    return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
                   syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == 0
               ? 0
               : 1;
}

static bool can_userns, can_landlock, can_seccomp;

static void check_config(const char *name, unsigned disable, bool heavy) {
    sandbox_limits l;
    sandbox_default_limits(&l);
    l.disable |= disable;
    l.wall_s = 20;
    char code[8192];

    /* normal code, and which layers are in effect */
    sandbox_result r = run("import os\nprint(os.getcwd())\nprint('hello', 6 * 7)\n", &l);
    if (r.error && strstr(r.error, "sandbox unavailable")) {
        printf("  %-22s layers: %-60s -> refuses: %s\n", name, r.layer_names, r.error);
        CHECK(r.out_len == 0, "%s: refused, yet the code ran", name);
        bool userns = can_userns && !(disable & CONFINE_NO_USERNS);
        bool runnable = userns || (can_landlock && can_seccomp &&
                                   !(disable & (CONFINE_NO_LANDLOCK | CONFINE_NO_SECCOMP)));
        CHECK(!runnable, "%s: refused although this kernel allows %s", name,
              userns ? "user namespaces" : "Landlock and seccomp");
        sandbox_result_free(&r);
        return;
    }
    printf("  %-22s layers: %s\n", name, r.layer_names);
    bool net = (r.layers & LAYER_NETNS) || (r.layers & LAYER_SECCOMP),
         fs = (r.layers & (LAYER_MOUNTNS | LAYER_LANDLOCK));
    CHECK(net && fs, "%s: ran without network or write containment", name);
    CHECK(!((disable & CONFINE_NO_USERNS) && (r.layers & LAYER_USERNS)) &&
              !((disable & CONFINE_NO_LANDLOCK) && (r.layers & LAYER_LANDLOCK)) &&
              !((disable & CONFINE_NO_SECCOMP) && (r.layers & LAYER_SECCOMP)),
          "%s: a layer switched off is in effect: %s", name, r.layer_names);
    CHECK(!can_userns || (disable & CONFINE_NO_USERNS) ||
              ((r.layers & LAYER_USERNS) && (r.layers & LAYER_NETNS) && (r.layers & LAYER_MOUNTNS)),
          "%s: user namespaces work here, but the sandbox has no user/net/mount namespace: %s", name,
          r.layer_names);
    CHECK(!can_landlock || (disable & CONFINE_NO_LANDLOCK) || (r.layers & LAYER_LANDLOCK),
          "%s: Landlock works here, but not in the sandbox: %s", name, r.layer_names);
    CHECK(!can_seccomp || (disable & CONFINE_NO_SECCOMP) || (r.layers & LAYER_SECCOMP),
          "%s: seccomp works here, but not in the sandbox: %s", name, r.layer_names);
    char wd[1024];
    first_line(&r, wd, sizeof wd);
    CHECK(!r.error && r.exit_code == 0 && strstr(r.out, "hello 42\n"),
          "%s: normal code: exit %d, out '%s', err '%s' %s", name, r.exit_code, r.out, r.err,
          r.error ? r.error : "");
    CHECK(wd[0] == '/' && !exists(wd), "%s: the work directory '%s' is removed afterwards", name, wd);
    CHECK((r.layers & (LAYER_NETNS | LAYER_SECCOMP)) && (r.layers & (LAYER_MOUNTNS | LAYER_LANDLOCK)) &&
              (r.layers & LAYER_RLIMITS),
          "%s: ran without the minimum layers (%s)", name, r.layer_names);
    sandbox_result_free(&r);

    /* an exception: the traceback in stderr, exit code 1 */
    r = run("def f():\n    return 1 / 0\nf()\n", &l);
    CHECK(r.exit_code == 1 && strstr(r.err, "Traceback") && strstr(r.err, "ZeroDivisionError"),
          "%s: exception: exit %d, err '%s'", name, r.exit_code, r.err);
    sandbox_result_free(&r);

    /* files inside its directory work */
    r = run("import os\nos.mkdir('d')\nopen('d/f.txt', 'w').write('inside')\nprint(open('d/f.txt').read())\n"
            "open(os.environ['HOME'] + '/h.txt', 'w').write('x')\nopen(os.environ['TMPDIR'] + '/t.txt', "
            "'w').write('x')\n",
            &l);
    CHECK(r.exit_code == 0 && !strcmp(r.out, "inside\n"), "%s: files in its directory: exit %d, err '%s'",
          name, r.exit_code, r.err);
    sandbox_result_free(&r);

    /* network: TCP and UDP to loopback listeners of this test, and DNS */
    snprintf(code, sizeof code,
             "import socket\n"
             "for what, f in [('tcp', lambda: socket.create_connection(('127.0.0.1', %d), timeout=3)),\n"
             "                ('udp', lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', "
             "('127.0.0.1', %d))),\n"
             "                ('tcp6', lambda: socket.create_connection(('::1', %d), timeout=3)),\n"
             "                ('dns', lambda: socket.getaddrinfo('example.com', 80))]:\n"
             "    try:\n"
             "        f(); print(what, 'REACHED')\n"
             "    except Exception as e:\n"
             "        print(what, 'blocked', type(e).__name__)\n",
             tcp_port, udp_port, tcp_port);
    r = run(code, &l);
    CHECK(r.exit_code == 0 && strstr(r.out, "tcp blocked") && strstr(r.out, "udp blocked") &&
              strstr(r.out, "tcp6 blocked") && strstr(r.out, "dns blocked") && !strstr(r.out, "REACHED"),
          "%s: network: out '%s' err '%s'", name, r.out, r.err);
    CHECK(listeners_untouched(), "%s: a packet or connection reached the loopback listeners", name);
    sandbox_result_free(&r);

    /* writes outside its directory: the repository, $HOME, /tmp, its parent directory; /dev/shm may
     * be a private tmpfs, so only the host's must stay untouched */
    char cwd[1024], targets[5][1200];
    if (!getcwd(cwd, sizeof cwd)) strcpy(cwd, ".");
    const char *home = getenv("HOME");
    snprintf(targets[0], sizeof targets[0], "%s/herd-sandbox-escape-%d", cwd, (int)getpid());
    snprintf(targets[1], sizeof targets[1], "%s/herd-sandbox-escape-%d", home ? home : "/root",
             (int)getpid());
    snprintf(targets[2], sizeof targets[2], "/tmp/herd-sandbox-escape-%d", (int)getpid());
    snprintf(targets[3], sizeof targets[3], "../herd-sandbox-escape-%d", (int)getpid());
    snprintf(targets[4], sizeof targets[4], "/dev/shm/herd-sandbox-escape-%d", (int)getpid());
    snprintf(code, sizeof code,
             "import os\n"
             "for p in [%s%s%s, %s%s%s, %s%s%s, %s%s%s]:\n"
             "    try:\n"
             "        open(p, 'w').write('escaped'); print('WROTE', p)\n"
             "    except OSError as e:\n"
             "        print('blocked', e.errno)\n"
             "    try:\n"
             "        os.mkdir(p + '.d'); print('MKDIR', p)\n"
             "    except OSError as e:\n"
             "        print('blocked', e.errno)\n"
             "try:\n"
             "    open('%s', 'w').write('shm')\n"
             "except OSError:\n"
             "    pass\n",
             "'", targets[0], "'", "'", targets[1], "'", "'", targets[2], "'", "'", targets[3], "'",
             targets[4]);
    r = run(code, &l);
    CHECK(r.exit_code == 0 && !strstr(r.out, "WROTE") && !strstr(r.out, "MKDIR"),
          "%s: writes outside: out '%s' err '%s'", name, r.out, r.err);
    for (int i = 0; i < 5; i++) {
        if (i == 3) continue; /* relative to the work directory: /tmp, checked above */
        char d[8192];
        snprintf(d, sizeof d, "%s.d", targets[i]);
        CHECK(!exists(targets[i]) && !exists(d), "%s: %s was written from the sandbox", name, targets[i]);
        unlink(targets[i]);
        rmdir(d);
    }
    sandbox_result_free(&r);

    /* the process limit: forking stops at max_procs */
    l.max_procs = 8;
    r = run("import os, time\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n            "
            "time.sleep(60)\n"
            "            os._exit(0)\n        n += 1\nexcept OSError as e:\n    print('fork limit after', n, "
            "e.errno)\n",
            &l);
    int forked = -1;
    const char *fl = strstr(r.out, "fork limit after ");
    if (fl) forked = atoi(fl + 17);
    /* exact in a user namespace or under herd's own uid; without either, RLIMIT_NPROC counts all the
     * processes of the user's uid, which come and go meanwhile */
    int allowed = (r.layers & (LAYER_USERNS | LAYER_UID)) ? 8 : 8 + 32;
    CHECK(forked >= 0 && forked <= allowed, "%s: fork limit: out '%s' err '%s'", name, r.out, r.err);
    sandbox_result_free(&r);
    l.max_procs = 32;

    /* huge output: capped, reported truncated, and the program is not blocked by it */
    r = run("import sys\nfor i in range(200000):\n    sys.stdout.write('x' * 99 + '\\n')\nprint('done', "
            "file=sys.stderr)\n",
            &l);
    CHECK(r.exit_code == 0 && r.out_truncated && r.out_len == l.max_output && !r.err_truncated &&
              !strcmp(r.err, "done\n"),
          "%s: huge output: exit %d, %zu bytes kept, truncated %d", name, r.exit_code, r.out_len,
          r.out_truncated);
    sandbox_result_free(&r);

    /* memory: one allocation past the address-space limit */
    l.mem_bytes = 256ll << 20;
    r = run("x = bytearray(512 * 1024 * 1024)\n", &l);
    CHECK(r.exit_code == 1 && strstr(r.err, "MemoryError"), "%s: memory bomb: exit %d err '%s'", name,
          r.exit_code, r.err);
    sandbox_result_free(&r);
    l.mem_bytes = 1ll << 30;

    if (!heavy) return;
    /* an endless loop: killed at the CPU limit */
    l.cpu_s = 1;
    r = run("while True:\n    pass\n", &l);
    CHECK(r.term_signal == SIGXCPU && !r.timed_out, "%s: endless loop: signal %d, timed out %d", name,
          r.term_signal, r.timed_out);
    sandbox_result_free(&r);

    /* sleeping forever: killed at the wall-clock limit, with its output so far */
    l.wall_s = 2;
    r = run("import time\nprint('before', flush=True)\ntime.sleep(3600)\n", &l);
    CHECK(r.timed_out && !strcmp(r.out, "before\n"), "%s: sleep: timed out %d, out '%s'", name, r.timed_out,
          r.out);
    sandbox_result_free(&r);

    /* a fork bomb (every process forks forever, ignoring errors): contained, then all killed */
    r = run("import os\nprint(os.getcwd(), flush=True)\nwhile True:\n    try:\n        os.fork()\n"
            "    except Exception:\n        pass\n",
            &l);
    first_line(&r, wd, sizeof wd);
    CHECK(r.timed_out || r.term_signal, "%s: fork bomb: timed out %d, signal %d", name, r.timed_out,
          r.term_signal);
    CHECK(wd[0] == '/' && !process_alive_with(wd), "%s: fork bomb: processes are left running", name);
    sandbox_result_free(&r);

    /* processes left behind (even in a new session if it could) are killed when the code ends */
    l.wall_s = 20;
    r = run(
        "import os, subprocess\ntry:\n    subprocess.Popen(['sleep', '300.4242'], start_new_session=True)\n"
        "except OSError:\n    subprocess.Popen(['sleep', '300.4242'])\nprint('started')\n",
        &l);
    CHECK(r.exit_code == 0 && !strcmp(r.out, "started\n"), "%s: background process: exit %d err '%s'", name,
          r.exit_code, r.err);
    CHECK(!process_alive_with("sleep 300.4242"), "%s: a background process outlived the sandbox", name);
    sandbox_result_free(&r);
    l.cpu_s = 5;
}

static void check_tool_result(void) {
    char *res = NULL;
    int rc = herd_builtin_tool_run("code_interpreter", "{\"code\": \"print(6 * 7)\"}", &res);
    CHECK(rc == HERD_OK && res && !strcmp(res, "completed\n[stdout]\n42\n\n[/stdout]"), "result: '%s'", res);
    free(res);
    rc = herd_builtin_tool_run(
        "code_interpreter",
        "{\"code\": \"import sys\\nsys.stdout.buffer.write(b'a\\\\xffb')\\nraise SystemExit(3)\"}", &res);
    CHECK(rc == HERD_OK && res &&
              !strcmp(res, "completed with exit code 3\n[stdout]\na\xef\xbf\xbd"
                           "b\n[/stdout]"),
          "exit code and invalid UTF-8: '%s'", res);
    free(res);
    herd_tool_params p = {.timeout_s = 1};
    rc = herd_builtin_tool_run_ex("code_interpreter", "{\"code\": \"import time\\ntime.sleep(60)\"}", &p,
                                  &res);
    CHECK(rc == HERD_OK && res && !strncmp(res, "timeout: ", 9), "timeout result: '%s'", res);
    free(res);
    res = NULL;
    CHECK(herd_builtin_tool_run("code_interpreter", "{\"query\": \"x\"}", &res) == HERD_E_ARG && !res,
          "arguments without code");
    CHECK(herd_builtin_tool_run("code_interpreter", "not json", &res) == HERD_E_ARG && !res,
          "arguments not JSON");
    CHECK(herd_builtin_tool_run("rm_rf", "{}", &res) == HERD_E_ARG && !res, "unknown tool");
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    listeners();
    can_userns = in_child(probe_userns);
    can_landlock = in_child(probe_landlock);
    can_seccomp = in_child(probe_seccomp);
    printf("this kernel allows: user namespaces %s, Landlock %s, seccomp %s\n", can_userns ? "yes" : "no",
           can_landlock ? "yes" : "no", can_seccomp ? "yes" : "no");
    printf("sandbox layers by configuration (euid %d):\n", (int)geteuid());
    check_config("all layers", 0, true);
    check_config("no user namespace", CONFINE_NO_USERNS, true);
    check_config("no seccomp", CONFINE_NO_SECCOMP, false);
    check_config("no landlock", CONFINE_NO_LANDLOCK, false);
    check_config("only seccomp", CONFINE_NO_USERNS | CONFINE_NO_LANDLOCK, false);
    check_config("only landlock", CONFINE_NO_USERNS | CONFINE_NO_SECCOMP, false);
    check_tool_result();
    close(tcp_fd);
    close(udp_fd);
    return TU_DONE("test_sandbox");
}
