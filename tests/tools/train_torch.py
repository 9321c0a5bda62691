#!/usr/bin/python3
"""PyTorch oracle for `herd train` (Debian's python3-torch, float64).

A Llama 3.1 block written from ../shared/LLAMA31.md (RMSNorm, RoPE on adjacent pairs with the
rope_freqs divisors, grouped-query causal attention, SwiGLU), loading the same GGUF through numpy,
computes the objective's loss and its gradient for the examples herd trained on (read from herd's
--dump-data), and compares them with what herd wrote after one SGD step of learning rate 1:
  full: W_herd_out = W - lr dL/dW;   lora (from --lora-init): A_out = A - lr dL/dA, B_out = B - lr dL/dB
(the tests use lr 1000 so that the float32 rounding of W_out stays far below the tolerance).

  train_torch.py grads --model M.gguf --data DUMP.jsonl --objective cpt|sft|dpo|distill --method full|lora
                       --out OUT.gguf [--init ADAPTER.gguf] [--teacher T.gguf] [--metrics M.jsonl]
                       [--beta B] [--nll-coef C] [--kd-ratio R] [--kd-temp T] [--top-k K] [--alpha A]
  train_torch.py adamw --model M.gguf --sgd SGD_OUT.gguf --out ADAMW_OUT.gguf --lr LR --wd WD
Exit 0 when every tensor's relative gradient error (||g_herd - g_torch|| / ||g_torch||) is <= 1e-4
and the loss agrees to 1e-5 (relative); prints one line per tensor.
"""
import argparse, json, math, struct, sys
import numpy as np
import torch

torch.set_default_dtype(torch.float64)

# ---- GGUF --------------------------------------------------------------------------------------
def read_gguf(path):
    b = open(path, "rb").read()
    assert b[:4] == b"GGUF", path
    ver, n_t, n_kv = struct.unpack_from("<IQQ", b, 4)
    o = 24
    def rstr(o):
        n = struct.unpack_from("<Q", b, o)[0]
        return b[o + 8:o + 8 + n].decode("utf-8", "replace"), o + 8 + n
    fmt = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
    def val(t, o):
        if t == 8:
            return rstr(o)
        if t == 9:
            et, n = struct.unpack_from("<IQ", b, o)
            o += 12
            out = []
            for _ in range(n):
                v, o = val(et, o)
                out.append(v)
            return out, o
        v = struct.unpack_from("<" + fmt[t], b, o)[0]
        return v, o + struct.calcsize(fmt[t])
    kv = {}
    for _ in range(n_kv):
        k, o = rstr(o)
        t = struct.unpack_from("<I", b, o)[0]
        v, o = val(t, o + 4)
        kv[k] = v
    infos = []
    for _ in range(n_t):
        name, o = rstr(o)
        nd = struct.unpack_from("<I", b, o)[0]
        ne = struct.unpack_from("<%dQ" % nd, b, o + 4)
        o += 4 + 8 * nd
        typ, off = struct.unpack_from("<IQ", b, o)
        o += 12
        infos.append((name, ne, typ, off))
    al = kv.get("general.alignment", 32)
    data = (o + al - 1) // al * al
    tensors = {}
    for name, ne, typ, off in infos:
        n = int(np.prod(ne))
        p = data + off
        if typ == 0:
            a = np.frombuffer(b, np.float32, n, p).astype(np.float64)
        elif typ == 1:
            a = np.frombuffer(b, np.float16, n, p).astype(np.float64)
        elif typ == 30:
            u = np.frombuffer(b, np.uint16, n, p).astype(np.uint32) << 16
            a = u.view(np.float32).astype(np.float64)
        elif typ == 8:  # q8_0: f16 d, 32 x int8
            blk = np.frombuffer(b, np.uint8, n // 32 * 34, p).reshape(-1, 34)
            d = blk[:, :2].copy().view(np.float16).astype(np.float32)
            q = blk[:, 2:].copy().view(np.int8).astype(np.float32)
            a = (d * q).reshape(-1).astype(np.float64)
        elif typ == 2:  # q4_0: f16 d, 16 bytes of nibbles (low: 0..15, high: 16..31), (q - 8) d
            blk = np.frombuffer(b, np.uint8, n // 32 * 18, p).reshape(-1, 18)
            d = blk[:, :2].copy().view(np.float16).astype(np.float32)
            qs = blk[:, 2:]
            q = np.concatenate([qs & 15, qs >> 4], axis=1).astype(np.float32) - 8
            a = (d * q).reshape(-1).astype(np.float64)
        else:
            raise SystemExit("train_torch.py: tensor %s has type %d, not handled" % (name, typ))
        shape = tuple(reversed(ne)) if len(ne) > 1 else (ne[0],)
        tensors[name] = torch.tensor(a.reshape(shape))
    return kv, tensors

# ---- the model ----------------------------------------------------------------------------------
TARGETS = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"]

class Llama:
    def __init__(self, path):
        self.kv, self.t = read_gguf(path)
        kv = self.kv
        self.E = kv["llama.embedding_length"]
        self.L = kv["llama.block_count"]
        self.H = kv["llama.attention.head_count"]
        self.Hkv = kv["llama.attention.head_count_kv"]
        self.hd = kv.get("llama.attention.key_length", self.E // self.H)
        self.eps = kv["llama.attention.layer_norm_rms_epsilon"]
        self.theta = kv.get("llama.rope.freq_base", 10000.0)
        self.freqs = self.t.get("rope_freqs.weight")

    def rope(self, x, T, n_heads):
        hd = self.hd
        i = torch.arange(hd // 2, dtype=torch.float64)
        inv = self.theta ** (-2.0 * i / hd)
        if self.freqs is not None:
            inv = inv / self.freqs.double()
        ang = (torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]).to(x.dtype)  # [T][hd/2]
        c, s = torch.cos(ang)[:, None, :], torch.sin(ang)[:, None, :]
        x = x.view(T, n_heads, hd // 2, 2)
        x0, x1 = x[..., 0], x[..., 1]
        return torch.stack([x0 * c - x1 * s, x0 * s + x1 * c], dim=-1).reshape(T, n_heads * hd)

    def norm(self, x, w):
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + self.eps) * w

    def logits(self, tokens, P, lora=None, scale=0.0):
        """tokens: list of T ids; P: dict name -> tensor (the parameters); lora: {(l, target): (A, B)}"""
        T = len(tokens)
        x = P["token_embd.weight"][torch.tensor(tokens)]
        def mm(x, l, tname):
            y = x @ P["blk.%d.%s.weight" % (l, tname)].T
            if lora is not None and (l, tname) in lora:
                A, B = lora[(l, tname)]
                y = y + scale * ((x @ A.T) @ B.T)
            return y
        g = self.H // self.Hkv
        mask = torch.full((T, T), float("-inf")).triu(1)
        for l in range(self.L):
            h = self.norm(x, P["blk.%d.attn_norm.weight" % l])
            q = self.rope(mm(h, l, "attn_q"), T, self.H).view(T, self.H, self.hd).transpose(0, 1)
            k = self.rope(mm(h, l, "attn_k"), T, self.Hkv).view(T, self.Hkv, self.hd).transpose(0, 1)
            v = mm(h, l, "attn_v").view(T, self.Hkv, self.hd).transpose(0, 1)
            k = k.repeat_interleave(g, 0)
            v = v.repeat_interleave(g, 0)
            att = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(self.hd) + mask, -1) @ v
            x = x + mm(att.transpose(0, 1).reshape(T, self.H * self.hd), l, "attn_output")
            h = self.norm(x, P["blk.%d.ffn_norm.weight" % l])
            a = torch.nn.functional.silu(mm(h, l, "ffn_gate")) * mm(h, l, "ffn_up")
            x = x + mm(a, l, "ffn_down")
        hN = self.norm(x, P["output_norm.weight"])
        out = P.get("output.weight", P["token_embd.weight"])
        return hN @ out.T

def read_adapter(path):
    kv, t = read_gguf(path)
    lora = {}
    for name in t:
        if name.endswith(".lora_a"):
            base = name[:-len(".weight.lora_a")]
            l, tname = int(base.split(".")[1]), base.split(".", 2)[2]
            lora[(l, tname)] = (t[name], t[base + ".weight.lora_b"])
    return kv, lora

def seq_logp(model, P, tokens, targets, lora, scale):
    z = model.logits(tokens[:-1], P, lora, scale)
    lp = torch.log_softmax(z, -1)
    tg = torch.tensor(tokens[1:])
    m = torch.tensor(targets[1:], dtype=torch.float64)
    return (lp.gather(1, tg[:, None])[:, 0] * m).sum(), m.sum(), z, m

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode")
    ap.add_argument("--model"); ap.add_argument("--data"); ap.add_argument("--objective"); ap.add_argument("--method")
    ap.add_argument("--out"); ap.add_argument("--init"); ap.add_argument("--teacher"); ap.add_argument("--metrics")
    ap.add_argument("--beta", type=float, default=0.1); ap.add_argument("--nll-coef", type=float, default=0.0)
    ap.add_argument("--kd-ratio", type=float, default=0.5); ap.add_argument("--kd-temp", type=float, default=1.0)
    ap.add_argument("--top-k", type=int, default=0); ap.add_argument("--alpha", type=float, default=16.0)
    ap.add_argument("--sgd"); ap.add_argument("--lr", type=float); ap.add_argument("--wd", type=float)
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--sgd-lr", type=float, default=1.0)
    ap.add_argument("--examples", type=int, default=1 << 30)  # the step's examples: the first N (--no-shuffle)
    a = ap.parse_args()
    model = Llama(a.model)
    if a.mode == "adamw":
        return adamw(a, model)
    P = {k: v.clone().requires_grad_(a.method == "full") for k, v in model.t.items()}
    lora, scale = None, 0.0
    if a.method == "lora":
        kv, lora = read_adapter(a.init)
        lora = {k: (A.clone().requires_grad_(True), B.clone().requires_grad_(True)) for k, (A, B) in lora.items()}
        rank = next(iter(lora.values()))[0].shape[0]
        scale = kv.get("adapter.lora.alpha", a.alpha) / rank
    ex = [e for e in (json.loads(l) for l in open(a.data)) if e["example"] < a.examples]
    if a.objective == "dpo":
        pairs = {}
        for e in ex:
            pairs.setdefault(e["example"], {})[e["seq"]] = e
        loss = 0.0
        for i in sorted(pairs):
            c, r = pairs[i][0], pairs[i][1]
            pc, nc, _, _ = seq_logp(model, P, c["tokens"], c["targets"], lora, scale)
            pr, _, _, _ = seq_logp(model, P, r["tokens"], r["targets"], lora, scale)
            with torch.no_grad():
                Pref = {k: v.detach() for k, v in model.t.items()}
                rc_, _, _, _ = seq_logp(model, Pref, c["tokens"], c["targets"], None, 0.0)
                rr_, _, _, _ = seq_logp(model, Pref, r["tokens"], r["targets"], None, 0.0)
            z = a.beta * ((pc - rc_) - (pr - rr_))
            l = -torch.nn.functional.logsigmoid(z)
            if a.nll_coef > 0:
                l = l + a.nll_coef * (-pc / nc)
            loss = loss + l
        loss = loss / len(pairs)
    elif a.objective == "distill":
        teacher = Llama(a.teacher)
        num, den = 0.0, 0.0
        for e in ex:
            _, n, z, m = seq_logp(model, P, e["tokens"], e["targets"], lora, scale)
            with torch.no_grad():
                zt = teacher.logits(e["tokens"][:-1], teacher.t)
            lp = torch.log_softmax(z, -1)
            tg = torch.tensor(e["tokens"][1:])
            ce = -(lp.gather(1, tg[:, None])[:, 0] * m).sum()
            T = a.kd_temp
            zt = zt / T
            if a.top_k > 0:
                kth = torch.topk(zt, a.top_k, dim=-1).values[:, -1:]
                zt = torch.where(zt >= kth, zt, torch.tensor(float("-inf")))
            lpt = torch.log_softmax(zt, -1)
            pt = lpt.exp()
            lps = torch.log_softmax(z / T, -1)
            kl = torch.where(pt > 0, pt * (lpt - lps), torch.zeros_like(pt)).sum(-1)
            num = num + (1 - a.kd_ratio) * ce + a.kd_ratio * (kl * m).sum()
            den += float(n)
        loss = num / den
    else:
        num, den = 0.0, 0.0
        for e in ex:
            s, n, _, _ = seq_logp(model, P, e["tokens"], e["targets"], lora, scale)
            num = num - s
            den += float(n)
        loss = num / den
    loss.backward()
    ok = True
    if a.metrics:
        herd_loss = json.loads(open(a.metrics).readline())["loss"]
        rel = abs(herd_loss - loss.item()) / abs(loss.item())
        print("loss herd %.10g torch %.10g rel %.2e" % (herd_loss, loss.item(), rel))
        ok &= rel <= 1e-5
    _, out = read_gguf(a.out)
    worst = 0.0
    if a.method == "full":
        pairs = [(k, P[k].detach(), P[k].grad, out[k]) for k in P if P[k].grad is not None]
    else:
        pairs = []
        for (l, tn), (A, B) in lora.items():
            pairs.append(("blk.%d.%s.lora_a" % (l, tn), A.detach(), A.grad, out["blk.%d.%s.weight.lora_a" % (l, tn)]))
            pairs.append(("blk.%d.%s.lora_b" % (l, tn), B.detach(), B.grad, out["blk.%d.%s.weight.lora_b" % (l, tn)]))
    for name, w0, g, w1 in pairs:
        gh = (w0 - w1.view_as(w0)) / a.sgd_lr
        den = g.norm().item()
        if den == 0:
            err = gh.norm().item()
        else:
            err = (gh - g).norm().item() / den
        worst = max(worst, err)
        if err > a.tol:
            ok = False
            print("  FAIL %s: relative gradient error %.3e (|g| %.3e)" % (name, err, den))
    print("%d tensors, worst relative gradient error %.3e" % (len(pairs), worst))
    return 0 if ok else 1

def adamw(a, model):
    """herd's AdamW step vs torch.optim.AdamW fed the gradient herd computed (W - SGD_OUT)."""
    _, sgd = read_gguf(a.sgd)
    _, out = read_gguf(a.out)
    worst = 0.0
    for k, w0 in model.t.items():
        if k not in sgd or k == "rope_freqs.weight":
            continue
        p = torch.nn.Parameter(w0.float().clone())
        p.grad = ((w0 - sgd[k]) / a.sgd_lr).float()
        opt = torch.optim.AdamW([p], lr=a.lr, weight_decay=a.wd)
        opt.step()
        err = (p.detach().double() - out[k]).abs().max().item()
        worst = max(worst, err)
    print("adamw: largest difference from torch.optim.AdamW %.3e" % worst)
    return 0 if worst <= 1e-6 else 1

if __name__ == "__main__":
    sys.exit(main())
