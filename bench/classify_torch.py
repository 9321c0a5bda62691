#!/usr/bin/python3
"""bench/classify's PyTorch side: the reference DeBERTa-v2 of tests/tools/deberta_ref.py on the same model
directory, N windows of 512 ids at T threads; prints {"windows_per_s": [...]} (one value per window)."""
import json, sys, time
import torch
sys.path.insert(0, "tests/tools")
import deberta_ref as R

d, n, t = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(t)
cfg, W = R.load(d)
ids = [1] + [(7 * i) % (cfg["vocab_size"] - 4) + 4 for i in range(510)] + [2]
rates = []
with torch.no_grad():
    R.forward(cfg, W, ids)  # warm-up
    for _ in range(n):
        t0 = time.time()
        R.forward(cfg, W, ids)
        rates.append(1.0 / (time.time() - t0))
print(json.dumps({"windows_per_s": rates}))
