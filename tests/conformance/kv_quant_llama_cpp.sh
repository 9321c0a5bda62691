#!/bin/bash
# Quantized KV cache conformance against llama.cpp (node-llama-cpp 3.22.1, CPU, flash attention on: llama.cpp
# needs it for a quantized V cache). herd writes random-weight F32 GGUFs (real Llama 3 vocabulary); llama.cpp
# and herd compute the logits of the same 64 positions (32 prompt tokens + 32 that llama.cpp generated
# greedily on an f32 cache) with the same K and V cache types.
#
# The plain form: the bundled llama.cpp rotates Q/K/V by a Hadamard matrix before a quantized cache when
# head_dim % 64 == 0 (llama-kv-cache.cpp, attn_rot_k/v). herd does not; the reference runs with
# LLAMA_ATTN_ROT_DISABLE=1, which turns the rotation off, and the configs are head_dim 128 and 64 (where the
# rotation would apply). With the rotation on, llama.cpp's q8_0 logits differ from the plain form by ~0.2 on
# these models: a different (also valid) quantization, not something to match bit for bit.
#
# Arithmetic both follow (ggml's CPU flash attention, ops.cpp one_chunk): the query converted to q8_0 blocks
# (K q8_0 and q4_0) or bf16 (K bf16) and each score the type's dot; quantized/bf16 V rows to f32, then f32
# accumulation. So where the inputs agree the scores agree to f32 rounding (measured: q8_0/q8_0 3.7e-6).
# Tolerances (max |Δlogit| over 64 positions x 128256 logits, logits span ±6): as in forward_llama_cpp.sh,
# sums in different orders now and then round one cached element (or a query element) to the neighbouring
# step of the coarse type, and that propagates through the cache: q8_0 (step 1/127 of a block's max)
# 5e-2, as the issue requires (an unquantized query against q8_0 keys is already 0.16 off); q4_0 (step 1/8)
# 1e-1; bf16 5e-2. With an f16 V cache llama.cpp accumulates V in f16 (VKQ16) where herd accumulates in f32:
# 2e-2 measured, tolerance 5e-2. A wrong block layout, scale or head offset moves logits by O(1).
# The test can fail: it also checks that each quantized cache moves herd's logits away from those of an f32
# cache by more than twice herd's distance to llama.cpp (the cache really is quantized, and herd follows
# llama.cpp's quantization, not merely the f32 result), and that F16 KV still agrees with llama.cpp's f16
# cache (flash attention) to 1e-2.
source tests/lib.sh
need_ref
[ -x "$HERD" ] || die "$HERD is not built"
export LLAMA_ATTN_ROT_DISABLE=1
declare -A TOL=([q8_0]=5e-2 [q4_0]=1e-1 [bf16]=5e-2 [f16]=1e-2)

# name|synth options|K:V type pairs
# (the second model reuses the first one's 64 ids: any ids will do, and it saves a llama.cpp run)
CONFIGS=(
  "gqa4-hd128-tied-rope32|--n-embd 512 --n-head 4 --n-head-kv 1 --head-dim 128 --n-ff 1024 --n-layer 2 --tied --rope-scale 32|q8_0:q8_0 q4_0:q4_0 q8_0:f16"
  "gqa2-hd64-tied-rope8|--n-embd 256 --n-head 4 --n-head-kv 2 --head-dim 64 --n-ff 768 --n-layer 2 --tied --rope-scale 8|f16:q4_0 f16:f16"
)
PROMPT='[128000, 9906, 11, 1917, 0, 2028, 374, 264, 1296, 315, 279, 11914, 13, 578, 4062, 14198, 39935, 35308, 927, 279, 16053, 5679, 13, 220, 16, 17, 18, 19, 20, 21, 22, 23]'
# max |a - b| of two logit files
maxdiff() {
    node -e 'const fs=require("fs");const r=p=>new Float32Array(fs.readFileSync(p).buffer.slice(0));
      const a=r(process.argv[1]),b=r(process.argv[2]);let m=0;for(let i=0;i<a.length;i++)m=Math.max(m,Math.abs(a[i]-b[i]));
      console.log(m.toExponential(3))' "$1" "$2"
}
fails=0
for cfg in "${CONFIGS[@]}"; do
    IFS='|' read -r name opts pairs <<<"$cfg"
    m=$TMP/$name.gguf
    # shellcheck disable=SC2086
    "$HERD" synth --vocab "$VOCAB_BPE" -o "$m" $opts --type f32 --scale 0.05 --seed 7 || die "synth $name"
    if [ -z "${ids:-}" ]; then
        ids=$(node tests/ref/logits.mjs "$m" "$PROMPT" "$TMP/ref32.bin" --generate 32) || die "llama.cpp failed on $name"
    else
        "$HERD" logits -m "$m" --prompt-ids "$ids" -o "$TMP/ref32.bin" --kv-type f32 || die "herd logits $name f32"
    fi
    for pair in $pairs; do
        tk=${pair%:*} tv=${pair#*:}
        node tests/ref/logits.mjs "$m" "$ids" "$TMP/ref.bin" --kv-k "$tk" --kv-v "$tv" --flash 2>/dev/null ||
            die "llama.cpp failed on $name K $tk V $tv"
        "$HERD" logits -m "$m" --prompt-ids "$ids" -o "$TMP/herd.bin" --kv-type-k "$tk" --kv-type-v "$tv" ||
            die "herd logits $name K $tk V $tv"
        tol=${TOL[$tk]}
        [ "$tk" = f16 ] && tol=${TOL[$tv]}
        printf '%-26s K %-4s V %-4s ' "$name" "$tk" "$tv"
        node tests/ref/compare_logits.mjs "$TMP/ref.bin" "$TMP/herd.bin" 128256 "$tol" || fails=$((fails + 1))
        if [ "$tk" != f16 ] || [ "$tv" != f16 ]; then
            d=$(maxdiff "$TMP/ref.bin" "$TMP/herd.bin") q=$(maxdiff "$TMP/ref32.bin" "$TMP/herd.bin")
            echo "                                 the cache type moves herd's logits by $q from an f32 cache's"
            if node -e 'process.exit(Number(process.argv[1]) > 2 * Number(process.argv[2]) ? 0 : 1)' "$q" "$d"; then :; else
                echo "  FAIL: that is not 2x herd's distance to llama.cpp ($d): is the cache quantized at all?"
                fails=$((fails + 1))
            fi
        fi
    done
    rm -f "$m"
done
[ $fails -eq 0 ] || die "$fails comparisons failed"
echo "all quantized-KV comparisons within tolerance"
