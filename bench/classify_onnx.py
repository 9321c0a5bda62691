#!/usr/bin/python3
"""bench/classify's ONNX export: the reference DeBERTa-v2 of tests/tools/deberta_ref.py on a model directory,
traced for one window of T ids (input "ids" int64 [T], output "logits" float [n_labels]) with PyTorch 1.13's
exporter (opset 13; the weights become initializers), written to OUT. Usage: classify_onnx.py DIR T OUT"""
import sys
import torch
sys.path.insert(0, "tests/tools")
import deberta_ref as R

d, T, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
cfg, W = R.load(d)
W = {k: v.clone() for k, v in W.items()}  # own the storage (frombuffer views are not exportable constants)


class M(torch.nn.Module):
    def forward(self, ids):
        return R.forward(cfg, W, ids)


ids = torch.tensor([1] + [(7 * i) % (cfg["vocab_size"] - 4) + 4 for i in range(T - 2)] + [2])
with torch.no_grad():
    ref = R.forward(cfg, W, ids.tolist())
    torch.onnx.export(M(), (ids,), out, input_names=["ids"], output_names=["logits"], opset_version=13)
print(" ".join("%.6f" % v for v in ref.tolist()))
