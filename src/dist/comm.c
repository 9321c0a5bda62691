#include "comm.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <time.h>

#include "../base/log.h"

static int g_rank = 0, g_n = 1;
static double g_timeout = 60.0;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int comm_init(int *argc, char ***argv, int *rank, int *n) {
    /* serialized: serve makes its passes on the engine's thread, never two MPI calls at once */
    int provided, rc = MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided);
    if (rc != MPI_SUCCESS) return -1;
    if (provided < MPI_THREAD_SERIALIZED) {
        fprintf(stderr, "herd: error: tp: this MPI library gives thread level %d, herd needs MPI_THREAD_SERIALIZED\n", provided);
        MPI_Finalize();
        return -1;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_n);
    const char *t = getenv("HERD_TP_TIMEOUT");
    if (t && atof(t) > 0) g_timeout = atof(t);
    *rank = g_rank;
    *n = g_n;
    return 0;
}

int comm_rank(void) { return g_rank; }
double comm_timeout(void) { return g_timeout; }

void comm_fail(const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "herd: tp: rank %d: %s; ending every rank\n", g_rank, msg);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    abort();
}

static void mpi_fail(int err, int peer, const char *what) {
    char es[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(err, es, &len);
    comm_fail("%s with rank %d failed: %.*s", what, peer, len, es);
}

/* The backoff: polls back to back for COMM_SPIN_S (a step's exchange usually completes within
 * microseconds of the slowest rank's matmul, and a sleep costs ~50 us of timer slack), then polls after
 * sched_yield up to 1 ms, then sleeps doubling from 2 us to max_sleep_us, so a rank that waits long
 * costs one wake-up per max_sleep_us. */
#define COMM_SPIN_S 100e-6
#define COMM_YIELD_S 1e-3
void comm_wait(MPI_Request *req, int n, const int *peer, const char *what, double timeout_s, int max_sleep_us) {
    double t0 = now_s();
    long sleep_ns = 0;
    for (;;) {
        int left = 0;
        for (int i = 0; i < n; i++) {
            if (req[i] == MPI_REQUEST_NULL) continue;
            int done = 0;
            MPI_Status st;
            int rc = MPI_Test(&req[i], &done, &st);
            if (rc != MPI_SUCCESS) mpi_fail(rc, peer[i], what);
            if (!done) left++;
        }
        if (!left) return;
        if (timeout_s > 0 && now_s() - t0 > timeout_s) {
            for (int i = 0; i < n; i++)
                if (req[i] != MPI_REQUEST_NULL)
                    comm_fail("rank %d did not answer within %.0f s (%s; HERD_TP_TIMEOUT)", peer[i], timeout_s, what);
        }
        double waited = now_s() - t0;
        if (waited < COMM_SPIN_S) continue;
        if (waited < COMM_YIELD_S) {
            sched_yield();
            continue;
        }
        sleep_ns = sleep_ns ? sleep_ns * 2 : 2000;
        if (sleep_ns > (long)max_sleep_us * 1000) sleep_ns = (long)max_sleep_us * 1000;
        struct timespec ts = {0, sleep_ns};
        nanosleep(&ts, NULL);
    }
}

void *comm_recv_ctrl(int64_t *len, double *idle_s) {
    double t0 = now_s();
    long sleep_ns = 0;
    int flag = 0;
    MPI_Status st;
    for (;;) {
        int rc = MPI_Iprobe(0, COMM_TAG_CTRL, MPI_COMM_WORLD, &flag, &st);
        if (rc != MPI_SUCCESS) mpi_fail(rc, 0, "waiting for rank 0's next step");
        if (flag) break;
        if (now_s() - t0 < COMM_SPIN_S) continue; /* the next step usually follows at once */
        /* idle: up to 2 ms between polls (about 500 cheap wake-ups a second) */
        sleep_ns = sleep_ns ? sleep_ns * 2 : 2000;
        if (sleep_ns > 2000000) sleep_ns = 2000000;
        struct timespec ts = {0, sleep_ns};
        nanosleep(&ts, NULL);
    }
    if (idle_s) *idle_s += now_s() - t0;
    int count = 0;
    MPI_Get_count(&st, MPI_BYTE, &count);
    void *buf = herd_xmalloc((size_t)count + 1);
    MPI_Request r;
    int peer = 0, rc = MPI_Irecv(buf, count, MPI_BYTE, 0, COMM_TAG_CTRL, MPI_COMM_WORLD, &r);
    if (rc != MPI_SUCCESS) mpi_fail(rc, 0, "receiving a step");
    comm_wait(&r, 1, &peer, "receiving a step", g_timeout, 1000);
    *len = count;
    return buf;
}

void comm_send_ctrl(const void *buf, int64_t len, const char *what) {
    MPI_Request *r = herd_xmalloc((size_t)g_n * sizeof *r);
    int *peer = herd_xmalloc((size_t)g_n * sizeof *peer);
    int k = 0;
    for (int p = 1; p < g_n; p++) {
        int rc = MPI_Isend(buf, (int)len, MPI_BYTE, p, COMM_TAG_CTRL, MPI_COMM_WORLD, &r[k]);
        if (rc != MPI_SUCCESS) mpi_fail(rc, p, what);
        peer[k++] = p;
    }
    comm_wait(r, k, peer, what, g_timeout, 1000);
    free(r);
    free(peer);
}
