#!/bin/bash
# K-quants and `herd quantize` against llama.cpp (node-llama-cpp 3.22.1).
#
# (a) herd synth writes random-weight F32 models with the real Llama 3 vocabulary (two small shapes, n_embd a
#     multiple of 256: untied with rope_freqs, tied without);
# (b) herd quantize turns them into Q4_K_M, Q5_K_M, Q6_K, Q4_K, Q5_K (and Q8_0, Q4_0), and the tensor types
#     must follow the documented mix (docs/FORMATS.md);
# (c) llama.cpp loads every file and its logits of 64 positions (32 prompt tokens + the 32 llama.cpp
#     generated greedily on the F32 model) agree with herd's (`herd logits --kv-type f32`, F32 KV cache on
#     both sides) within TOL;
# (d) K-quant files whose blocks are *random valid bytes* (herd synth --random-blocks: random quants,
#     random 6/8-bit sub-block scales and mins, f16 super-block scales set for a sane RMS — no quantizer
#     involved) of every K type, Q2_K and Q3_K included, give the same logits in llama.cpp and herd: the
#     block layouts are read identically, independently of herd's quantizer;
# (e) bad input gives one error line.
#
# Tolerance (max |Δlogit| over 64 positions x 128256 logits; logits span about ±5). Both engines quantize
# every matmul's input to q8_K (256-element blocks, d = max|x| / 127) before the dot. Where their f32
# inputs agree bit for bit the logits agree to ~1e-6 (the "rows within 1e-5" count shows it: the first
# positions usually do). f32 sums in a different order differ in the last bits, and now and then such an
# activation sits at a rounding boundary of q8_K and lands one step apart: one element moves by
# max|x|/127 of its 256-block — a coarser step than q8_0's (32-blocks), so a flip moves logits more.
# The step then propagates to every later position through the KV cache. Measured on these models:
# flips move logits by up to ~0.1 (see the printed figures; many types show none at all). A wrong block
# layout, scale packing, min sign or bit plane moves logits by O(1) (a one-sub-block scale swap gives
# max|Δ| > 1; checked while writing this test), so TOL = 0.2 separates the two by a factor of 5+.
source tests/lib.sh
need_ref
[ -x "$HERD" ] || die "$HERD is not built"
TOL=0.2
PROMPT='[128000, 9906, 11, 1917, 0, 2028, 374, 264, 1296, 315, 279, 11914, 13, 578, 4062, 14198, 39935, 35308, 927, 279, 16053, 5679, 13, 220, 16, 17, 18, 19, 20, 21, 22, 23]'
fails=0

compare() { # NAME MODEL IDS: llama.cpp vs herd logits
    node tests/ref/logits.mjs "$2" "$3" "$TMP/ref.bin" || { echo "FAIL llama.cpp could not run $1"; fails=$((fails + 1)); return; }
    "$HERD" logits -m "$2" --prompt-ids "$3" -o "$TMP/herd.bin" --kv-type f32 ||
        { echo "FAIL herd could not run $1"; fails=$((fails + 1)); return; }
    printf '%-34s ' "$1"
    node tests/ref/compare_logits.mjs "$TMP/ref.bin" "$TMP/herd.bin" 128256 "$TOL" || fails=$((fails + 1))
}

type_of() { # MODEL TENSOR -> the tensor's type as herd info --tensors prints it
    "$HERD" info "$1" --tensors | awk -v t="$2" '$1 == t { print $2; exit }'
}

expect_type() { # MODEL TENSOR TYPE
    local got
    got=$(type_of "$1" "$2")
    if [ "$got" != "$3" ]; then echo "FAIL $(basename "$1"): $2 is '$got', the mix says $3"; fails=$((fails + 1)); fi
}

# name|synth options
SHAPES=(
  "untied-rope8|--n-embd 512 --n-head 4 --n-head-kv 1 --head-dim 128 --n-ff 1024 --n-layer 2 --untied --rope-scale 8"
  "tied-norope|--n-embd 256 --n-head 4 --n-head-kv 2 --head-dim 64 --n-ff 768 --n-layer 4 --tied --rope-scale 0"
)

echo "== (a-c) herd quantize, llama.cpp loads the files, logits agree"
for cfg in "${SHAPES[@]}"; do
    IFS='|' read -r name opts <<<"$cfg"
    f32=$TMP/$name-f32.gguf
    # shellcheck disable=SC2086
    "$HERD" synth --vocab "$VOCAB_BPE" -o "$f32" $opts --type f32 --scale 0.05 --seed 11 || die "synth $name"
    ids=$(node tests/ref/logits.mjs "$f32" "$PROMPT" "$TMP/ref.bin" --generate 32) || die "llama.cpp failed on $name f32"
    # every target once over the two shapes (each llama.cpp load of a 128K-vocabulary model costs ~15 s)
    types="Q4_K_M Q6_K Q4_K Q8_0 Q4_0"
    [ "$name" = tied-norope ] && types="Q4_K_M Q5_K_M Q5_K"
    for qt in $types; do
        q=$TMP/$name-$qt.gguf
        "$HERD" quantize "$f32" "$q" "$qt" -t 2 -q >"$TMP/quantize.log" 2>"$TMP/progress.log" ||
            { cat "$TMP/progress.log"; die "herd quantize $name $qt"; }
        grep -A3 '^per type' "$TMP/quantize.log" | sed -n '2,4p' | sed "s/^/    $name $qt: /"
        compare "$name $qt" "$q" "$ids"
    done
    # the mix (docs/FORMATS.md): output / tied token_embd Q6_K; _M: attn_v and ffn_down Q6_K in the layers
    # use_more_bits picks (2 layers: layer 1; 4 layers: layers 2 and 3), the base type elsewhere
    out=output.weight; [ "$name" = tied-norope ] && out=token_embd.weight
    expect_type "$TMP/$name-Q4_K_M.gguf" "$out" q6_k
    expect_type "$TMP/$name-Q4_K_M.gguf" blk.0.attn_v.weight q4_k
    expect_type "$TMP/$name-Q4_K_M.gguf" blk.0.attn_q.weight q4_k
    if [ "$name" = tied-norope ]; then
        expect_type "$TMP/$name-Q5_K.gguf" "$out" q6_k
        expect_type "$TMP/$name-Q5_K.gguf" blk.0.attn_q.weight q5_k
        expect_type "$TMP/$name-Q5_K_M.gguf" blk.0.ffn_down.weight q5_k
        expect_type "$TMP/$name-Q5_K_M.gguf" blk.2.ffn_down.weight q6_k
        expect_type "$TMP/$name-Q5_K_M.gguf" blk.0.attn_v.weight q5_k
        expect_type "$TMP/$name-Q5_K_M.gguf" blk.3.attn_v.weight q6_k
        expect_type "$TMP/$name-Q4_K_M.gguf" blk.1.ffn_down.weight q4_k
        expect_type "$TMP/$name-Q4_K_M.gguf" blk.2.ffn_down.weight q6_k
        expect_type "$TMP/$name-Q4_K_M.gguf" blk.3.attn_v.weight q6_k
    else
        expect_type "$TMP/$name-Q4_K.gguf" "$out" q6_k
        expect_type "$TMP/$name-Q4_K_M.gguf" blk.1.attn_v.weight q6_k
        expect_type "$TMP/$name-Q4_K_M.gguf" blk.1.ffn_down.weight q6_k
        expect_type "$TMP/$name-Q4_K_M.gguf" blk.0.ffn_down.weight q4_k
        expect_type "$TMP/$name-Q8_0.gguf" output.weight q8_0
        expect_type "$TMP/$name-Q4_0.gguf" output.weight q6_k
        expect_type "$TMP/$name-Q4_0.gguf" blk.0.ffn_up.weight q4_0
    fi
    expect_type "$TMP/$name-Q4_K_M.gguf" blk.0.attn_norm.weight f32
done

echo "== (d) random valid K-quant blocks: llama.cpp and herd read the layouts alike"
IFS='|' read -r name opts <<<"${SHAPES[0]}"
for kt in q2_k q3_k q4_k q5_k q6_k; do
    m=$TMP/random-$kt.gguf
    # shellcheck disable=SC2086
    "$HERD" synth --vocab "$VOCAB_BPE" -o "$m" $opts --type "$kt" --random-blocks --scale 0.05 --seed 5 ||
        die "synth --random-blocks $kt"
    compare "random blocks $kt" "$m" "$ids"
done
# one file mixing types, as a real Q4_K_M file does (output q6_k over q4_k layers)
m=$TMP/random-mixed.gguf
# shellcheck disable=SC2086
"$HERD" synth --vocab "$VOCAB_BPE" -o "$m" $opts --type q4_k --output-type q6_k --random-blocks --scale 0.05 --seed 6 ||
    die "synth --random-blocks mixed"
compare "random blocks q4_k + q6_k output" "$m" "$ids"

echo "== herd quantize FP8 = herd convert --type fp8 (Meta's rowwise scheme, from BF16)"
IFS='|' read -r name opts <<<"${SHAPES[1]}"
# shellcheck disable=SC2086
"$HERD" synth --vocab "$VOCAB_BPE" -o "$TMP/bf16.gguf" $opts --type bf16 --scale 0.05 --seed 3 || die "synth bf16"
"$HERD" quantize "$TMP/bf16.gguf" "$TMP/q-fp8.gguf" FP8 >/dev/null || die "herd quantize FP8"
"$HERD" convert "$TMP/bf16.gguf" "$TMP/c-fp8.gguf" --type fp8 >/dev/null 2>&1 || die "herd convert --type fp8"
if cmp -s "$TMP/q-fp8.gguf" "$TMP/c-fp8.gguf" && [ "$(type_of "$TMP/q-fp8.gguf" blk.1.ffn_up.weight)" = fp8_e4m3 ] &&
    [ "$(type_of "$TMP/q-fp8.gguf" blk.0.ffn_up.weight)" = bf16 ]; then
    echo "ok: FP8 file identical to convert's; blk.1 FFN fp8_e4m3, blk.0 kept bf16"
else
    echo "FAIL herd quantize FP8 differs from herd convert --type fp8 or has the wrong types"; fails=$((fails + 1))
fi
"$HERD" run -m "$TMP/q-fp8.gguf" -p "Hello" -n 4 --temp 0 >/dev/null 2>&1 || { echo "FAIL herd cannot run its FP8 file"; fails=$((fails + 1)); }

echo "== (e) bad input: one error line"
f32=$TMP/untied-rope8-f32.gguf
bad() { # WANT_SUBSTRING CMD...
    local want=$1; shift
    if "$@" >/dev/null 2>"$TMP/err.txt"; then echo "FAIL accepted: $*"; fails=$((fails + 1)); return; fi
    local n; n=$(wc -l <"$TMP/err.txt")
    if [ "$n" -ne 1 ] || ! grep -q -- "$want" "$TMP/err.txt"; then
        echo "FAIL $*: expected one line with '$want', got:"; cat "$TMP/err.txt"; fails=$((fails + 1))
    else echo "ok: $(cat "$TMP/err.txt")"; fi
}
bad "unknown type 'Q3_K_XL'" "$HERD" quantize "$f32" "$TMP/x.gguf" Q3_K_XL
bad "cannot create" "$HERD" quantize "$f32" "$TMP/no/such/dir/x.gguf" Q4_K
bad "is the input file" "$HERD" quantize "$f32" "$f32" Q4_K
head -c 100000 "$f32" >"$TMP/trunc.gguf"
bad "trunc.gguf" "$HERD" quantize "$TMP/trunc.gguf" "$TMP/x.gguf" Q4_K
bad "no/such.gguf" "$HERD" quantize "$TMP/no/such.gguf" "$TMP/x.gguf" Q4_K
bad "usage" "$HERD" quantize "$f32" "$TMP/x.gguf"
bad "unknown option" "$HERD" quantize "$f32" "$TMP/x.gguf" Q4_K --fast
[ -e "$TMP/x.gguf" ] && { echo "FAIL a failed quantize left $TMP/x.gguf behind"; fails=$((fails + 1)); }

[ $fails -eq 0 ] || die "$fails checks failed"
echo "all K-quant comparisons within tolerance"
