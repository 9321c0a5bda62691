#!/usr/bin/python3
"""Compares importance matrices and quantized files through llama.cpp's gguf-py (numpy).

usage: imatrix_compare.py GGUF_PY_DIR imatrix A.gguf B.gguf TOL
           two GGUF imatrix files (llama-imatrix's format) hold the same entries: the same metadata
           (general.type, imatrix.chunk_count, imatrix.chunk_size, imatrix.datasets), the same tensor names,
           shapes and counts (exactly), and sums that agree: per entry max |a - b| / max |a| <= TOL
       imatrix_compare.py GGUF_PY_DIR same-blk A.gguf B.gguf
           every tensor of A named blk.* has the same type and bytes in B (prints the mismatches)
Exit 1 on any difference."""
import sys

import numpy as np

sys.path.insert(0, sys.argv[1])
from gguf import GGUFReader  # noqa: E402
from gguf.constants import GGMLQuantizationType as T  # noqa: E402

mode, a_path, b_path = sys.argv[2], sys.argv[3], sys.argv[4]
ra, rb = GGUFReader(a_path), GGUFReader(b_path)
a = {t.name: t for t in ra.tensors}
b = {t.name: t for t in rb.tensors}
bad = 0


def field(r, key):
    f = r.fields.get(key)
    if f is None:
        return None
    vals = [f.parts[i] for i in f.data]
    if f.types and f.types[0].name == "STRING":
        return [bytes(v).decode() for v in vals]
    if f.types and f.types[0].name == "ARRAY":
        return [bytes(v).decode() for v in vals]
    return [int(v[0]) for v in vals]


if mode == "imatrix":
    tol = float(sys.argv[5])
    for key in ("general.type", "imatrix.chunk_count", "imatrix.chunk_size", "imatrix.datasets"):
        fa, fb = field(ra, key), field(rb, key)
        if fa != fb or fa is None:
            print(f"FAIL {key}: {fa} in A, {fb} in B")
            bad += 1
    if sorted(a) != sorted(b):
        print(f"FAIL tensor names differ: only in A {sorted(set(a) - set(b))[:5]}, only in B {sorted(set(b) - set(a))[:5]}")
        bad += 1
    worst, worst_name = 0.0, ""
    for name in sorted(set(a) & set(b)):
        ta, tb = a[name], b[name]
        va, vb = np.asarray(ta.data, dtype=np.float32), np.asarray(tb.data, dtype=np.float32)
        if list(ta.shape) != list(tb.shape) or ta.tensor_type != tb.tensor_type:
            print(f"FAIL {name}: shape {list(ta.shape)} {T(ta.tensor_type).name} vs {list(tb.shape)} {T(tb.tensor_type).name}")
            bad += 1
            continue
        if name.endswith(".counts"):
            if not np.array_equal(va, vb):
                print(f"FAIL {name}: counts {va.tolist()} vs {vb.tolist()}")
                bad += 1
            continue
        d = float(np.max(np.abs(va.astype(np.float64) - vb)) / max(float(np.max(np.abs(va))), 1e-30))
        if d > worst:
            worst, worst_name = d, name
        if not (d <= tol):
            print(f"FAIL {name}: max |a - b| / max |a| = {d:.3e} > {tol}")
            bad += 1
    n = sum(1 for k in a if k.endswith(".in_sum2"))
    print(f"  imatrix: {n} entries, counts equal, sums max rel diff {worst:.3e} ({worst_name}), tolerance {tol}")
else:
    n = same = 0
    for name, ta in a.items():
        if not name.startswith("blk."):
            continue
        tb = b.get(name)
        n += 1
        if tb is None or ta.tensor_type != tb.tensor_type or not np.array_equal(
                np.asarray(ta.data).view(np.uint8), np.asarray(tb.data).view(np.uint8)):
            print(f"FAIL {name} ({T(ta.tensor_type).name}): differs")
            bad += 1
        else:
            same += 1
    types = sorted({T(t.tensor_type).name for k, t in a.items() if k.startswith("blk.") and len(t.shape) > 1})
    print(f"  same-blk {'/'.join(types)}: {same} of {n} blk tensors identical")
sys.exit(1 if bad else 0)
