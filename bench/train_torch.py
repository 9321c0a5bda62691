#!/usr/bin/python3
"""The PyTorch side of bench/train: the same model (the GGUF, dequantized to float32), the same sequences
(herd train --dump-data), the same method (LoRA with the same rank and targets, or full), AdamW, the
same threads; prints the training tokens/s of each step as JSON.

  train_torch.py --model M.gguf --data DUMP.jsonl --method lora|full [--rank 8] [--alpha 16] [--steps N] [-t N]
                 [--autocast none|bf16]

--autocast bf16: the forward under torch.autocast("cpu", dtype=torch.bfloat16), as torchtune/PEFT users
train with bf16 autocast (the backward follows the forward's dtypes). Autocast rounds every matmul's
operands to bf16 (on CPU: mm, bmm, matmul, linear...): the frozen base's, the adapters' and attention's
(q k^T, p v) alike; herd's --base-compute bf16 rounds only the frozen base's.
"""
import argparse, json, os, sys, time
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "tools"))
import torch
import train_torch as oracle  # the GGUF reader and the Llama block of the gradient test

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model"); ap.add_argument("--data"); ap.add_argument("--method", default="lora")
    ap.add_argument("--rank", type=int, default=8); ap.add_argument("--alpha", type=float, default=16)
    ap.add_argument("--steps", type=int, default=3); ap.add_argument("-t", type=int, default=2)
    ap.add_argument("--autocast", choices=["none", "bf16"], default="none")
    a = ap.parse_args()
    torch.set_num_threads(a.t)
    torch.set_default_dtype(torch.float32)
    m = oracle.Llama(a.model)
    P = {k: v.float().requires_grad_(a.method == "full") for k, v in m.t.items()}
    if m.freqs is not None:
        m.freqs = m.freqs.float()
    lora, params = None, [v for v in P.values() if v.requires_grad]
    if a.method == "lora":
        lora = {}
        for l in range(m.L):
            for t in oracle.TARGETS:
                W = P["blk.%d.%s.weight" % (l, t)]
                A = (torch.rand(a.rank, W.shape[1]) * 2 - 1) / W.shape[1] ** 0.5
                B = torch.zeros(W.shape[0], a.rank)
                lora[(l, t)] = (A.requires_grad_(True), B.requires_grad_(True))
        params = [p for ab in lora.values() for p in ab]
    opt = torch.optim.AdamW(params, lr=1e-4)
    ex = [json.loads(l) for l in open(a.data)]
    out = []
    for s in range(a.steps):
        e = ex[s % len(ex)]
        t0 = time.time()
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.autocast == "bf16"):
            sl, n, _, _ = oracle.seq_logp(m, P, e["tokens"], e["targets"], lora, a.alpha / a.rank)
        (-sl.float() / n).backward()
        opt.step()
        dt = time.time() - t0
        out.append(len(e["tokens"]) / dt)
    print(json.dumps({"tokens_per_s": out}))

if __name__ == "__main__":
    main()
