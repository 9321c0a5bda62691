#!/bin/bash
# Ingestion speed (not part of make test): `herd rag index` of one text file against `herd bench`'s prompt
# processing (pp512) on the same model and threads. The text is every licence in /usr/share/common-licenses
# (~338 kB, ~80k Llama 3 tokens), indexed with the default chunks (512 tokens, overlap 128) into a fresh
# store. herd rag index reports the tokens it embedded (BOS + each chunk) and how its time splits between
# the embedding and the rest (reading, tokenizing, cutting, SQLite); model loading is not counted.
# Usage: bench/rag/ingest.sh [MODEL (the 68M-parameter q8_0 serve test model)] [THREADS nproc] [REPS 3]
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL=${1:-build/test-models/serve-tiny31-q8_0.gguf} THREADS=${2:-$(nproc)} REPS=${3:-3}
make -s build/herd
if [ ! -f "$MODEL" ]; then
    mkdir -p "$(dirname "$MODEL")"
    build/herd synth --vocab build/ref/llama31-vocab.gguf -o "$MODEL.tmp" --shape tiny --type q8_0 --output-type q8_0 \
        --seed 11 --name serve-tiny >/dev/null
    mv "$MODEL.tmp" "$MODEL"
fi
D=$(mktemp -d); trap 'rm -rf "$D"' EXIT
cat /usr/share/common-licenses/* > "$D/licences.txt"
pp=$(build/herd bench -m "$MODEL" -p 512 -n 1 -t "$THREADS" -r "$REPS" --json)
best=0
for r in $(seq "$REPS"); do
    rm -rf "$D/store"
    line=$(build/herd rag index --store "$D/store" -m "$MODEL" -t "$THREADS" "$D/licences.txt" 2>&1 >/dev/null | grep '^rag: ')
    echo "  run $r: $line"
    tps=$(echo "$line" | sed -E 's/.*: ([0-9.]+) tokens\/s.*/\1/')
    best=$(/usr/bin/python3 -c "print(max($best, $tps))")
done
/usr/bin/python3 - "$pp" "$best" <<'PY'
import json, sys
pp, best = json.loads(sys.argv[1]), float(sys.argv[2])
p = pp["pp"]["tokens_per_s"]
print(f"herd bench pp512: {p:.1f} +- {pp['pp']['sd']:.1f} tokens/s; herd rag index (best run): {best:.1f} tokens/s "
      f"embedded = {100 * best / p:.1f} % of pp512 (target >= 80 %)")
PY
