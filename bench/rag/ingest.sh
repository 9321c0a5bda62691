#!/bin/bash
# Ingestion speed (not part of make test): `herd rag index` of one text file against `herd bench`'s prompt
# processing (pp512) on the same model and threads. The text is every licence in /usr/share/common-licenses
# (~338 kB, ~65k Llama 3 tokens), indexed with the default chunks (512 tokens, overlap 128) into a fresh
# store: 168 chunks, each embedded as BOS + 512 tokens. herd rag index reports the tokens it embedded, how
# its time splits between the embedding and the rest (reading, tokenizing, cutting, SQLite; model loading
# is not counted) and its fastest single chunk.
#
# Two ratios, each run next to its reference so that a shared machine's load falls on both alike:
#   throughput: index tokens/s over pp512 averaged over 20 runs (-r 20, a few seconds of the same load);
#   per pass:   the fastest chunk over the fastest of 20 single pp512 runs (the least disturbed pass of each).
# EXTRA: more options for herd rag index (e.g. "-b 512", the batch before it held a whole chunk).
# Usage: bench/rag/ingest.sh [MODEL (the 68M-parameter q8_0 serve test model)] [THREADS nproc] [REPS 3] [EXTRA]
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL=${1:-build/test-models/serve-tiny31-q8_0.gguf} THREADS=${2:-$(nproc)} REPS=${3:-3} EXTRA=${4:-}
make -s build/herd
if [ ! -f "$MODEL" ]; then
    mkdir -p "$(dirname "$MODEL")"
    build/herd synth --vocab build/ref/llama31-vocab.gguf -o "$MODEL.tmp" --shape tiny --type q8_0 --output-type q8_0 \
        --seed 11 --name serve-tiny >/dev/null
    mv "$MODEL.tmp" "$MODEL"
fi
D=$(mktemp -d); trap 'rm -rf "$D"' EXIT
cat /usr/share/common-licenses/* > "$D/licences.txt"
pp() { build/herd bench -m "$MODEL" -p 512 -n 1 -t "$THREADS" -r "$1" --json |
       /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["pp"]["tokens_per_s"])'; }
out=""
for r in $(seq "$REPS"); do
    mean=$(pp 20)
    best=0
    for k in $(seq 20); do best=$(/usr/bin/python3 -c "print(max($best, $(pp 1)))"); done
    rm -rf "$D/store"
    # shellcheck disable=SC2086
    line=$(build/herd rag index --store "$D/store" -m "$MODEL" -t "$THREADS" $EXTRA "$D/licences.txt" 2>&1 >/dev/null |
           grep '^rag: ')
    echo "  run $r: pp512 mean $mean, best $best tokens/s; $line"
    tps=$(echo "$line" | sed -E 's/.*: ([0-9.]+) tokens\/s \(.*/\1/')
    chunk=$(echo "$line" | sed -E 's/.*fastest chunk ([0-9.]+) tokens\/s.*/\1/')
    out="$out $mean $best $tps $chunk"
done
/usr/bin/python3 - $out <<'PY'
import statistics, sys
v = [float(x) for x in sys.argv[1:]]
runs = [v[i:i + 4] for i in range(0, len(v), 4)]
thr = statistics.median(t / m for m, b, t, c in runs)
per = statistics.median(c / b for m, b, t, c in runs)
print(f"median of {len(runs)} runs: throughput {100 * thr:.1f} % of pp512, per pass {100 * per:.1f} % (target >= 80 %)")
PY
