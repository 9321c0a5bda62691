#!/usr/bin/python3
"""FAISS (Debian python3-faiss) on the vectors bench/rag/search.c wrote: IndexFlatIP (exact inner product,
one query at a time, as herd answers a request) and IndexHNSWFlat (M 16, efConstruction 100, the same
as herd's) over the first HNSW_ROWS rows, recall@10 against exact search.
and IndexIVFFlat (NLIST lists, spherical k-means, 10 rounds, trained on up to 256 rows per list, as herd's)
over all rows, recall@10 against herd's exact top 10 (truth.i64) at the same nprobe as herd's.
usage: faiss_bench.py DIR ROWS DIM QUERIES THREADS HNSW_ROWS [NLIST]   -> one JSON object
HNSW_ROWS 0: no HNSW; NLIST -1: no IVF."""
import json, sys, time
import numpy as np
import faiss

d, rows, dim, nq, threads, hrows = sys.argv[1], *map(int, sys.argv[2:7])
nlist = int(sys.argv[7]) if len(sys.argv) > 7 else 0
faiss.omp_set_num_threads(threads)
v = np.fromfile(f"{d}/vectors.f32", dtype=np.float32).reshape(rows, dim)
q = np.fromfile(f"{d}/queries.f32", dtype=np.float32).reshape(nq, dim)
flat = faiss.IndexFlatIP(dim)
flat.add(v)
ts = []
truth = []
for i in range(nq):
    t0 = time.perf_counter()
    _, I = flat.search(q[i:i + 1], 10)
    ts.append(time.perf_counter() - t0)
    truth.append(I[0])
herd_truth = np.fromfile(f"{d}/truth.i64", dtype=np.int64).reshape(nq, 10)
same = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(truth, herd_truth)]))
out = {"flat_ms": 1e3 * float(np.median(ts)), "flat_agrees_with_herd": same}
def rss_mb():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024

del flat
if nlist >= 0:
    if nlist == 0:  # herd's default (rag_ivf_default_nlist)
        nlist = max(1, min(int(rows ** 0.5), rows // 39))
    r0 = rss_mb()
    quant = faiss.IndexFlatIP(dim)
    ivf = faiss.IndexIVFFlat(quant, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.cp.niter = 10
    ivf.cp.spherical = True
    ivf.cp.max_points_per_centroid = 256
    t0 = time.perf_counter()
    ivf.train(v)
    ivf.add(v)
    out["ivf_build_s"] = time.perf_counter() - t0
    out["ivf_rss_mb"] = rss_mb() - r0
    out["ivf"] = []
    for p in (1, 4, 8, 16, 32, 64):
        ivf.nprobe = p
        t, found = 0.0, 0
        for i in range(nq):
            t0 = time.perf_counter()
            _, I = ivf.search(q[i:i + 1], 10)
            t += time.perf_counter() - t0
            found += len(set(I[0]) & set(herd_truth[i]))
        out["ivf"].append({"nprobe": p, "recall_at_10": found / (10 * nq), "ms_per_query": 1e3 * t / nq})
    del ivf, quant
out["hnsw"] = []
if hrows == 0:
    print(json.dumps(out))
    sys.exit(0)
hv = v[:hrows]
if hrows != rows:
    hf = faiss.IndexFlatIP(dim); hf.add(hv)
    _, T = hf.search(q, 10)
else:
    T = herd_truth
h = faiss.IndexHNSWFlat(dim, 16, faiss.METRIC_INNER_PRODUCT)
h.hnsw.efConstruction = 100
t0 = time.perf_counter()
h.add(hv)
out["hnsw_build_s"] = time.perf_counter() - t0
for ef in (16, 32, 64, 128):
    h.hnsw.efSearch = ef
    t, found = 0.0, 0
    for i in range(nq):
        t0 = time.perf_counter()
        _, I = h.search(q[i:i + 1], 10)
        t += time.perf_counter() - t0
        found += len(set(I[0]) & set(T[i]))
    out["hnsw"].append({"ef": ef, "recall_at_10": found / (10 * nq), "ms_per_query": 1e3 * t / nq})
print(json.dumps(out))
