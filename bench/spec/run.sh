#!/bin/bash
# Speculative decoding, herd vs llama.cpp (docs/BENCHMARKS.md, "Speculative decoding"). Never part of
# make test. Writes the models once into $DIR (default build/bench-spec), two pairs:
#   1b:    target a Llama 3.2 1B-shaped random-weight model in q8_0 (herd synth --shape 1b), draft the same
#          weights (same seed) in q4_0
#   small: target 256 wide, 2 layers, f32; draft its q8_0 twin (herd quantize): 3.5x fewer bytes per token
# and prints for each, on the same files, threads and a summarization-style prompt:
#   1. the cost of verifying k = 0..16 drafted tokens relative to one decode step (bench/spec/verify.c)
#   2. generated tokens/s of herd run: plain, --draft twin, --lookup 3; and of llama.cpp's example programs
#      llama-speculative (-md twin) and llama-lookup, built from node-llama-cpp's source
#      bundle by tests/ref/build_llama_tools.sh (skipped when they cannot be built).
# Usage: bench/spec/run.sh [THREADS (2)] [N_PREDICT (64)] [DRAFT_MAX (16)]
set -u
cd "$(dirname "$0")/../.."
T=${1:-2} N=${2:-64} K=${3:-16}
HERD=$PWD/build/herd
DIR=${DIR:-$PWD/build/bench-spec}
VOCAB=$PWD/build/ref/llama31-vocab.gguf
mkdir -p "$DIR"
[ -f "$DIR/t-q8_0.gguf" ] || "$HERD" synth --vocab "$VOCAB" -o "$DIR/t-q8_0.gguf" --shape 1b --type q8_0 --seed 11 --ctx 4096 || exit 1
[ -f "$DIR/t-q4_0.gguf" ] || "$HERD" synth --vocab "$VOCAB" -o "$DIR/t-q4_0.gguf" --shape 1b --type q4_0 --seed 11 --ctx 4096 || exit 1
[ -f "$DIR/s-f32.gguf" ] || "$HERD" synth --vocab "$VOCAB" -o "$DIR/s-f32.gguf" --n-embd 256 --n-head 4 --n-head-kv 2 \
    --n-layer 2 --n-ff 512 --type f32 --ctx 4096 --seed 1 || exit 1
[ -f "$DIR/s-q8_0.gguf" ] || "$HERD" quantize "$DIR/s-f32.gguf" "$DIR/s-q8_0.gguf" Q8_0 >/dev/null || exit 1
gcc -std=c11 -O2 -D_GNU_SOURCE -Iinclude -o build/bench_spec_verify bench/spec/verify.c build/libherd.a \
    -lmicrohttpd -lcurl -ljansson -lm -lpthread || exit 1

cat >"$DIR/prompt.txt" <<'TXT'
Summarize the following report in three sentences.

The city council met on Tuesday to discuss the new public transport plan. The plan proposes three new
bus lines, a tram line along the river, and longer opening hours for the central station. The council
heard from residents, shop owners and the transport company. Residents asked for more buses in the
evening and on weekends, and for better access for wheelchairs and prams. Shop owners asked that the
tram line along the river should not close the street to cars during the building works. The transport
company said that the three new bus lines could start in the spring, and that the tram line along the
river would take two years to build. The council asked the transport company to publish a timetable for
the three new bus lines, and to report on the cost of longer opening hours for the central station.
The council will vote on the plan at its next meeting.

Summary: The city council met on Tuesday to discuss the new public transport plan. The plan proposes
TXT

for pair in 1b small; do
case $pair in
    1b) TGT=$DIR/t-q8_0.gguf DFT=$DIR/t-q4_0.gguf ;;
    small) TGT=$DIR/s-f32.gguf DFT=$DIR/s-q8_0.gguf ;;
esac
echo "##### $pair: target $(basename "$TGT"), draft $(basename "$DFT")"
echo "== verification cost, $T threads ($(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg))"
build/bench_spec_verify "$TGT" "$T" 5

tps() { sed -n 's/.*generated [0-9]* tokens at \([0-9.]*\) t\/s.*/\1/p'; }
echo
echo "== end to end: $N tokens, greedy, $T threads, --draft-max $K"
echo "| run | tokens/s | drafted / accepted |"
echo "|---|---|---|"
for mode in plain draft lookup; do
    case $mode in
        plain) extra=() ;;
        draft) extra=(--draft "$DFT" --draft-max "$K") ;;
        lookup) extra=(--lookup 3 --draft-max "$K") ;;
    esac
    "$HERD" run -m "$TGT" -f "$DIR/prompt.txt" -n "$N" --temp 0 -t "$T" -c 4096 "${extra[@]}" >/dev/null 2>"$DIR/herd-$pair-$mode.log"
    st=$(sed -n 's/.*drafted \([0-9]*\), accepted \([0-9]*\).*/\1 \/ \2/p' "$DIR/herd-$pair-$mode.log")
    echo "| herd $mode | $(tps <"$DIR/herd-$pair-$mode.log") | ${st:--} |"
done

BIN=$(tests/ref/build_llama_tools.sh llama-speculative llama-lookup 2>/dev/null) || { echo "(llama.cpp tools unavailable: skipped)"; continue; }
P=$(cat "$DIR/prompt.txt")
"$BIN/llama-speculative" -m "$TGT" -md "$DFT" -p "$P" -n "$N" -t "$T" -td "$T" -c 4096 --temp 0 --draft-max "$K" \
    --draft-min 0 --draft-p-min 0 --no-warmup >"$DIR/llama-$pair-spec.out" 2>"$DIR/llama-$pair-spec.log"
"$BIN/llama-lookup" -m "$TGT" -p "$P" -n "$N" -t "$T" -c 4096 --temp 0 --draft-max "$K" --no-warmup \
    >"$DIR/llama-$pair-lookup.out" 2>"$DIR/llama-$pair-lookup.log"
for x in spec lookup; do
    sp=$(grep -ho "speed: *[0-9.]* t/s" "$DIR/llama-$pair-$x.log" "$DIR/llama-$pair-$x.out" | head -1 | grep -o "[0-9.]*" | head -1)
    dr=$(grep -ho "n_drafted *= *[0-9]*" "$DIR/llama-$pair-$x.log" | grep -o "[0-9]*$" | head -1)
    ac=$(grep -ho "n_accept *= *[0-9]*" "$DIR/llama-$pair-$x.log" | grep -o "[0-9]*$" | head -1)
    echo "| llama.cpp llama-$x | ${sp:-?} | ${dr:-?} / ${ac:-?} |"
done
done
