/* Tensor parallelism over MPI (docs/SCALING.md): the entry point of build/herd-mpi.
 *
 *   mpirun --bind-to none -np N herd-mpi run|logits|... -m MODEL ... --tp N
 *
 * Without --tp, dist_main is main (a single process, no MPI). With it, every rank loads its shard of
 * MODEL (model_shard); rank 0 runs the command (it alone tokenizes, samples and prints) and its context
 * sends each forward pass to the followers, which run the same pass over their heads and rows; the
 * ranks exchange activations with all-gathers (tp.c), so the outputs are bit-identical to one process. */
#ifndef HERD_DIST_DIST_H
#define HERD_DIST_DIST_H

int dist_main(int argc, char **argv, int (*cli_main)(int, char **));

#endif
