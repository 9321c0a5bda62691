"""herd's quantized-file logits are no further from the F32 model's than llama.cpp's on the same file:
mean |logit - F32| of herd <= 1.1 x llama.cpp's (the bound of issue 19's tests).
Usage: quant_error.py F32.bin LLAMA_CPP.bin HERD.bin   (little-endian f32 logits) -> exit 0 if within"""
import sys

import numpy as np

f, r, h = (np.fromfile(p, dtype="<f4").astype(np.float64) for p in sys.argv[1:4])
er, eh = np.abs(r - f).mean(), np.abs(h - f).mean()
ok = eh <= 1.1 * er
print(f"   {'ok  ' if ok else 'FAIL'} mean |logit - F32|: herd {eh:.5f}, llama.cpp {er:.5f} (ratio {eh / er:.3f}, limit 1.1)")
sys.exit(0 if ok else 1)
