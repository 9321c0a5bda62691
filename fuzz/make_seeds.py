#!/usr/bin/env python3
"""Writes small valid GGUF files as a seed corpus for fuzz_gguf (stdlib only): one with every
metadata type and a few tensors, one with a tiny BPE vocabulary, one with a tiny SentencePiece one."""
import os, struct, sys

def s(x):
    b = x.encode() if isinstance(x, str) else x
    return struct.pack("<Q", len(b)) + b

def kv(key, t, payload):
    return s(key) + struct.pack("<I", t) + payload

def arr(t, items, fmt):
    return struct.pack("<IQ", t, len(items)) + b"".join(struct.pack(fmt, i) for i in items)

def arr_str(items):
    return struct.pack("<IQ", 8, len(items)) + b"".join(s(i) for i in items)

def gguf(kvs, tensors):
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)) + b"".join(kvs)
    data, off = b"", 0
    for name, ttype, ne, raw in tensors:
        out += s(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", n) for n in ne)
        out += struct.pack("<IQ", ttype, off)
        pad = (32 - len(raw) % 32) % 32
        data += raw + b"\0" * pad
        off += len(raw) + pad
    out += b"\0" * ((32 - len(out) % 32) % 32)
    return out + data

d = sys.argv[1]
os.makedirs(d, exist_ok=True)
types = gguf([kv("general.architecture", 8, s("llama")), kv("u8", 0, b"\x05"), kv("i16", 3, b"\xfe\xff"),
              kv("f64", 12, struct.pack("<d", 1.5)), kv("b", 7, b"\x01"), kv("u64", 10, struct.pack("<Q", 7)),
              kv("arr", 9, arr(5, [1, 2, 3], "<i"))],
             [("a.weight", 0, [4, 2], struct.pack("<8f", *range(8))), ("b", 8, [32], b"\0" * 34),
              ("c", 1, [3], b"\0" * 6)])
open(os.path.join(d, "types.gguf"), "wb").write(types)
byte_chars = [chr(c) for c in range(33, 127)]
bpe = gguf([kv("tokenizer.ggml.model", 8, s("gpt2")), kv("tokenizer.ggml.pre", 8, s("llama-bpe")),
            kv("tokenizer.ggml.tokens", 9, arr_str(byte_chars + ["He", "ll", "<|eot_id|>"])),
            kv("tokenizer.ggml.token_type", 9, arr(5, [1] * (len(byte_chars) + 2) + [3], "<i")),
            kv("tokenizer.ggml.merges", 9, arr_str(["H e", "l l"])),
            kv("tokenizer.ggml.bos_token_id", 4, struct.pack("<I", 0))], [])
open(os.path.join(d, "bpe.gguf"), "wb").write(bpe)
spm_tokens = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % i for i in range(256)] + ["\u2581", "H", "e", "\u2581He"]
spm = gguf([kv("tokenizer.ggml.model", 8, s("llama")),
            kv("tokenizer.ggml.tokens", 9, arr_str(spm_tokens)),
            kv("tokenizer.ggml.scores", 9, arr(6, [0.0] * len(spm_tokens), "<f")),
            kv("tokenizer.ggml.token_type", 9, arr(5, [2, 3, 3] + [6] * 256 + [1] * 4, "<i"))], [])
open(os.path.join(d, "spm.gguf"), "wb").write(spm)
