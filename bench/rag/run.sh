#!/bin/bash
# Retrieval benchmark (not part of make test): exact top-10 search over ROWS x DIM F32 vectors with herd
# (AVX-512, all threads) vs one plain read of the same bytes and vs FAISS's IndexFlatIP; herd's HNSW vs
# FAISS's IndexHNSWFlat (same M and efConstruction) over HNSW_ROWS rows (0: none): recall@10 and time per
# query; herd's IVF index vs FAISS's IndexIVFFlat (same nlist, k-means rounds, sample, nprobe) over all ROWS:
# build time, memory, recall@10 and time per query (NLIST 0: herd's default ~sqrt(ROWS); -1: no IVF).
# Installs Debian's python3-faiss if missing. Usage: bench/rag/run.sh [ROWS 100000] [DIM 2048] [QUERIES 50]
#   [THREADS nproc] [HNSW_ROWS 10000] [NLIST 0]
# Env RAG_CLUSTERS, RAG_NOISE (default 1000, 0.8): the data (bench/rag/search.c). The ~1M-chunk store
# (docs/BENCHMARKS.md): RAG_CLUSTERS=50000 bench/rag/run.sh 1000000 256 200 2 0
set -euo pipefail
ROWS=${1:-100000} DIM=${2:-2048} NQ=${3:-50} THREADS=${4:-$(nproc)} HROWS=${5:-10000} NLIST=${6:-0}
cd "$(dirname "$0")/../.."
make -s build/libherd.a
/usr/bin/python3 -c 'import faiss' 2>/dev/null || {
    SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-faiss >/dev/null
}
mkdir -p build/bench
gcc -std=c11 -O2 -D_GNU_SOURCE -Iinclude -Isrc -pthread -o build/bench/rag_search bench/rag/search.c build/libherd.a -lm
D=$(mktemp -d); trap 'rm -rf "$D"' EXIT
la() { cut -d' ' -f1-3 /proc/loadavg; }
echo "load average before herd: $(la)"
h=$(/usr/bin/time -f '%M' -o "$D/herd.rss" build/bench/rag_search "$ROWS" "$DIM" "$NQ" "$THREADS" "$D" "$HROWS" "$NLIST")
echo "load average before FAISS: $(la)"
f=$(OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 bench/rag/faiss_bench.py "$D" "$ROWS" "$DIM" "$NQ" "$THREADS" "$HROWS" "$NLIST")
echo "load average after: $(la); herd bench peak RSS $(( $(cat "$D/herd.rss") / 1024 )) MB"
/usr/bin/python3 - "$h" "$f" <<'PY'
import json, sys
h, f = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"data: {h['clusters']} clusters, noise {h['noise']}")
print(f"exact top-10 over {h['rows']} x {h['dim']} F32 ({h['rows']*h['dim']*4/1e6:.0f} MB), {h['threads']} threads, median of {h['queries']} queries:")
print(f"  plain read   {h['plain_read_ms']:8.2f} ms  ({h['read_gbps']:.1f} GB/s)")
print(f"  herd exact   {h['exact_ms']:8.2f} ms  = {h['exact_over_read']:.2f}x the plain read")
print(f"  FAISS flat   {f['flat_ms']:8.2f} ms  -> herd is {f['flat_ms']/h['exact_ms']:.2f}x FAISS's speed (same top-10: {f['flat_agrees_with_herd']*100:.1f}%)")
if h["hnsw"]:
    print(f"HNSW over {h['hnsw_rows']} rows (M 16, efConstruction 100): build herd {h['hnsw_build_s']:.1f} s, FAISS {f['hnsw_build_s']:.1f} s")
    print("    ef   herd recall@10  ms/query   FAISS recall@10  ms/query")
    for a, b in zip(h["hnsw"], f["hnsw"]):
        print(f"  {a['ef']:4d}   {a['recall_at_10']:.4f}        {a['ms_per_query']:7.3f}    {b['recall_at_10']:.4f}          {b['ms_per_query']:7.3f}")
if "ivf" in h:
    vec_mb = h['rows'] * h['dim'] * 4 / 1e6
    print(f"IVF over {h['rows']} rows, nlist {h['ivf_nlist']}, 10 k-means rounds on {h['threads']} threads: build herd {h['ivf_build_s']:.1f} s, FAISS {f['ivf_build_s']:.1f} s")
    print(f"  memory: herd {h['ivf_bytes']/1e6:.1f} MB beside the {vec_mb:.0f} MB of rows it borrows; FAISS IndexIVFFlat +{f['ivf_rss_mb']:.0f} MB RSS (its own copy of the rows)")
    print("  nprobe  herd recall@10  ms/query   FAISS recall@10  ms/query")
    for a, b in zip(h["ivf"], f["ivf"]):
        print(f"  {a['nprobe']:5d}   {a['recall_at_10']:.4f}        {a['ms_per_query']:7.3f}    {b['recall_at_10']:.4f}          {b['ms_per_query']:7.3f}")
PY
