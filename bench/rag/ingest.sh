#!/bin/bash
# Ingestion speed (not part of make test): `herd rag index` of one text file against `herd bench`'s prompt
# processing (pp512) on the same model and threads. The text is every licence in /usr/share/common-licenses
# (~338 kB, ~66k Llama 3 tokens), indexed with the default chunks (512 tokens, overlap 128) into a fresh
# store. herd rag index reports the tokens it embedded (BOS + each chunk) and how its time splits between
# the embedding and the rest (reading, tokenizing, cutting, SQLite); model loading is not counted.
# The runs alternate (pp512, index, pp512, index, ...) and the best of each is kept, so that a shared
# machine's load falls on both alike. EXTRA: more options for herd rag index (e.g. "-b 512", the old batch).
# Usage: bench/rag/ingest.sh [MODEL (the 68M-parameter q8_0 serve test model)] [THREADS nproc] [REPS 5] [EXTRA]
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL=${1:-build/test-models/serve-tiny31-q8_0.gguf} THREADS=${2:-$(nproc)} REPS=${3:-5} EXTRA=${4:-}
make -s build/herd
if [ ! -f "$MODEL" ]; then
    mkdir -p "$(dirname "$MODEL")"
    build/herd synth --vocab build/ref/llama31-vocab.gguf -o "$MODEL.tmp" --shape tiny --type q8_0 --output-type q8_0 \
        --seed 11 --name serve-tiny >/dev/null
    mv "$MODEL.tmp" "$MODEL"
fi
D=$(mktemp -d); trap 'rm -rf "$D"' EXIT
cat /usr/share/common-licenses/* > "$D/licences.txt"
best_pp=0 best=0
for r in $(seq "$REPS"); do
    pp=$(build/herd bench -m "$MODEL" -p 512 -n 1 -t "$THREADS" -r 1 --json |
         /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["pp"]["tokens_per_s"])')
    rm -rf "$D/store"
    # shellcheck disable=SC2086
    line=$(build/herd rag index --store "$D/store" -m "$MODEL" -t "$THREADS" $EXTRA "$D/licences.txt" 2>&1 >/dev/null |
           grep '^rag: ')
    echo "  run $r: pp512 $pp tokens/s; $line"
    tps=$(echo "$line" | sed -E 's/.*: ([0-9.]+) tokens\/s.*/\1/')
    best_pp=$(/usr/bin/python3 -c "print(max($best_pp, $pp))")
    best=$(/usr/bin/python3 -c "print(max($best, $tps))")
done
/usr/bin/python3 -c "print(f'best of $REPS: herd bench pp512 {$best_pp:.1f} tokens/s; herd rag index {$best:.1f} tokens/s embedded = {100 * $best / $best_pp:.1f} % of pp512 (target >= 80 %)')"
