#!/usr/bin/python3
"""Checks herd's dequantization against llama.cpp's gguf-py (gguf/quants.py, numpy), bit for bit.

usage: gguf_dequant.py GGUF_PY_DIR dequant QUANT.gguf F32.gguf
           every quantized tensor of QUANT.gguf, dequantized by gguf-py, must equal the tensor of the same name
           in F32.gguf (what `herd convert --type f32` wrote from QUANT.gguf) bit for bit
       gguf_dequant.py GGUF_PY_DIR same A.gguf B.gguf
           every tensor of A has the same type and the same bytes in B (prints the mismatches)
       gguf_dequant.py GGUF_PY_DIR types A.gguf B.gguf
           every tensor of A has the same type in B (the K-quant bytes of herd's own quantizers differ)
Only the first ROWS rows of each tensor are compared (default all; env GGUF_CHECK_ROWS): a 128K-row
embedding costs numpy seconds per type and adds no case the other rows lack.
Prints one line per tensor type; exit 1 on any difference."""
import os
import sys

import numpy as np

sys.path.insert(0, sys.argv[1])
from gguf import GGUFReader  # noqa: E402
from gguf.quants import dequantize  # noqa: E402
from gguf.constants import GGMLQuantizationType as T  # noqa: E402

mode, a_path, b_path = sys.argv[2], sys.argv[3], sys.argv[4]
a = {t.name: t for t in GGUFReader(a_path).tensors}
b = {t.name: t for t in GGUFReader(b_path).tensors}
ROWS = int(os.environ.get("GGUF_CHECK_ROWS", "0")) or None
bad = 0
stats = {}
for name, ta in a.items():
    tb = b.get(name)
    if tb is None:
        print(f"FAIL {name}: missing in {b_path}")
        bad += 1
        continue
    tname = T(ta.tensor_type).name
    if mode == "dequant":
        if ta.tensor_type in (T.F32, T.F16, T.BF16):
            continue
        want = dequantize(ta.data[:ROWS], ta.tensor_type).reshape(-1).astype(np.float32)
        got = np.asarray(tb.data, dtype=np.float32)[:ROWS].reshape(-1)
        same = want.shape == got.shape and np.array_equal(want.view(np.uint32), got.view(np.uint32))
        n = want.size
    elif mode == "types":
        same = ta.tensor_type == tb.tensor_type
        n = ta.n_elements
        if not same:
            print(f"FAIL {name}: {tname} in A, {T(tb.tensor_type).name} in B")
    else:
        same = ta.tensor_type == tb.tensor_type and np.array_equal(
            np.asarray(ta.data[:ROWS]).view(np.uint8), np.asarray(tb.data[:ROWS]).view(np.uint8))
        n = ta.n_elements if ROWS is None else ta.data[:ROWS].size  # (bytes when limited)
    s = stats.setdefault(tname, [0, 0, 0])
    s[0] += 1
    s[1] += n
    if not same:
        s[2] += 1
        bad += 1
        print(f"FAIL {name} ({tname}): differs")
for tname, (cnt, n, nb) in sorted(stats.items()):
    print(f"  {mode} {tname}: {cnt} tensors, {n} elements, {nb} differ")
sys.exit(1 if bad else 0)
