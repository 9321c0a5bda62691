#!/bin/bash
# Decode at depth, herd vs llama.cpp's llama-bench, same GGUF, same threads, same KV cache types
# (docs/BENCHMARKS.md, "Decode at depth"; issue 16). Never part of make test.
#
# The model (written once into $DIR, default build/bench-depth) is a random-weight Llama 3.1 8B-shaped
# file from `herd synth --shape 8b --n-layer L --type q4_0` (n_embd 4096, 32 heads of 128, 8 KV heads,
# n_ff 14336, the 128256-token vocabulary) with only L layers (default 1): the full 32 layers cannot fill
# 64K positions on 2 cores in reasonable time. Attention per layer is exactly the 8B model's; its share of
# a token's bytes is smaller than in the full model (the output matrix weighs more), so the attention's
# speed shows most at the largest depth.
# For each KV type (f16 and q8_0, K and V alike) and each depth, it runs, interleaved (herd, llama.cpp,
# herd, llama.cpp ... ROUNDS times):
#   herd bench -m F -p 0 -n N -d D -r R -t T --kv-type KV --json
#   llama-bench -m F -p 0 -n N -d D -r R -t T -ctk KV -ctv KV -fa on -o json
# (both fill the D positions once, untimed, then time R runs of N single-token decodes after them;
# llama-bench needs flash attention (-fa on) for a quantized V; f16 uses -fa on as well, herd's attention
# being a tiled flash-style kernel) and prints tokens/s of each, herd/llama.cpp, and the load average.
# FILL=chunked times llama.cpp with bench/depth/llama_depth.cpp (built here against the llama-tools build's
# static libraries) instead of llama-bench: the same timed decodes, but the depth filled in 2,048-position
# chunks that do not attend to each other (llama-bench's causal fill of 65,536 positions takes 2-2.5 hours
# on 2 cores; this one ~2 minutes; a decode's cost depends on how many positions it attends to, not on what
# they hold; see that file and docs/BENCHMARKS.md for the check against llama-bench at 16K). D must then be
# below 2048 or a multiple of it.
# Usage: bench/depth/run.sh [THREADS (2)] [DEPTHS ("1024 16384 65536")] [KV_TYPES ("f16 q8_0")]
#        env: LLAMA_BIN (a folder holding llama-bench; default: tests/ref/build_llama_tools.sh builds it) LAYERS (1) N (32 decodes) R (3 reps) ROUNDS (2) DIR
#             FILL (bench: llama-bench; chunked: llama_depth)
set -u
cd "$(dirname "$0")/../.."
T=${1:-2} DEPTHS=${2:-"1024 16384 65536"} KVS=${3:-"f16 q8_0"}
L=${LAYERS:-1} N=${N:-32} R=${R:-3} ROUNDS=${ROUNDS:-2}
HERD=$PWD/build/herd
DIR=${DIR:-$PWD/build/bench-depth}
VOCAB=$PWD/build/ref/llama31-vocab.gguf
F=$DIR/8b-l$L-q4_0.gguf
mkdir -p "$DIR"
[ -x "$HERD" ] || { echo "build herd first (make)" >&2; exit 1; }
[ -f "$F" ] || "$HERD" synth --vocab "$VOCAB" -o "$F" --shape 8b --n-layer "$L" --type q4_0 --ctx 131072 --seed 7 \
    >/dev/null || exit 1
BIN=${LLAMA_BIN:-$(tests/ref/build_llama_tools.sh llama-bench)} || { echo "llama-bench unavailable" >&2; exit 1; }
FILL=${FILL:-bench}
if [ "$FILL" = chunked ]; then
    LT=$PWD/build/ref/llama-tools
    LS=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$LT/build/CMakeCache.txt") LB=$LT/build
    c++ -O2 -std=c++17 -I"$LS/include" -I"$LS/ggml/include" bench/depth/llama_depth.cpp -o "$DIR/llama_depth" \
        "$LB/src/libllama.a" "$LB/ggml/src/libggml.a" "$LB/ggml/src/libggml-cpu.a" "$LB/ggml/src/libggml-base.a" \
        -ldl -lm -fopenmp -lpthread || { echo "cannot build llama_depth" >&2; exit 1; }
fi

load() { cut -d' ' -f1-3 /proc/loadavg; }
herd_tps() { # KV DEPTH -> tokens/s
    "$HERD" bench -m "$F" -p 0 -n "$N" -d "$2" -r "$R" -t "$T" --kv-type "$1" --json 2>"$DIR/herd.err" |
        python3 -c 'import json,sys; print("%.2f" % json.load(sys.stdin)["tg"]["tokens_per_s"])' 2>/dev/null || echo "?"
}
llama_tps() {
    if [ "$FILL" = chunked ]; then
        "$DIR/llama_depth" "$F" "$2" "$N" "$R" "$T" "$1" --fill chunked 2>"$DIR/llama.err" |
            python3 -c 'import json,sys; print("%.2f" % json.load(sys.stdin)["avg_ts"])' 2>/dev/null || echo "?"
        return
    fi
    "$BIN/llama-bench" -m "$F" -p 0 -n "$N" -d "$2" -r "$R" -t "$T" -ctk "$1" -ctv "$1" -fa on -o json \
        2>"$DIR/llama.err" | python3 -c 'import json,sys; print("%.2f" % json.load(sys.stdin)[0]["avg_ts"])' 2>/dev/null || echo "?"
}
echo "model: $(basename "$F") (8B widths, $L layer(s), Q4_0), $T threads, $N decodes x $R reps per run, $(nproc) CPUs, llama.cpp fill: $FILL"
echo "| KV | depth | round | herd tok/s | load | llama.cpp tok/s | load | herd/llama.cpp |"
echo "|---|---|---|---|---|---|---|---|"
for kv in $KVS; do
    for d in $DEPTHS; do
        for r in $(seq 1 "$ROUNDS"); do
            lh=$(load); h=$(herd_tps "$kv" "$d")
            # herd's figure on stderr at once: a llama.cpp fill that outlasts the caller's patience keeps it
            echo "(herd $kv depth $d round $r: $h tok/s, load $lh; llama-bench next, $(date -u +%T))" >&2
            ll=$(load); l=$(llama_tps "$kv" "$d")
            ratio=$(python3 -c "print('%.2f' % ($h / $l))" 2>/dev/null || echo "?")
            echo "| $kv | $d | $r | $h | $lh | $l | $ll | $ratio |"
        done
    done
done
