/* Point-to-point messaging for tensor parallelism over MPI: every wait polls non-blocking requests with
 * a backoff (Open MPI's blocking calls spin a core; a waiting rank here sleeps) and a deadline, and a
 * peer that errs or stays silent past it ends every rank with one line naming it (MPI_Abort).
 * One thread of a rank at a time calls these (MPI_THREAD_SERIALIZED: serve's passes run on its engine thread). */
#ifndef HERD_DIST_COMM_H
#define HERD_DIST_COMM_H

#include <mpi.h>
#include <stdint.h>

enum { COMM_TAG_CTRL = 1, COMM_TAG_GATHER = 2, COMM_TAG_PIPE = 3, COMM_TAG_KV = 4 };

/* MPI_Init_thread, MPI_ERRORS_RETURN on MPI_COMM_WORLD, the step timeout from HERD_TP_TIMEOUT (seconds,
 * default 60). 0 or a negative MPI error. */
int comm_init(int *argc, char ***argv, int *rank, int *n);
int comm_rank(void);
double comm_timeout(void);

/* Waits for all n requests; peer[i] is request i's other rank, what names the exchange in the error.
 * max_sleep_us bounds the backoff (short inside a step, longer when idle); timeout_s <= 0: no deadline.
 * Aborts every rank on an MPI error or at the deadline, naming the silent peer. */
void comm_wait(MPI_Request *req, int n, const int *peer, const char *what, double timeout_s, int max_sleep_us);

/* A control message from rank 0 (tag COMM_TAG_CTRL) of any length: waits (idle backoff, no deadline)
 * and returns a buffer the caller frees, *len its bytes. */
void *comm_recv_ctrl(int64_t *len, double *idle_s);
/* rank 0: sends len bytes to every follower and waits until each has taken them */
void comm_send_ctrl(const void *buf, int64_t len, const char *what);

/* Ends every rank with "herd: tp: rank R: MSG" (fmt printf-style). */
void comm_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
