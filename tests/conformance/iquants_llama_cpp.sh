#!/bin/bash
# The low-bit i-quants and ternary types (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M, TQ1_0, TQ2_0;
# src/kernels/iquants.h) against llama.cpp, on one small random-weight model (2 layers, n_embd 256, untied;
# stories260K's 512-token vocabulary, as legacy_quants_llama_cpp.sh), shared by every type:
# (a) llama-quantize (built from node-llama-cpp's bundled source under build/ref/llama-tools) writes each type
#     (--pure: every matrix that type) with an importance matrix this test writes (llama.cpp's legacy .dat
#     format: seeded random positive column weights; the < 4-bit i-quants refuse to run without one);
#     herd dequantizes every tensor (`herd convert --type f32`) bit for bit as llama.cpp's gguf-py
#     (gguf/quants.py, numpy) does; `herd info --tensors` names the type;
# (b) logits (32 positions, F32 KV cache) on llama.cpp's file of each type: herd within TOL (max |delta|) of
#     llama.cpp, and herd's mean |logit - F32 model's logit| no more than 1.1x llama.cpp's own on the file.
# (c) iq3_s / iq2_s, which repacking expands (kernels/packed.h; on AVX-512 VNNI CPUs): repacked when memory
#     allows, kept in the file's layout with a line saying so when it does not (HERD_MEM_AVAILABLE).
source tests/lib.sh
set -o pipefail # the checkers exit 1 on a difference; their output is filtered through grep
need_ref
[ -x "$HERD" ] || die "$HERD is not built"
[ -f "$STORIES" ] || skip "the stories260K fixture ($STORIES) is missing"
need_llama_tools
QUANTIZE=$BIN/llama-quantize
GGUF_PY=$REF/llama-tools/src/gguf-py
[ -x "$QUANTIZE" ] && [ -f "$GGUF_PY/gguf/quants.py" ] || die "llama-quantize / gguf-py missing under build/ref/llama-tools"
/usr/bin/python3 -c 'import numpy' 2>/dev/null || skip "python3-numpy is not installed"
TOL=${IQ_TOL:-0.001} # measured: max |delta| <= 1.2e-6 for every type (herd's dots sum as ggml's do)
PROMPT='[1, 403, 261, 378, 275, 300, 17, 460, 349, 281, 45, 270, 395, 510, 300, 291, 44, 327, 371, 260, 98, 301, 19, 499, 376, 288, 303, 342, 430, 308, 265, 411]'
# llama-quantize's file type : the tensor type it writes under --pure (its IQ2_S file type is IQ2_XS tensors,
# its IQ2_M is IQ2_S)
TYPES=${IQ_TYPES:-"IQ2_XXS:iq2_xxs IQ2_XS:iq2_xs IQ2_M:iq2_s IQ3_XXS:iq3_xxs IQ3_S:iq3_s IQ1_S:iq1_s IQ1_M:iq1_m TQ1_0:tq1_0 TQ2_0:tq2_0"}
fails=0

f32=$TMP/f32.gguf
"$HERD" synth --vocab "$STORIES" -o "$f32" --n-embd 256 --n-head 4 --n-head-kv 2 --head-dim 64 --n-ff 512 \
    --n-layer 2 --untied --rope-scale 0 --type f32 --scale 0.05 --seed 11 || die "synth"

# a random importance matrix (llama.cpp's legacy .dat layout), every 2-D tensor
/usr/bin/python3 tests/ref/random_imatrix.py "$GGUF_PY" "$f32" "$TMP/imatrix.dat" || die "writing the imatrix"

node tests/ref/logits.mjs "$f32" "$PROMPT" "$TMP/f32.bin" || die "llama.cpp could not run the F32 model"

for tt in $TYPES; do
    t=${tt%%:*} lc=${tt#*:}
    echo "== $t ($lc)"
    m=$TMP/ref-$t.gguf
    "$QUANTIZE" --pure --imatrix "$TMP/imatrix.dat" "$f32" "$m" "$t" 2 >"$TMP/lq.log" 2>&1 ||
        { tail -3 "$TMP/lq.log"; echo "FAIL llama-quantize $t"; fails=$((fails + 1)); continue; }
    # (a)
    if "$HERD" convert "$m" "$TMP/deq.gguf" --type f32 >/dev/null; then
        # (its summary names each type it compared: llama-quantize must have written $lc matrices)
        /usr/bin/python3 tests/ref/gguf_dequant.py "$GGUF_PY" dequant "$m" "$TMP/deq.gguf" >"$TMP/dq.txt" || fails=$((fails + 1))
        grep -v ' F32:' "$TMP/dq.txt"
        grep -q "dequant ${lc^^}: 16 tensors" "$TMP/dq.txt" || { echo "FAIL expected 16 ${lc^^} tensors"; fails=$((fails + 1)); }
    else
        echo "FAIL herd convert $t"; fails=$((fails + 1))
    fi
    n=$("$HERD" info "$m" --tensors 2>&1 | grep -c "\b$lc\b")
    [ "$n" -ge 9 ] || { echo "FAIL herd info --tensors names $lc on $n lines"; "$HERD" info "$m" --tensors 2>&1 | tail -5; fails=$((fails + 1)); }
    # (b)
    check_quant_logits "$m" "$PROMPT" 512 "$TOL" "$t" || fails=$((fails + $?))
    # (c)
    if [ "$lc" = iq3_s ] || [ "$lc" = iq2_s ]; then
        if "$HERD" info "$m" 2>&1 | grep -q 'avx512.*repacked'; then
            HERD_MEM_AVAILABLE=100000 "$HERD" info "$m" >"$TMP/info.txt" 2>&1
            if grep -q 'cpu kernels:.*repacked' "$TMP/info.txt" || ! grep -q "would not fit in the 0.1 MiB available" "$TMP/info.txt"; then
                echo "FAIL $lc with 100 kB available: still repacked, or no line saying it is not"; cat "$TMP/info.txt"; fails=$((fails + 1))
            fi
        elif "$HERD" info "$m" 2>&1 | grep -q 'cpu kernels:.*avx512'; then
            echo "FAIL $lc not repacked on this AVX-512 CPU"; fails=$((fails + 1))
        fi
    fi
    rm -f "$m" "$TMP/deq.gguf"
done

[ $fails -eq 0 ] || die "$fails check(s) failed"
echo "all low-bit i-quant / ternary checks passed"
