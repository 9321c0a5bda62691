#!/usr/bin/env python3
"""Makes a Llama 3.1 vocabulary GGUF out of llama.cpp's ggml-vocab-llama-bpe.gguf (Llama 3.0's):
the same 128000 ranked tokens and merges, with the special tokens Llama 3.1 named (LLAMA31.md and
Meta's llama-models tokenizer.py): 128004 <|finetune_right_pad_id|>, 128005 <|step_id|>,
128008 <|eom_id|>, 128010 <|python_tag|>, then <|reserved_special_token_2|> ... from 128011.
Tool calling needs <|python_tag|> and <|eom_id|> to be tokens. Stdlib only.
  llama31_vocab.py IN.gguf OUT.gguf [CHAT_TEMPLATE.jinja]   (the template is stored as tokenizer.chat_template)"""
import struct, sys

SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

def main():
    b = open(sys.argv[1], "rb").read()
    assert b[:4] == b"GGUF"
    version, n_t, n_kv = struct.unpack_from("<IQQ", b, 4)
    assert n_t == 0, "expects a vocabulary-only GGUF"
    o = 24
    def rstr(o):
        n = struct.unpack_from("<Q", b, o)[0]
        return b[o + 8:o + 8 + n], o + 8 + n
    def skip(t, o):
        if t == 8:
            return rstr(o)[1]
        if t == 9:
            et, n = struct.unpack_from("<IQ", b, o)
            o += 12
            for _ in range(n):
                o = skip(et, o)
            return o
        return o + SIZES[t]
    out = bytearray(b[:24])
    names = {128004: "<|finetune_right_pad_id|>", 128005: "<|step_id|>", 128008: "<|eom_id|>",
             128010: "<|python_tag|>"}
    for i in range(128011, 128256):
        names[i] = f"<|reserved_special_token_{i - 128011 + 2}|>"
    for _ in range(n_kv):
        start = o
        key, o = rstr(o)
        t = struct.unpack_from("<I", b, o)[0]
        vstart = o + 4
        end = skip(t, vstart)
        if key == b"tokenizer.ggml.tokens":
            et, n = struct.unpack_from("<IQ", b, vstart)
            p = vstart + 12
            toks = []
            for _ in range(n):
                s, p = rstr(p)
                toks.append(s)
            for i, name in names.items():
                toks[i] = name.encode()
            out += b[start:vstart] + struct.pack("<IQ", et, n)
            for s in toks:
                out += struct.pack("<Q", len(s)) + s
        elif key == b"general.name":
            new = b"llama-3.1-bpe"
            out += b[start:vstart] + struct.pack("<Q", len(new)) + new
        else:
            out += b[start:end]
        o = end
    if len(sys.argv) > 3:
        tmpl = open(sys.argv[3], "rb").read()
        out += struct.pack("<Q", 23) + b"tokenizer.chat_template" + struct.pack("<IQ", 8, len(tmpl)) + tmpl
        struct.pack_into("<Q", out, 16, n_kv + 1)
    out += b"\0" * ((32 - len(out) % 32) % 32)
    open(sys.argv[2], "wb").write(out)

main()
