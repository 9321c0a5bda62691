#!/usr/bin/python3
"""PyTorch reference for tests/conformance/prompt_guard_deberta.sh: DeBERTa-v2 sequence classification
written here from the published architecture (transformers' modeling_deberta_v2.py: embeddings +
LayerNorm, disentangled attention with log-bucketed relative positions, c2p and p2c gathers, the
relative-embedding LayerNorm, the ContextPooler and the classifier), float32 as PyTorch runs it.

  deberta_ref.py make DIR SEED key=value...   random weights: DIR/config.json + DIR/model.safetensors
  deberta_ref.py run DIR SPM < texts.jsonl    per text, Meta's windows (512 characters, [CLS] +
                                              510 pieces + [SEP]): {"logits": [[...], ...]}
"""
import json, math, struct, sys
import torch
import sentencepiece as spm

torch.set_num_threads(2)


def make(d, seed, kv):
    cfg = {"model_type": "deberta-v2", "architectures": ["DebertaV2ForSequenceClassification"],
           "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128,
           "hidden_act": "gelu", "layer_norm_eps": 1e-7, "max_position_embeddings": 512,
           "max_relative_positions": -1, "position_buckets": 256, "relative_attention": True,
           "pos_att_type": ["p2c", "c2p"], "norm_rel_ebd": "layer_norm", "share_att_key": True,
           "position_biased_input": False, "type_vocab_size": 0, "vocab_size": 1000,
           "pooler_hidden_size": 64, "pooler_hidden_act": "gelu", "pooler_dropout": 0,
           "id2label": {"0": "BENIGN", "1": "INJECTION", "2": "JAILBREAK"}}
    dtype, cls_scale = "F32", 1.0
    for item in kv:
        k, v = item.split("=", 1)
        if k == "dtype":
            dtype = v
            continue
        if k == "classifier_scale":  # wider logits: texts on both sides of a threshold (serve_prompt_guard.sh)
            cls_scale = float(v)
            continue
        cfg[k] = json.loads(v)
    cfg["pooler_hidden_size"] = cfg["hidden_size"]
    cfg["label2id"] = {v: int(k) for k, v in cfg["id2label"].items()}
    g = torch.Generator().manual_seed(int(seed))
    H, F, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    E = cfg.get("embedding_size", H)
    W = {}

    def rnd(*shape, std=0.08, mean=0.0):
        return torch.randn(*shape, generator=g) * std + mean

    def ln(name, n):
        W[name + ".weight"] = rnd(n, std=0.1, mean=1.0)
        W[name + ".bias"] = rnd(n, std=0.1)

    def lin(name, o, i, bias=True):
        W[name + ".weight"] = rnd(o, i, std=1.0 / math.sqrt(i))
        if bias:
            W[name + ".bias"] = rnd(o, std=0.05)

    W["deberta.embeddings.word_embeddings.weight"] = rnd(V, E, std=0.5)
    if cfg["position_biased_input"]:
        W["deberta.embeddings.position_embeddings.weight"] = rnd(cfg["max_position_embeddings"], E, std=0.5)
    if cfg["type_vocab_size"] > 0:
        W["deberta.embeddings.token_type_embeddings.weight"] = rnd(cfg["type_vocab_size"], E, std=0.5)
    if E != H:
        lin("deberta.embeddings.embed_proj", H, E, bias=False)
    ln("deberta.embeddings.LayerNorm", H)
    span = span_of(cfg)
    W["deberta.encoder.rel_embeddings.weight"] = rnd(2 * span, H, std=0.5)
    if "layer_norm" in cfg["norm_rel_ebd"]:
        ln("deberta.encoder.LayerNorm", H)
    for l in range(cfg["num_hidden_layers"]):
        p = "deberta.encoder.layer.%d." % l
        for n in ("query_proj", "key_proj", "value_proj"):
            lin(p + "attention.self." + n, H, H)
        if not cfg["share_att_key"]:
            if "c2p" in cfg["pos_att_type"]:
                lin(p + "attention.self.pos_key_proj", H, H)
            if "p2c" in cfg["pos_att_type"]:
                lin(p + "attention.self.pos_query_proj", H, H)
        lin(p + "attention.output.dense", H, H)
        ln(p + "attention.output.LayerNorm", H)
        lin(p + "intermediate.dense", F, H)
        lin(p + "output.dense", H, F)
        ln(p + "output.LayerNorm", H)
    lin("pooler.dense", H, H)
    lin("classifier", len(cfg["id2label"]), H)
    W["classifier.weight"] *= cls_scale
    W["classifier.bias"] *= cls_scale
    # the file: 8-byte header length, JSON header, raw little-endian data
    header, blobs, off = {}, [], 0
    for name, t in W.items():
        if dtype == "BF16":
            raw = t.to(torch.bfloat16).view(torch.int16).numpy().tobytes()
        elif dtype == "F16":
            raw = t.to(torch.float16).numpy().tobytes()
        else:
            raw = t.to(torch.float32).numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(d + "/model.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    json.dump(cfg, open(d + "/config.json", "w"), indent=1)


def span_of(cfg):
    mr = cfg["max_relative_positions"]
    if mr < 1:
        mr = cfg["max_position_embeddings"]
    return cfg["position_buckets"] if cfg["position_buckets"] > 0 else mr


def load(d):
    cfg = json.load(open(d + "/config.json"))
    raw = open(d + "/model.safetensors", "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    W = {}
    for name, e in header.items():
        b0, b1 = e["data_offsets"]
        buf = bytearray(raw[8 + n + b0:8 + n + b1])
        if e["dtype"] == "BF16":
            t = torch.frombuffer(buf, dtype=torch.int16).view(torch.bfloat16).float()
        elif e["dtype"] == "F16":
            t = torch.frombuffer(buf, dtype=torch.float16).float()
        else:
            t = torch.frombuffer(buf, dtype=torch.float32)
        W[name] = t.reshape(e["shape"])
    return cfg, W


def make_log_bucket_position(relative_pos, bucket_size, max_position):
    sign = torch.sign(relative_pos)
    mid = bucket_size // 2
    abs_pos = torch.where((relative_pos < mid) & (relative_pos > -mid), torch.tensor(mid - 1).type_as(relative_pos),
                          torch.abs(relative_pos))
    log_pos = torch.ceil(torch.log(abs_pos / mid) / torch.log(torch.tensor((max_position - 1) / mid)) * (mid - 1)) + mid
    return torch.where(abs_pos <= mid, relative_pos.type_as(log_pos), log_pos * sign)


def build_relative_position(q, k, bucket_size, max_position):
    rel = torch.arange(0, q)[:, None] - torch.arange(0, k)[None, :]
    if bucket_size > 0 and max_position > 0:
        rel = make_log_bucket_position(rel, bucket_size, max_position)
    return rel.to(torch.long)[:q, :].unsqueeze(0)


def forward(cfg, W, ids):
    H, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    d = H // nh
    eps = cfg["layer_norm_eps"]
    T = len(ids)
    E = cfg.get("embedding_size", H)
    LN = lambda x, p: torch.nn.functional.layer_norm(x, (H,), W[p + ".weight"], W[p + ".bias"], eps)
    lin = lambda x, p: torch.nn.functional.linear(x, W[p + ".weight"], W.get(p + ".bias"))
    gelu = torch.nn.functional.gelu
    idx = ids if torch.is_tensor(ids) else torch.tensor(ids)  # a tensor when traced (bench/classify_onnx.py)
    x = W["deberta.embeddings.word_embeddings.weight"][idx]
    if cfg["position_biased_input"]:
        x = x + W["deberta.embeddings.position_embeddings.weight"][:T]
    if cfg["type_vocab_size"] > 0:
        x = x + W["deberta.embeddings.token_type_embeddings.weight"][torch.zeros(T, dtype=torch.long)]
    if E != H:
        x = lin(x, "deberta.embeddings.embed_proj")
    x = LN(x, "deberta.embeddings.LayerNorm").unsqueeze(0)  # [1][T][H]
    rel = W["deberta.encoder.rel_embeddings.weight"]
    if "layer_norm" in cfg["norm_rel_ebd"]:
        rel = LN(rel, "deberta.encoder.LayerNorm")
    mr = cfg["max_relative_positions"]
    if mr < 1:
        mr = cfg["max_position_embeddings"]
    buckets = cfg["position_buckets"]
    span = buckets if buckets > 0 else mr
    relative_pos = build_relative_position(T, T, buckets, mr)
    pat = cfg["pos_att_type"]

    def heads(t):  # [1][n][H] -> [nh][n][d]
        return t.view(t.size(0), t.size(1), nh, -1).permute(0, 2, 1, 3).contiguous().view(-1, t.size(1), d)

    for l in range(cfg["num_hidden_layers"]):
        p = "deberta.encoder.layer.%d.attention.self." % l
        q, k, v = heads(lin(x, p + "query_proj")), heads(lin(x, p + "key_proj")), heads(lin(x, p + "value_proj"))
        scale_factor = 1 + ("c2p" in pat) + ("p2c" in pat)
        scale = torch.sqrt(torch.tensor(q.size(-1), dtype=torch.float) * scale_factor)
        scores = torch.bmm(q, k.transpose(-1, -2) / scale.to(dtype=q.dtype))
        rel_e = rel[0:span * 2, :].unsqueeze(0)
        if cfg["share_att_key"]:
            pos_q, pos_k = heads(lin(rel_e, p + "query_proj")), heads(lin(rel_e, p + "key_proj"))
        else:
            if "c2p" in pat:
                pos_k = heads(lin(rel_e, p + "pos_key_proj"))
            if "p2c" in pat:
                pos_q = heads(lin(rel_e, p + "pos_query_proj"))
        if "c2p" in pat:
            c2p_att = torch.bmm(q, pos_k.transpose(-1, -2))
            c2p_pos = torch.clamp(relative_pos + span, 0, span * 2 - 1)
            c2p_att = torch.gather(c2p_att, dim=-1, index=c2p_pos.squeeze(0).expand([q.size(0), q.size(1), T]))
            scores = scores + c2p_att / scale.to(dtype=c2p_att.dtype)
        if "p2c" in pat:
            p2c_pos = torch.clamp(-relative_pos + span, 0, span * 2 - 1)
            p2c_att = torch.bmm(k, pos_q.transpose(-1, -2))
            p2c_att = torch.gather(p2c_att, dim=-1, index=p2c_pos.squeeze(0).expand([q.size(0), T, T])).transpose(-1, -2)
            scores = scores + p2c_att / scale.to(dtype=p2c_att.dtype)
        probs = torch.softmax(scores, -1)
        ctx = torch.bmm(probs, v).view(1, nh, T, d).permute(0, 2, 1, 3).contiguous().view(1, T, H)
        q0 = "deberta.encoder.layer.%d." % l
        a = LN(lin(ctx, q0 + "attention.output.dense") + x, q0 + "attention.output.LayerNorm")
        x = LN(lin(gelu(lin(a, q0 + "intermediate.dense")), q0 + "output.dense") + a, q0 + "output.LayerNorm")
    pooled = gelu(lin(x[:, 0], "pooler.dense"))
    return lin(pooled, "classifier")[0]


def run(d, model):
    cfg, W = load(d)
    sp = spm.SentencePieceProcessor(model_file=model)
    cls, sep = sp.piece_to_id("[CLS]"), sp.piece_to_id("[SEP]")
    with torch.no_grad():
        for line in sys.stdin:
            text = json.loads(line)
            out, lens = [], []
            for i in range(0, len(text), 512):
                ids = [cls] + sp.encode(text[i:i + 512])[:510] + [sep]
                lens.append(len(ids))
                out.append(forward(cfg, W, ids).tolist())
            print(json.dumps({"logits": out, "lens": lens}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        run(sys.argv[2], sys.argv[3])
