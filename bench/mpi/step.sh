#!/bin/bash
# The cost model of docs/SCALING.md against measured decode steps (never part of make test).
#   bench/mpi/step.sh [MODEL...]        default: build/bench/tiny-q8_0.gguf build/bench/1b-q8_0.gguf
# Env: N (ranks, 2), TG (decoded tokens per run, 32), REPS (runs each, 3).
# For each model:
#   t1  : one process, N threads (this machine's compute and bandwidth, as the N ranks share them here):
#         ms per decode step, `herd bench -p 0 -n TG`;
#   tN  : mpirun -np N --tp N, one thread per rank, the same bench; HERD_TP_DEBUG=1 gives rank 0's exchange
#         count and time, hence X (exchanges per step) and the measured communication share of a step;
#   α   : one exchange of a decode step's size (q_dim .. n_ff floats / N per rank), from bench/mpi/collectives.c
#         on the same ranks (herd's point-to-point all-gather, median of 51, slowest rank);
#   model: t(N) = t1 + X·α (the compute of one machine is the same work split N ways; on several machines
#         it would be t1_machine / N). Prints predicted / measured.
# Runs alternate (single, ranks, single, ranks...) so that drift hits both; the load average is printed
# before each pair: the check is meaningful on a quiet machine only.
set -eu
cd "$(dirname "$0")/../.."
N=${N:-2}; TG=${TG:-32}; REPS=${REPS:-3}
models=("$@"); [ ${#models[@]} -eq 0 ] && models=(build/bench/tiny-q8_0.gguf build/bench/1b-q8_0.gguf)
command -v mpirun >/dev/null && command -v mpicc >/dev/null || { echo "needs openmpi-bin libopenmpi-dev" >&2; exit 1; }
make -s build/herd build/herd-mpi >/dev/null
mpicc -O2 -o build/bench-mpi bench/mpi/collectives.c
MPIRUN=(mpirun --oversubscribe --bind-to none)
[ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT

"${MPIRUN[@]}" -np "$N" build/bench-mpi >"$TMP/coll.txt"
tg() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).tg.tokens_per_s))'; }

printf '%s | %d ranks, 1 thread each, vs one process with %d threads | tg%d, %d runs | nproc %s\n' \
    "$(date -u +%Y-%m-%dT%H:%MZ)" "$N" "$N" "$TG" "$REPS" "$(nproc)"
for m in "${models[@]}"; do
    [ -f "$m" ] || { echo "no $m (bench/compare writes build/bench/*.gguf)" >&2; continue; }
    : >"$TMP/one"; : >"$TMP/tp"; : >"$TMP/ex"
    for ((r = 0; r < REPS; r++)); do
        echo "load $(cut -d' ' -f1 /proc/loadavg)" >&2
        build/herd bench -m "$m" -t "$N" -p 0 -n "$TG" -r 1 --json | tg >>"$TMP/one"
        HERD_TP_DEBUG=1 "${MPIRUN[@]}" -np "$N" build/herd-mpi bench -m "$m" -t 1 -p 0 -n "$TG" -r 1 --json --tp "$N" \
            2>"$TMP/log" | tg >>"$TMP/tp"
        grep '^tp: rank 0 ' "$TMP/log" >>"$TMP/ex" || { cat "$TMP/log" >&2; exit 1; }
    done
    python3 - "$m" "$N" "$TMP/one" "$TMP/tp" "$TMP/ex" "$TMP/coll.txt" <<'PY'
import re, statistics, struct, sys
m, n, one, tp, ex, coll = sys.argv[1], int(sys.argv[2]), *sys.argv[3:]
med = lambda f: statistics.median(float(x) for x in open(f).read().split())
t1, tn = 1e3 / med(one), 1e3 / med(tp)           # ms per decode step
steps = exch = secs = 0
for line in open(ex):
    g = re.search(r"(\d+) steps, (\d+) exchanges took ([\d.]+) s", line)
    steps += int(g[1]); exch += int(g[2]); secs += float(g[3])
X = exch / steps                                  # exchanges per step (bench's warm-up steps included)
comm_ms = secs / steps * 1e3                      # rank 0's time in exchanges per step, measured
# n_embd from `herd info` (the exchanges move n_embd .. n_ff floats; their size per rank is width / N)
import subprocess
out = subprocess.run(["build/herd", "info", m], capture_output=True, text=True).stdout
E = int(re.search(r"n_embd (\d+)", out)[1])
size = E * 4 // n                                 # bytes per rank of an n_embd-wide exchange
rows = [l.split() for l in open(coll) if l.strip() and l.split()[0].isdigit()]
# collectives.c rows: bytes allgather p2p allreduce (µs); take herd's p2p at the nearest size at or above
alpha = None
for r in rows:
    if int(r[0]) >= size: alpha = float(r[2]) / 1e3; break
if alpha is None: alpha = float(rows[-1][2]) / 1e3
pred = t1 + X * alpha
print(f"{m.split('/')[-1]}: one process {t1:.2f} ms/step; --tp {n} {tn:.2f} ms/step (communication {comm_ms:.2f} ms = "
      f"{100 * comm_ms / tn:.0f} % of the step; {X:.1f} exchanges, α {alpha * 1e3:.1f} µs at {size} B); "
      f"model {pred:.2f} ms -> predicted / measured {pred / tn:.2f}")
PY
done
