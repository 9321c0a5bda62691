/* MPI exchange latency and bandwidth by message size (docs/SCALING.md): MPI_Allgather, MPI_Allreduce
 * (sum of floats) and herd's linear all-gather of point-to-point messages (src/dist/tp.c), each on every
 * rank, per call: the median of REPS timed calls after warm-up, the slowest rank's time.
 *
 *   mpicc -O2 -o build/bench-mpi bench/mpi/collectives.c
 *   mpirun --bind-to none -np 2 build/bench-mpi                       # shared memory (vader)
 *   mpirun --bind-to none --mca btl tcp,self -np 2 build/bench-mpi    # TCP loopback
 * Sizes are the bytes each rank contributes (all-gather) or reduces (all-reduce). */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REPS 51

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* herd's all-gather: send mine to every rank, receive every rank's */
static void p2p_allgather(const float *mine, float *all, int count, int rank, int n, MPI_Request *req) {
    int k = 0;
    for (int p = 0; p < n; p++) {
        if (p == rank) continue;
        MPI_Irecv(all + (size_t)p * count, count, MPI_FLOAT, p, 7, MPI_COMM_WORLD, &req[k++]);
        MPI_Isend(mine, count, MPI_FLOAT, p, 7, MPI_COMM_WORLD, &req[k++]);
    }
    memcpy(all + (size_t)rank * count, mine, (size_t)count * sizeof(float));
    MPI_Waitall(k, req, MPI_STATUSES_IGNORE);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, n;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &n);
    const int max_count = 1 << 18; /* 1 MiB of floats per rank (a token of 405B: 16384 floats) */
    float *mine = malloc((size_t)max_count * sizeof(float)), *all = malloc((size_t)max_count * n * sizeof(float));
    float *red = malloc((size_t)max_count * sizeof(float));
    MPI_Request *req = malloc((size_t)2 * n * sizeof *req);
    for (int i = 0; i < max_count; i++) mine[i] = (float)(i % 977) * 0.001f + (float)rank;
    if (rank == 0)
        printf("ranks %d\n%10s %14s %14s %14s %12s %12s\n", n, "bytes", "allgather_us", "p2p_gather_us", "allreduce_us",
               "ag_GB/s", "ar_GB/s");
    for (int count = 1; count <= max_count; count *= 4) {
        double t[3][REPS];
        for (int op = 0; op < 3; op++) {
            for (int r = -5; r < REPS; r++) {
                MPI_Barrier(MPI_COMM_WORLD);
                double t0 = MPI_Wtime();
                if (op == 0) MPI_Allgather(mine, count, MPI_FLOAT, all, count, MPI_FLOAT, MPI_COMM_WORLD);
                else if (op == 1) p2p_allgather(mine, all, count, rank, n, req);
                else MPI_Allreduce(mine, red, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
                double dt = MPI_Wtime() - t0, worst;
                MPI_Allreduce(&dt, &worst, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
                if (r >= 0) t[op][r] = worst;
            }
            qsort(t[op], REPS, sizeof(double), cmp_d);
        }
        double bytes = (double)count * 4;
        if (rank == 0)
            printf("%10.0f %14.1f %14.1f %14.1f %12.2f %12.2f\n", bytes, t[0][REPS / 2] * 1e6, t[1][REPS / 2] * 1e6,
                   t[2][REPS / 2] * 1e6, bytes * (n - 1) / t[0][REPS / 2] / 1e9, bytes / t[2][REPS / 2] / 1e9);
    }
    free(mine), free(all), free(red), free(req);
    MPI_Finalize();
    return 0;
}
