"""An importance matrix of random weights for every 2-D tensor of a GGUF, in llama.cpp's legacy .dat layout
(n_entries, then per entry: name length, name, ncall, nval, nval floats; then the chunk count and the
dataset name), for quantizer tests that need one without running a model.
Usage: random_imatrix.py GGUF_PY_DIR MODEL.gguf OUT.dat   (seeded: the same model gives the same file)"""
import struct
import sys

import numpy as np

sys.path.insert(0, sys.argv[1])
from gguf import GGUFReader  # noqa: E402

rng = np.random.default_rng(19)
ents = [(t.name, int(t.shape[0])) for t in GGUFReader(sys.argv[2]).tensors if len(t.shape) == 2]
with open(sys.argv[3], "wb") as f:
    f.write(struct.pack("<i", len(ents)))
    for name, n in ents:
        f.write(struct.pack("<i", len(name)) + name.encode() + struct.pack("<ii", 1, n))
        f.write(rng.uniform(0.25, 2.0, n).astype("<f4").tobytes())
    f.write(struct.pack("<ii", 1, 4) + b"test")
