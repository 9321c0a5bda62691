#!/bin/bash
# The legacy block types and 4-bit i-quants (Q4_1, Q5_0, Q5_1, IQ4_NL, IQ4_XS; src/kernels/legacy.h) against
# llama.cpp, on one small random-weight model (2 layers, n_embd 256, untied; stories260K's 512-token vocabulary, so
# that gguf-py and llama.cpp load it in a moment):
# (a) llama-quantize (built from node-llama-cpp's bundled source under build/ref/llama-tools) writes each type
#     (--pure: every matrix that type); herd dequantizes every tensor (`herd convert --type f32`) bit for bit
#     as llama.cpp's gguf-py (gguf/quants.py, numpy) does;
# (b) `herd quantize --pure` writes the same bytes as llama-quantize (no importance matrix);
# (c) llama.cpp and herd give the same logits (32 positions, F32 KV cache) on llama.cpp's files of one type
#     per dot partner: Q5_1 (q8_1 activations), IQ4_NL (q8_0), IQ4_XS (q8_K), and Q5_0 (q8_0, its fifth
#     bits; packed on AVX-512 VNNI CPUs). TOL as kquants_llama_cpp.sh;
# (d) a truncated file of these types gives one error line;
# (e) without --pure, herd quantize gives every tensor the type llama-quantize gives it (IQ4_NL / IQ4_XS on
#     an 8-layer model with 4 query heads per KV head: output Q6_K, attn_v Q5_K, layer 0's ffn_down Q5_K).
source tests/lib.sh
set -o pipefail # the checkers exit 1 on a difference; their output is filtered through grep
need_ref
[ -x "$HERD" ] || die "$HERD is not built"
[ -f "$STORIES" ] || skip "the stories260K fixture ($STORIES) is missing"
# llama-quantize and gguf-py: built once from the bundle (shared with perplexity_llama_cpp.sh)
need_llama_tools
QUANTIZE=$BIN/llama-quantize
GGUF_PY=$REF/llama-tools/src/gguf-py
[ -x "$QUANTIZE" ] && [ -f "$GGUF_PY/gguf/quants.py" ] || die "llama-quantize / gguf-py missing under build/ref/llama-tools"
/usr/bin/python3 -c 'import numpy' 2>/dev/null || skip "python3-numpy is not installed"
TOL=0.2
PROMPT='[1, 403, 261, 378, 275, 300, 17, 460, 349, 281, 45, 270, 395, 510, 300, 291, 44, 327, 371, 260, 98, 301, 19, 499, 376, 288, 303, 342, 430, 308, 265, 411]'
TYPES="Q4_1 Q5_0 Q5_1 IQ4_NL IQ4_XS"
fails=0

f32=$TMP/f32.gguf
"$HERD" synth --vocab "$STORIES" -o "$f32" --n-embd 256 --n-head 4 --n-head-kv 2 --head-dim 64 --n-ff 512 \
    --n-layer 2 --untied --rope-scale 0 --type f32 --scale 0.05 --seed 11 || die "synth"

echo "== (a) dequantization vs gguf-py, (b) herd quantize vs llama-quantize"
for t in $TYPES; do
    "$QUANTIZE" --pure "$f32" "$TMP/ref-$t.gguf" "$t" 2 >"$TMP/lq.log" 2>&1 || { tail -3 "$TMP/lq.log"; die "llama-quantize $t"; }
    "$HERD" convert "$TMP/ref-$t.gguf" "$TMP/deq.gguf" --type f32 >/dev/null || die "herd convert $t"
    /usr/bin/python3 tests/ref/gguf_dequant.py "$GGUF_PY" dequant "$TMP/ref-$t.gguf" "$TMP/deq.gguf" | grep -v ' F32:' ||
        fails=$((fails + 1))
    "$HERD" quantize "$f32" "$TMP/herd-$t.gguf" "$t" --pure -t 2 -q >/dev/null 2>"$TMP/q.log" ||
        { cat "$TMP/q.log"; die "herd quantize $t"; }
    /usr/bin/python3 tests/ref/gguf_dequant.py "$GGUF_PY" same "$TMP/ref-$t.gguf" "$TMP/herd-$t.gguf" | grep -v ' F32:' ||
        fails=$((fails + 1))
    [ "$t" = Q5_0 ] || [ "$t" = Q5_1 ] || [ "$t" = IQ4_NL ] || [ "$t" = IQ4_XS ] || rm -f "$TMP/ref-$t.gguf"
    rm -f "$TMP/herd-$t.gguf" "$TMP/deq.gguf"
done

echo "== (c) logits: llama.cpp vs herd on llama.cpp's files"
for t in Q5_0 Q5_1 IQ4_NL IQ4_XS; do
    m=$TMP/ref-$t.gguf
    node tests/ref/logits.mjs "$m" "$PROMPT" "$TMP/ref.bin" || { echo "FAIL llama.cpp could not run $t"; fails=$((fails + 1)); continue; }
    "$HERD" logits -m "$m" --prompt-ids "$PROMPT" -o "$TMP/herd.bin" --kv-type f32 ||
        { echo "FAIL herd could not run $t"; fails=$((fails + 1)); continue; }
    printf '%-8s ' "$t"
    node tests/ref/compare_logits.mjs "$TMP/ref.bin" "$TMP/herd.bin" 512 "$TOL" || fails=$((fails + 1))
done

echo "== (d) bad input: one error line"
for t in Q5_1 IQ4_XS; do
    head -c $(($(stat -c %s "$TMP/ref-$t.gguf") - 1000)) "$TMP/ref-$t.gguf" >"$TMP/trunc.gguf"
    if "$HERD" run -m "$TMP/trunc.gguf" -p hi -n 1 >/dev/null 2>"$TMP/err.txt"; then
        echo "FAIL a truncated $t file was accepted"; fails=$((fails + 1))
    elif [ "$(wc -l <"$TMP/err.txt")" -ne 1 ] || ! grep -q trunc.gguf "$TMP/err.txt"; then
        echo "FAIL truncated $t: expected one error line naming the file, got:"; cat "$TMP/err.txt"; fails=$((fails + 1))
    else
        echo "ok   truncated $t: $(cat "$TMP/err.txt")"
    fi
done

echo "== (e) the mix without --pure: types as llama-quantize's"
"$HERD" synth --vocab "$STORIES" -o "$f32" --n-embd 256 --n-head 8 --n-head-kv 2 --head-dim 32 --n-ff 512 \
    --n-layer 8 --untied --rope-scale 0 --type f32 --scale 0.05 --seed 5 || die "synth (gqa 4)"
for t in IQ4_NL IQ4_XS; do
    "$QUANTIZE" "$f32" "$TMP/ref-mix.gguf" "$t" 2 >"$TMP/lq.log" 2>&1 || { tail -3 "$TMP/lq.log"; die "llama-quantize $t"; }
    "$HERD" quantize "$f32" "$TMP/herd-mix.gguf" "$t" -t 2 -q >/dev/null 2>"$TMP/q.log" || { cat "$TMP/q.log"; die "herd quantize $t"; }
    /usr/bin/python3 tests/ref/gguf_dequant.py "$GGUF_PY" types "$TMP/ref-mix.gguf" "$TMP/herd-mix.gguf" | grep -v ' F32:' ||
        fails=$((fails + 1))
done

[ $fails -eq 0 ] || die "$fails check(s) failed"
echo "all legacy / i-quant checks passed"
