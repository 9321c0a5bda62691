#!/bin/bash
# Speculative decoding, herd vs llama.cpp (docs/BENCHMARKS.md, "Speculative decoding"). Never part of
# make test. Writes the models once into $DIR (default build/bench-spec), two pairs:
#   1b:    target a Llama 3.2 1B-shaped random-weight model in q8_0 (herd synth --shape 1b), draft the same
#          weights (same seed) in q4_0
#   small: target 256 wide, 2 layers, f32; draft its q8_0 twin (herd quantize): 3.5x fewer bytes per token
#   mid:   target 1024 wide, 4 layers (16 heads, 4 KV heads, n_ff 2048), f32; draft its q8_0 twin
# and prints for each, on the same files, threads and a summarization-style prompt:
#   1. the cost of verifying k = 0..16 drafted tokens relative to one decode step (bench/spec/verify.c)
#   2. generated tokens/s of herd run: plain, --draft twin, --lookup 3; and of llama.cpp's example programs
#      llama-speculative (-md twin) and llama-lookup, built from node-llama-cpp's source
#      bundle by tests/ref/build_llama_tools.sh (skipped when they cannot be built).
#   The end-to-end runs are interleaved (herd plain, herd --draft, llama-speculative, herd --lookup,
#   llama-lookup; ROUNDS times) with the load average at the start of each round, and the ratios
#   herd/llama.cpp of generation tokens/s (llama.cpp's "decoded N tokens ... speed" line: the generation
#   phase, as herd run's "generated N tokens at" line).
# Usage: bench/spec/run.sh [THREADS (2)] [N_PREDICT (64)] [DRAFT_MAX (16)]
#        env: LLAMA_BIN (a folder holding the two llama.cpp programs), ROUNDS (2), PAIRS ("small 1b"), SKIP_VERIFY=1 (no verification-cost table), DIR
set -u
cd "$(dirname "$0")/../.."
T=${1:-2} N=${2:-64} K=${3:-16} ROUNDS=${ROUNDS:-2} PAIRS=${PAIRS:-"small 1b"}
HERD=$PWD/build/herd
DIR=${DIR:-$PWD/build/bench-spec}
VOCAB=$PWD/build/ref/llama31-vocab.gguf
mkdir -p "$DIR"
if [[ " $PAIRS " == *" 1b "* ]]; then
    [ -f "$DIR/t-q8_0.gguf" ] || "$HERD" synth --vocab "$VOCAB" -o "$DIR/t-q8_0.gguf" --shape 1b --type q8_0 --seed 11 --ctx 4096 || exit 1
    [ -f "$DIR/t-q4_0.gguf" ] || "$HERD" synth --vocab "$VOCAB" -o "$DIR/t-q4_0.gguf" --shape 1b --type q4_0 --seed 11 --ctx 4096 || exit 1
fi
if [[ " $PAIRS " == *" mid "* ]]; then
    [ -f "$DIR/m-f32.gguf" ] || "$HERD" synth --vocab "$VOCAB" -o "$DIR/m-f32.gguf" --n-embd 1024 --n-head 16 --n-head-kv 4 \
        --n-layer 4 --n-ff 2048 --type f32 --ctx 4096 --seed 1 || exit 1
    [ -f "$DIR/m-q8_0.gguf" ] || "$HERD" quantize "$DIR/m-f32.gguf" "$DIR/m-q8_0.gguf" Q8_0 >/dev/null || exit 1
fi
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

for pair in $PAIRS; do
case $pair in
    1b) TGT=$DIR/t-q8_0.gguf DFT=$DIR/t-q4_0.gguf ;;
    small) TGT=$DIR/s-f32.gguf DFT=$DIR/s-q8_0.gguf ;;
    mid) TGT=$DIR/m-f32.gguf DFT=$DIR/m-q8_0.gguf ;;
esac
echo "##### $pair: target $(basename "$TGT"), draft $(basename "$DFT")"
if [ -z "${SKIP_VERIFY:-}" ]; then
    echo "== verification cost, $T threads ($(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg))"
    build/bench_spec_verify "$TGT" "$T" 5
fi

tps() { sed -n 's/.*generated [0-9]* tokens at \([0-9.]*\) t\/s.*/\1/p'; }
herd_run() { # MODE -> "tok/s drafted/accepted" (the log in $DIR/herd-$pair-MODE.log)
    local extra=()
    case $1 in
        draft) extra=(--draft "$DFT" --draft-max "$K") ;;
        lookup) extra=(--lookup 3 --draft-max "$K") ;;
    esac
    "$HERD" run -m "$TGT" -f "$DIR/prompt.txt" -n "$N" --temp 0 -t "$T" -c 4096 "${extra[@]}" >/dev/null 2>"$DIR/herd-$pair-$1.log"
    local st=$(sed -n 's/.*drafted \([0-9]*\), accepted \([0-9]*\).*/\1\/\2/p' "$DIR/herd-$pair-$1.log")
    echo "$(tps <"$DIR/herd-$pair-$1.log") ${st:--}"
}
llama_run() { # spec|lookup -> "tok/s drafted/accepted": the generation phase ("decoded N tokens ... speed")
    local P=$(cat "$DIR/prompt.txt") log=$DIR/llama-$pair-$1.log
    if [ "$1" = spec ]; then
        "$BIN/llama-speculative" -m "$TGT" -md "$DFT" -p "$P" -n "$N" -t "$T" -td "$T" -c 4096 --temp 0 --spec-draft-n-max "$K" \
            --spec-draft-n-min 0 --spec-draft-p-min 0 >"$DIR/llama-$pair-$1.out" 2>"$log"
    else
        "$BIN/llama-lookup" -m "$TGT" -p "$P" -n "$N" -t "$T" -c 4096 --temp 0 --spec-draft-n-max "$K" \
            >"$DIR/llama-$pair-$1.out" 2>"$log"
    fi
    local sp=$(grep -ho "decoded .*speed: *[0-9.]* t/s" "$log" | head -1 | sed 's/.*speed: *\([0-9.]*\).*/\1/')
    local dr=$(grep -ho "n_drafted *= *[0-9]*" "$log" | grep -o "[0-9]*$" | head -1)
    local ac=$(grep -ho "n_accept *= *[0-9]*" "$log" | grep -o "[0-9]*$" | head -1)
    echo "${sp:-?} ${dr:-?}/${ac:-?}"
}
ratio() { python3 -c "print('%.2f' % ($1 / $2))" 2>/dev/null || echo "?"; }
load() { cut -d' ' -f1 /proc/loadavg; }

BIN=${LLAMA_BIN:-$(tests/ref/build_llama_tools.sh llama-speculative llama-lookup 2>/dev/null)} || BIN=""
[ -n "$BIN" ] || echo "(llama.cpp's llama-speculative / llama-lookup unavailable: their columns are skipped)"
echo
echo "== end to end: $N tokens, greedy, $T threads, --draft-max $K; generation tokens/s (drafted/accepted), interleaved"
echo "| round | herd plain | herd --draft | llama-speculative | herd/llama.cpp | herd --lookup 3 | llama-lookup | herd/llama.cpp | load at start |"
echo "|---|---|---|---|---|---|---|---|---|"
for round in $(seq 1 "$ROUNDS"); do
    l0=$(load)
    read -r hp _ <<<"$(herd_run plain)"
    read -r hd hds <<<"$(herd_run draft)"
    ls_="?" lss="-" ll="?" lls="-"
    [ -n "$BIN" ] && read -r ls_ lss <<<"$(llama_run spec)"
    read -r hl hls <<<"$(herd_run lookup)"
    [ -n "$BIN" ] && read -r ll lls <<<"$(llama_run lookup)"
    echo "| $round | $hp | $hd ($hds) | $ls_ ($lss) | $(ratio "$hd" "$ls_") | $hl ($hls) | $ll ($lls) | $(ratio "$hl" "$ll") | $l0 |"
done
done
