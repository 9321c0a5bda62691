#!/bin/bash
# herd quantize's targets (the llama-quantize file types and their per-tensor mixes: src/quant/quant.h, mix.c;
# the low-bit quantizers of src/quant/quant_iq.c) against llama-quantize (built from node-llama-cpp's source
# bundle under build/ref/llama-tools), on two random-weight F32 models (stories260K's 512-token vocabulary):
#   A: 2 layers, n_embd 256, 4 query heads on 2 KV heads (gqa 2), n_ff 512, untied
#   B: 8 layers, n_embd 256, 8 query heads on 2 KV heads (gqa 4), n_ff 640 (ffn_down rows of 640: not a
#      multiple of 256, so every 256-block type there takes llama.cpp's fallback), untied
# and an importance matrix this test writes (llama.cpp's .dat format: seeded random positive weights for
# every matrix, token_embd and output included):
# (a) with the matrix, for every target on A and the targets whose rules depend on the layer count, the GQA
#     ratio or the row length on B: every tensor of herd's file has the type and the bytes of
#     llama-quantize's (every quantizer herd runs here is ggml's, byte for byte);
#     (the mixes hold every low-bit type: IQ2_XXS IQ2_XS IQ2_S IQ3_XXS IQ3_S IQ1_S IQ1_M TQ1_0 TQ2_0);
# (b) --pure without a matrix: IQ3_S, TQ2_0 (their quantizers run without one): the same bytes;
# (c) without a matrix, on B: every tensor's type as llama-quantize's for the K-quant, IQ3_S/M and IQ4 mixes
#     (their imatrix-dependent rules); the < 4-bit i-quant targets refuse with one error line naming the tensor;
# (d) herd's files of a few mixes load in llama.cpp (node-llama-cpp) and their mean |logit - F32 model's logit|
#     is no more than that of llama-quantize's file of the same mix (x1.0: the tensors are the same bytes).
source tests/lib.sh
set -o pipefail
need_ref
[ -x "$HERD" ] || die "$HERD is not built"
[ -f "$STORIES" ] || skip "the stories260K fixture ($STORIES) is missing"
BIN=$(tests/ref/build_llama_tools.sh llama-quantize) ||
    { rc=$?; [ $rc = 77 ] && skip "llama.cpp tools cannot be built here"; die "building llama-quantize failed (build/ref/llama-tools/*.log)"; }
GGUF_PY=$REF/llama-tools/src/gguf-py
[ -f "$GGUF_PY/gguf/quants.py" ] || die "gguf-py missing under build/ref/llama-tools"
/usr/bin/python3 -c 'import numpy' 2>/dev/null || skip "python3-numpy is not installed"
T=2
fails=0
PROMPT='[1, 403, 261, 378, 275, 300, 17, 460, 349, 281, 45, 270, 395, 510, 300, 291, 44, 327, 371, 260, 98, 301, 19, 499]'
ALL="Q2_K Q2_K_S Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 IQ4_NL IQ4_XS
     IQ3_M IQ3_S IQ3_XS IQ3_XXS IQ2_M IQ2_S IQ2_XS IQ2_XXS IQ1_M IQ1_S TQ2_0 TQ1_0"
# B: targets whose rules depend on the layer count, the GQA ratio or has_imatrix (on B the others add only
# llama.cpp's row-length fallback, which these cover for every block type)
ON_B="Q2_K Q3_K_M Q4_K_S Q4_K_M Q4_0 IQ4_XS IQ3_XS IQ3_XXS IQ2_M"
NO_IMATRIX="Q2_K Q3_K_M Q4_K_S Q5_K_S IQ4_NL IQ3_S IQ3_M TQ2_0"
LOGITS="Q3_K_M IQ3_XXS IQ2_M IQ1_M TQ1_0"

synth() { # out n_layer n_head n_ff
    "$HERD" synth --vocab "$STORIES" -o "$1" --n-embd 256 --n-head "$3" --n-head-kv 2 --head-dim $((256 / $3)) \
        --n-ff "$4" --n-layer "$2" --untied --rope-scale 0 --type f32 --scale 0.05 --seed 11 >/dev/null || die "synth $1"
}
synth "$TMP/a.gguf" 2 4 512
synth "$TMP/b.gguf" 8 8 640
for m in a b; do
    /usr/bin/python3 tests/ref/random_imatrix.py "$GGUF_PY" "$TMP/$m.gguf" "$TMP/$m.dat" || die "writing the imatrix"
done

lq() { "$BIN/llama-quantize" "$@" >"$TMP/lq.log" 2>&1 || { tail -3 "$TMP/lq.log"; return 1; }; }
hq() { "$HERD" quantize -t $T -q "$@" >/dev/null 2>"$TMP/hq.log" || { cat "$TMP/hq.log"; return 1; }; }
# check label mode(same|types) model target [flags...]: both programs write the file; the pair is listed in
# $TMP/pairs and compared at the end of the section (compare_pairs: one numpy start for all)
check() {
    local label=$1 mode=$2 m=$3 t=$4; shift 4
    local l=$TMP/l-$m-$t$label.gguf h=$TMP/h-$m-$t$label.gguf
    lq "$@" "$TMP/$m.gguf" "$l" "$t" $T || { echo "FAIL llama-quantize $label $t"; fails=$((fails + 1)); return; }
    hq "$@" "$TMP/$m.gguf" "$h" "$t" || { echo "FAIL herd quantize $label $t"; fails=$((fails + 1)); return; }
    echo "$label $t $mode $l $h" >>"$TMP/pairs"
}
# every tensor of llama-quantize's file has the same type (and with `same` the same bytes) in herd's
compare_pairs() {
    /usr/bin/python3 - "$GGUF_PY" "$TMP/pairs" <<'EOF' || fails=$((fails + 1))
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from gguf import GGUFReader
from gguf.constants import GGMLQuantizationType as T
bad = 0
for line in open(sys.argv[2]):
    label, target, mode, lp, hp = line.split()
    a = {t.name: t for t in GGUFReader(lp).tensors}
    b = {t.name: t for t in GGUFReader(hp).tensors}
    counts, diff = {}, []
    for name, ta in a.items():
        tb = b.get(name)
        same = tb is not None and ta.tensor_type == tb.tensor_type and (mode == "types" or np.array_equal(
            np.asarray(ta.data).view(np.uint8), np.asarray(tb.data).view(np.uint8)))
        tn = T(ta.tensor_type).name
        if tn != "F32":
            counts[tn] = counts.get(tn, 0) + 1
        if not same:
            diff.append(f"{name} ({tn} / {T(tb.tensor_type).name if tb is not None else 'missing'})")
    if len(b) != len(a):
        diff.append(f"{len(b)} tensors in herd's file, {len(a)} in llama-quantize's")
    kinds = " ".join(f"{k}x{v}" for k, v in sorted(counts.items()))
    what = "types" if mode == "types" else "types+bytes"
    print(f"{'ok  ' if not diff else 'FAIL'} {label} {target:8s} {what:11s} {kinds}" +
          (f"; differ: {', '.join(diff[:4])}" if diff else ""))
    bad += bool(diff)
sys.exit(1 if bad else 0)
EOF
    rm -f "$TMP/pairs"
}

echo "== (a) the mixes with an importance matrix: every tensor's type and bytes as llama-quantize's"
for t in $ALL; do check A same a $t --imatrix "$TMP/a.dat"; done
for t in $ON_B; do check B same b $t --imatrix "$TMP/b.dat"; done
compare_pairs

echo "== (b) --pure without a matrix: the quantizers that run without one"
for t in IQ3_S TQ2_0; do check P same a $t --pure; done
compare_pairs

echo "== (c) without an importance matrix: types as llama-quantize's; the < 4-bit i-quants refuse"
for t in $NO_IMATRIX; do check N types b $t; done
compare_pairs
for t in IQ2_XXS IQ2_M IQ1_S IQ3_XXS Q2_K_S; do
    if "$HERD" quantize -q "$TMP/b.gguf" "$TMP/x.gguf" $t >/dev/null 2>"$TMP/err.txt"; then
        echo "FAIL $t without an importance matrix was accepted"; fails=$((fails + 1))
    elif [ "$(wc -l <"$TMP/err.txt")" -ne 1 ] || ! grep -q "needs an importance matrix" "$TMP/err.txt"; then
        echo "FAIL $t without an importance matrix: expected one error line, got:"; cat "$TMP/err.txt"; fails=$((fails + 1))
    else
        echo "ok  $t refused: $(cat "$TMP/err.txt")"
    fi
done

echo "== (d) herd's files in llama.cpp: mean |logit - F32| no more than llama-quantize's file's"
node tests/ref/logits.mjs "$TMP/a.gguf" "$PROMPT" "$TMP/f32.bin" || die "llama.cpp could not run the F32 model"
for t in $LOGITS; do
    node tests/ref/logits.mjs "$TMP/l-a-${t}A.gguf" "$PROMPT" "$TMP/l.bin" &&
        node tests/ref/logits.mjs "$TMP/h-a-${t}A.gguf" "$PROMPT" "$TMP/h.bin" ||
        { echo "FAIL llama.cpp could not run the $t files"; fails=$((fails + 1)); continue; }
    /usr/bin/python3 - "$TMP/f32.bin" "$TMP/l.bin" "$TMP/h.bin" "$t" <<'EOF' || fails=$((fails + 1))
import sys
import numpy as np
f, l, h = (np.fromfile(p, dtype="<f4").astype(np.float64) for p in sys.argv[1:4])
el, eh = np.abs(l - f).mean(), np.abs(h - f).mean()
ok = eh <= el
print(f"{'ok  ' if ok else 'FAIL'} {sys.argv[4]:8s} mean |logit - F32| in llama.cpp: herd's file {eh:.5f}, "
      f"llama-quantize's {el:.5f}")
sys.exit(0 if ok else 1)
EOF
done

[ $fails -eq 0 ] || die "$fails check(s) failed"
echo "all quantization mix checks passed"
