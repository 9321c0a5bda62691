#!/bin/bash
# Peak RSS of herd while processing 16K, 32K and 64K-token prompts (a small random-weight model with
# Llama 3 rope scaling, f32 KV cache), next to the KV cache those positions take (herd info -c N): memory
# should grow by the KV cache only (no T x T anything). Prints one line per length; numbers for
# docs/BENCHMARKS.md, not a timed test.   usage: bench/long_context_rss.sh [THREADS]
set -eu
cd "$(dirname "$0")/.."
HERD=${HERD:-build/herd}
T=${1:-2}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
M=$TMP/m.gguf
"$HERD" synth --vocab build/ref/llama.cpp/models/ggml-vocab-llama-bpe.gguf -o "$M" --n-embd 128 --n-head 2 \
    --n-head-kv 2 --head-dim 64 --n-ff 256 --n-layer 1 --untied --rope-scale 8 --ctx 131072 --type f32 --scale 0.05 \
    --seed 9 >/dev/null
printf '%-7s %12s %12s %14s %10s\n' tokens "peak RSS MiB" "KV MiB" "RSS - KV MiB" seconds
for N in 16384 32768 65536; do
    python3 -c 'import json,random,sys; random.seed(1); n=int(sys.argv[2]); json.dump([128000]+[random.randrange(128000) for _ in range(n-1)], open(sys.argv[1],"w"))' "$TMP/ids.json" "$N"
    kv=$("$HERD" info -m "$M" -c "$N" --kv-type f32 2>/dev/null | sed -n 's/.*KV cache \([0-9.]*\) GiB.*/\1/p' | head -n 1)
    python3 - "$HERD" "$M" "$TMP/ids.json" "$N" "$T" "${kv:-nan}" <<'PY'
import resource, subprocess, sys, time
herd, m, ids, n, t, kv = sys.argv[1:]
t0 = time.time()
subprocess.run([herd, "logits", "-m", m, "--prompt-ids-file", ids, "--at", "[%d]" % (int(n) - 1), "-o", "/dev/null",
                "-c", n, "--kv-type", "f32", "-t", t], check=True)
dt = time.time() - t0
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
kvf = float(kv) * 1024
print("%-7s %12.1f %12.1f %14.1f %10.1f" % (n, rss, kvf, rss - kvf, dt))
PY
done
