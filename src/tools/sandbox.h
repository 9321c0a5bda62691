/* Running untrusted python code (the code_interpreter tool) in a sandbox. See docs/TOOLS.md for
 * the security model.
 *
 * Processes: herd forks A (a new process group; switches uid, enters new user/net/mount/pid
 * namespaces, makes the file system read-only — confine.h), A forks B (pid 1 of the new pid
 * namespace: it reaps every orphan and reports the code's exit status; when it exits the kernel
 * kills everything left in the namespace), B forks C, which locks itself down (no capabilities,
 * rlimits, Landlock, seccomp) and execs python3 on the code. stdin is /dev/null; stdout and stderr
 * are pipes herd reads with poll, keeping at most max_output bytes of each; a wall-clock timeout
 * SIGKILLs the whole process group. The work directory (cwd, $HOME, $TMPDIR) is fresh, private and
 * removed afterwards.
 *
 * The sandbox fails closed: if neither a network namespace nor seccomp can be set up, or neither a
 * read-only mount namespace nor Landlock, the code is not run and the result says why. */
#ifndef HERD_TOOLS_SANDBOX_H
#define HERD_TOOLS_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    double wall_s;      /* wall-clock timeout (default 10 s) */
    int cpu_s;          /* CPU seconds per process (default 5) */
    int64_t mem_bytes;  /* address space per process (default 1 GiB) */
    int max_procs;      /* processes and threads (default 32) */
    int64_t file_bytes; /* largest file it may write (default 16 MiB); also the size of its tmpfs x4 */
    size_t max_output;  /* bytes kept of stdout and of stderr each (default 16 KiB) */
    unsigned disable;   /* CONFINE_NO_* (tests); HERD_SANDBOX_DISABLE=userns,landlock,seccomp sets them */
} sandbox_limits;

typedef struct {
    char *out, *err; /* captured stdout / stderr (NUL-terminated, owned) */
    size_t out_len, err_len;
    bool out_truncated, err_truncated;
    int exit_code;   /* when the code exited; -1 otherwise */
    int term_signal; /* the signal that killed the code, or 0 */
    bool timed_out;  /* the wall clock ran out (everything was killed) */
    char *error;     /* the code could not be run: why (owned); NULL when it ran */
    unsigned layers; /* confinement layers in effect (LAYER_*, confine.h) */
    char layer_names[160];
} sandbox_result;

void sandbox_default_limits(sandbox_limits *l);
/* Runs `code` with python3. Returns 0 with *r filled whenever a result can be given (also when the
 * code failed, timed out or could not be run: see r->error); negative only for a herd-side failure
 * (no temporary directory, no pipes, fork failed), with herd_last_error() set. */
int sandbox_run_python(const char *code, size_t len, const sandbox_limits *l, sandbox_result *r);
void sandbox_result_free(sandbox_result *r);

#endif
