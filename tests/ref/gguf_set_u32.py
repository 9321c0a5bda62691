#!/usr/bin/python3
"""Copies a GGUF v3 file, adding (or replacing) one u32 key: gguf_set_u32.py IN OUT KEY VALUE.
Used to give a test model llama.cpp's `llama.pooling_type` (1 mean, 2 cls, 3 last, 0 none). Standard
library only; the tensor data is copied unchanged after re-padding to the file's alignment."""
import struct, sys

src, dst, key, value = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
b = open(src, "rb").read()
assert b[:4] == b"GGUF" and struct.unpack_from("<I", b, 4)[0] == 3, "not a GGUF v3 file"
n_t, n_kv = struct.unpack_from("<QQ", b, 8)
p = 24
SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

def skip_str(p):
    return p + 8 + struct.unpack_from("<Q", b, p)[0]

def skip_val(p, t):
    if t == 8: return skip_str(p)
    if t == 9:
        et, n = struct.unpack_from("<IQ", b, p); p += 12
        for _ in range(n): p = skip_val(p, et)
        return p
    return p + SIZES[t]

kvs, align = [], 32
for _ in range(n_kv):
    k0 = p
    klen = struct.unpack_from("<Q", b, p)[0]
    name = b[p + 8:p + 8 + klen].decode()
    p = skip_str(p)
    t = struct.unpack_from("<I", b, p)[0]
    v0 = p + 4
    p = skip_val(v0, t)
    if name == "general.alignment": align = struct.unpack_from("<I", b, v0)[0]
    if name != key: kvs.append(b[k0:p])
ti0 = p
for _ in range(n_t):
    p = skip_str(p)
    nd = struct.unpack_from("<I", b, p)[0]
    p += 4 + 8 * nd + 4 + 8
ti = b[ti0:p]
data = b[(p + align - 1) // align * align:]
kb = key.encode()
kvs.append(struct.pack("<Q", len(kb)) + kb + struct.pack("<II", 4, value))
head = b[:8] + struct.pack("<QQ", n_t, len(kvs)) + b"".join(kvs) + ti
head += b"\0" * ((-len(head)) % align)
open(dst, "wb").write(head + data)
