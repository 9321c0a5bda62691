#!/usr/bin/python3
"""FAISS (Debian python3-faiss) on the vectors bench/rag/search.c wrote: IndexFlatIP (exact inner product,
one query at a time, as herd answers a request) and IndexHNSWFlat (M 16, efConstruction 100, the same
as herd's) over the first HNSW_ROWS rows, recall@10 against exact search.
usage: faiss_bench.py DIR ROWS DIM QUERIES THREADS HNSW_ROWS   -> one JSON object"""
import json, sys, time
import numpy as np
import faiss

d, rows, dim, nq, threads, hrows = sys.argv[1], *map(int, sys.argv[2:7])
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
hv = v[:hrows]
if hrows != rows:
    hf = faiss.IndexFlatIP(dim); hf.add(hv)
    _, T = hf.search(q, 10)
else:
    T = np.array(truth)
h = faiss.IndexHNSWFlat(dim, 16, faiss.METRIC_INNER_PRODUCT)
h.hnsw.efConstruction = 100
t0 = time.perf_counter()
h.add(hv)
out["hnsw_build_s"] = time.perf_counter() - t0
out["hnsw"] = []
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
