#!/usr/bin/env python3
"""Surgical edits of a GGUF for bad-input tests (stdlib only).

  gguf_edit.py IN OUT tensor-type NAME TYPE_ID      change a tensor's type id in place
  gguf_edit.py IN OUT tensor-rename NAME NEW         rename a tensor (same length)
  gguf_edit.py IN OUT tensor-offset NAME OFFSET      move a tensor's data offset
  gguf_edit.py IN OUT kv-u32 KEY VALUE               set a u32 metadata value in place
  gguf_edit.py IN OUT kv-str KEY VALUE               replace a string value (rewrites the header)
  gguf_edit.py IN OUT truncate BYTES                 keep the first BYTES bytes
  gguf_edit.py IN - offsets                          print where the header parts end
"""
import struct, sys

def parse(b):
    """Returns (kvs, tensors, header_end): kvs {key: (value_offset, type, value_end)},
    tensors {name: (name_offset, type_offset, offset_offset)}."""
    o = 24
    n_t, n_kv = struct.unpack_from("<QQ", b, 8)
    def rstr(o):
        n = struct.unpack_from("<Q", b, o)[0]
        return b[o + 8:o + 8 + n], o + 8 + n
    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
    def skip(t, o):
        if t == 8:
            return rstr(o)[1]
        if t == 9:
            et, n = struct.unpack_from("<IQ", b, o)
            o += 12
            for _ in range(n):
                o = skip(et, o)
            return o
        return o + sizes[t]
    kvs = {}
    for _ in range(n_kv):
        k, o = rstr(o)
        t = struct.unpack_from("<I", b, o)[0]
        o += 4
        end = skip(t, o)
        kvs[k.decode()] = (o, t, end)
        o = end
    tensors = {}
    for _ in range(n_t):
        name_off = o
        name, o = rstr(o)
        nd = struct.unpack_from("<I", b, o)[0]
        o += 4 + 8 * nd
        tensors[name.decode()] = (name_off, o, o + 4)
        o += 12
    return kvs, tensors, o

def main():
    src, dst, op = sys.argv[1], sys.argv[2], sys.argv[3]
    b = bytearray(open(src, "rb").read())
    kvs, tensors, hdr_end = parse(b)
    if op == "offsets":
        print(f"header_end {hdr_end} kv_end {max(e for _, _, e in kvs.values())}")
        return
    a = sys.argv[4:]
    if op == "tensor-type":
        struct.pack_into("<I", b, tensors[a[0]][1], int(a[1]))
    elif op == "tensor-rename":
        off = tensors[a[0]][0]
        assert len(a[1]) == len(a[0])
        b[off + 8:off + 8 + len(a[1])] = a[1].encode()
    elif op == "tensor-offset":
        struct.pack_into("<Q", b, tensors[a[0]][2], int(a[1]))
    elif op == "kv-u32":
        vo, t, _ = kvs[a[0]]
        assert t == 4, "not a u32"
        struct.pack_into("<I", b, vo, int(a[1]))
    elif op == "kv-str":
        vo, t, end = kvs[a[0]]
        assert t == 8
        new = a[1].encode()
        orig = b
        b = b[:vo] + struct.pack("<Q", len(new)) + new + b[end:]
        # the data section starts at the aligned end of the header: re-pad, then the original data
        _, _, hdr_end2 = parse(b)
        old_data = (hdr_end + 31) // 32 * 32
        new_data = (hdr_end2 + 31) // 32 * 32
        b = b[:hdr_end2] + b"\0" * (new_data - hdr_end2) + orig[old_data:]
    elif op == "truncate":
        b = b[:int(a[0])]
    else:
        sys.exit(f"unknown op {op}")
    open(dst, "wb").write(b)

main()
