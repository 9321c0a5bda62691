#!/bin/bash
# q1_0 and q2_0 (llama-quantize's Q1_0 and Q2_0; src/kernels/bitquants.h) against llama.cpp, on one small
# random-weight model (2 layers, n_embd 256, untied; stories260K's 512-token vocabulary, as iquants_llama_cpp.sh):
# (a) llama-quantize (built from node-llama-cpp's bundled source under build/ref/llama-tools) writes each type
#     (--pure: every matrix that type); `herd info --tensors` names it; herd dequantizes every tensor (`herd
#     convert --type f32`) bit for bit as ggml's dequantize_row_q1_0 / q2_0 (ggml-quants.c), transcribed to numpy
#     below: the bundled gguf-py has no code for these two types, so this is the check of the format;
# (b) logits (32 positions, F32 KV cache) on llama.cpp's file of each type: herd within TOL (max |delta|) of
#     llama.cpp, and herd's mean |logit - F32 model's logit| no more than 1.1x llama.cpp's own on the file.
source tests/lib.sh
set -o pipefail
need_ref
[ -x "$HERD" ] || die "$HERD is not built"
[ -f "$STORIES" ] || skip "the stories260K fixture ($STORIES) is missing"
need_llama_tools
QUANTIZE=$BIN/llama-quantize
GGUF_PY=$REF/llama-tools/src/gguf-py
[ -x "$QUANTIZE" ] && [ -f "$GGUF_PY/gguf/gguf_reader.py" ] || die "llama-quantize / gguf-py missing under build/ref/llama-tools"
"$QUANTIZE" --help >"$TMP/lqh.txt" 2>&1 || true # (it exits 1 after the help)
grep -q ' Q1_0 ' "$TMP/lqh.txt" || skip "the bundled llama-quantize has no Q1_0 (an older llama.cpp)"
/usr/bin/python3 -c 'import numpy' 2>/dev/null || skip "python3-numpy is not installed"
TOL=${BQ_TOL:-0.001} # measured: max |delta| 2.4e-7 (q1_0), 4.8e-7 (q2_0)
PROMPT='[1, 403, 261, 378, 275, 300, 17, 460, 349, 281, 45, 270, 395, 510, 300, 291, 44, 327, 371, 260, 98, 301, 19, 499, 376, 288, 303, 342, 430, 308, 265, 411]'
fails=0

f32=$TMP/f32.gguf
"$HERD" synth --vocab "$STORIES" -o "$f32" --n-embd 256 --n-head 4 --n-head-kv 2 --head-dim 64 --n-ff 512 \
    --n-layer 2 --untied --rope-scale 0 --type f32 --scale 0.05 --seed 11 || die "synth"
node tests/ref/logits.mjs "$f32" "$PROMPT" "$TMP/f32.bin" || die "llama.cpp could not run the F32 model"

for tt in Q1_0:q1_0 Q2_0:q2_0; do
    t=${tt%%:*} lc=${tt#*:}
    echo "== $t"
    m=$TMP/ref-$t.gguf
    "$QUANTIZE" --pure "$f32" "$m" "$t" 2 >"$TMP/lq.log" 2>&1 ||
        { tail -3 "$TMP/lq.log"; echo "FAIL llama-quantize $t"; fails=$((fails + 1)); continue; }
    # (a)
    n=$("$HERD" info "$m" --tensors 2>&1 | grep -c "\b$lc\b")
    [ "$n" -ge 9 ] || { echo "FAIL herd info --tensors names $lc on $n lines"; "$HERD" info "$m" --tensors 2>&1 | tail -5; fails=$((fails + 1)); }
    if "$HERD" convert "$m" "$TMP/deq.gguf" --type f32 >/dev/null; then
        /usr/bin/python3 - "$GGUF_PY" "$m" "$TMP/deq.gguf" "$lc" <<'EOF' || fails=$((fails + 1))
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from gguf import GGUFReader
q = {t.name: t for t in GGUFReader(sys.argv[2]).tensors}
h = {t.name: t for t in GGUFReader(sys.argv[3]).tensors}
want_type = {"q1_0": 41, "q2_0": 42}[sys.argv[4]]

def dequant(raw, ty):
    # ggml-quants.c: dequantize_row_q1_0 / dequantize_row_q2_0
    blocks = raw.reshape(-1, 18)
    d = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (nb, 1)
    qs = blocks[:, 2:]
    if ty == 41:  # element j: bit j % 8 of qs[j / 8]; set -> d, else -d
        bits = (qs[:, :, None] >> np.arange(8, dtype=np.uint8)) & 1  # (nb, 16, 8)
        return np.where(bits.reshape(-1, 128) != 0, d, -d).reshape(-1)
    t = (qs[:, :, None] >> (2 * np.arange(4, dtype=np.uint8))) & 3  # (nb, 16, 4): element 4b + l
    return ((t.reshape(-1, 64).astype(np.int32) - 1).astype(np.float32) * d).reshape(-1)

n, bad = 0, 0
for name, t in q.items():
    if int(t.tensor_type) != want_type:
        continue
    n += 1
    want = dequant(np.asarray(t.data, dtype=np.uint8).reshape(-1), want_type)
    got = np.asarray(h[name].data, dtype=np.float32).reshape(-1)
    if want.shape != got.shape or not np.array_equal(want.view(np.uint32), got.view(np.uint32)):
        bad += 1
        print(f"   FAIL {name}: herd's dequantization differs from ggml's")
ok = n == 16 and bad == 0
print(f"   {'ok  ' if ok else 'FAIL'} dequant {sys.argv[4]}: {n} tensors (expected 16), {bad} differ")
sys.exit(0 if ok else 1)
EOF
    else
        echo "FAIL herd convert $t"; fails=$((fails + 1))
    fi
    # (b)
    check_quant_logits "$m" "$PROMPT" 512 "$TOL" "$t" || fails=$((fails + $?))
    rm -f "$m" "$TMP/deq.gguf"
done

[ $fails -eq 0 ] || die "$fails check(s) failed"
echo "all q1_0 / q2_0 checks passed"
