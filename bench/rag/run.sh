#!/bin/bash
# Retrieval benchmark (not part of make test): exact top-10 search over ROWS x DIM F32 vectors with herd
# (AVX-512, all threads) vs one plain read of the same bytes and vs FAISS's IndexFlatIP; herd's HNSW vs
# FAISS's IndexHNSWFlat (same M and efConstruction) over HNSW_ROWS rows: recall@10 and time per query.
# Installs Debian's python3-faiss if missing. Usage: bench/rag/run.sh [ROWS 100000] [DIM 2048] [QUERIES 50]
#   [THREADS nproc] [HNSW_ROWS 10000]
set -euo pipefail
ROWS=${1:-100000} DIM=${2:-2048} NQ=${3:-50} THREADS=${4:-$(nproc)} HROWS=${5:-10000}
cd "$(dirname "$0")/../.."
make -s build/libherd.a
/usr/bin/python3 -c 'import faiss' 2>/dev/null || {
    SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-faiss >/dev/null
}
mkdir -p build/bench
gcc -std=c11 -O2 -D_GNU_SOURCE -Iinclude -Isrc -pthread -o build/bench/rag_search bench/rag/search.c build/libherd.a -lm
D=$(mktemp -d); trap 'rm -rf "$D"' EXIT
h=$(build/bench/rag_search "$ROWS" "$DIM" "$NQ" "$THREADS" "$D" "$HROWS")
f=$(OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 bench/rag/faiss_bench.py "$D" "$ROWS" "$DIM" "$NQ" "$THREADS" "$HROWS")
/usr/bin/python3 - "$h" "$f" <<'PY'
import json, sys
h, f = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"exact top-10 over {h['rows']} x {h['dim']} F32 ({h['rows']*h['dim']*4/1e6:.0f} MB), {h['threads']} threads, median of {h['queries']} queries:")
print(f"  plain read   {h['plain_read_ms']:8.2f} ms  ({h['read_gbps']:.1f} GB/s)")
print(f"  herd exact   {h['exact_ms']:8.2f} ms  = {h['exact_over_read']:.2f}x the plain read")
print(f"  FAISS flat   {f['flat_ms']:8.2f} ms  -> herd is {f['flat_ms']/h['exact_ms']:.2f}x FAISS's speed (same top-10: {f['flat_agrees_with_herd']*100:.1f}%)")
print(f"HNSW over {h['hnsw_rows']} rows (M 16, efConstruction 100): build herd {h['hnsw_build_s']:.1f} s, FAISS {f['hnsw_build_s']:.1f} s")
print("    ef   herd recall@10  ms/query   FAISS recall@10  ms/query")
for a, b in zip(h["hnsw"], f["hnsw"]):
    print(f"  {a['ef']:4d}   {a['recall_at_10']:.4f}        {a['ms_per_query']:7.3f}    {b['recall_at_10']:.4f}          {b['ms_per_query']:7.3f}")
PY
