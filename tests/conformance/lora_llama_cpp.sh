#!/bin/bash
# LoRA adapters against llama.cpp (node-llama-cpp), and herd's own formats and paths against each other.
#
# On an F32 random-weight model with the real vocabulary and GQA (herd synth), tests/tools/make_lora.c
# writes adapters with seeded random A and B (B nonzero): one on all seven matrices (rank 8, alpha 16) and
# one on q, v and down (rank 4, alpha 0: scale = the user's). Then:
#   llama.cpp --lora  ~=  herd --lora        (5e-4, forward_llama_cpp.sh's F32 tolerance; 32 positions) at
#                                            scale 1, at 0.5, and both adapters at once (1 and -0.7)
#   herd export (f32, merged)  ~=  herd --lora   (1e-4: W + s B A vs W x + s B (A x), f32 rounding only)
#   the same adapter as a PEFT folder (HF row order)  ==  the GGUF adapter, bit for bit
#   a HF-directory base (Q/K in HF order) with the GGUF adapter and with the PEFT one == its converted GGUF
#   with the adapter, bit for bit (when the npm tokenizer package is there)
#   herd serve --lora lists the adapter in /v1/models and its greedy completion equals herd run --lora.
source tests/lib.sh
need_ref
[ -x "$HERD" ] || die "$HERD is not built"
ROOT=$PWD
cc -std=c11 -O2 -D_GNU_SOURCE -Iinclude -Isrc tests/tools/make_lora.c build/libherd.a \
    -lmicrohttpd -lcurl -ljansson -lm -lpthread -o "$TMP/make_lora" || die "cannot build tests/tools/make_lora.c"
MK=$TMP/make_lora
PROMPT='[128000, 9906, 11, 1917, 0, 2028, 374, 264, 1296, 315, 279, 11914, 13, 578, 4062, 14198, 39935, 35308, 927, 279, 16053, 5679, 13, 220, 16, 17, 18, 19, 20, 21, 22, 23]'
NV=128256
fails=0
cmp_logits() { # NAME REF HERD TOL
    printf '%-44s ' "$1"
    node tests/ref/compare_logits.mjs "$2" "$3" $NV "$4" || fails=$((fails + 1))
}
same_bits() { # NAME A B
    if cmp -s "$2" "$3"; then printf '%-44s bit-identical\n' "$1"
    else printf '%-44s FAIL: differ\n' "$1"; fails=$((fails + 1)); fi
}
hl() { "$HERD" logits --prompt-ids "$PROMPT" --kv-type f32 "$@" || die "herd logits $*"; }

m=$TMP/m.gguf
"$HERD" synth --vocab "$VOCAB_BPE" -o "$m" --n-embd 256 --n-head 8 --n-head-kv 2 --head-dim 32 --n-ff 512 \
    --n-layer 2 --untied --rope-scale 8 --type f32 --scale 0.05 --seed 7 || die "synth"
"$MK" "$m" "$TMP/a.gguf" --rank 8 --alpha 16 --seed 11 || die "make_lora a"
"$MK" "$m" "$TMP/b.gguf" --rank 4 --alpha 0 --seed 12 --targets qvD || die "make_lora b"
"$MK" "$m" "$TMP/a-peft" --peft --rank 8 --alpha 16 --seed 11 || die "make_lora a --peft"

hl -m "$m" -o "$TMP/base.bin"
for spec in "a.gguf" "a.gguf:0.5" "a.gguf b.gguf:-0.7"; do
    ref_args=() herd_args=()
    for s in $spec; do ref_args+=(--lora "$TMP/$s"); herd_args+=(--lora "$TMP/$s"); done
    node tests/ref/logits.mjs "$m" "$PROMPT" "$TMP/ref.bin" "${ref_args[@]}" || die "llama.cpp with $spec"
    hl -m "$m" -o "$TMP/herd.bin" "${herd_args[@]}"
    cmp_logits "llama.cpp vs herd --lora $spec" "$TMP/ref.bin" "$TMP/herd.bin" 5e-4
done
# the adapters must matter: herd with an adapter is far from the base
printf '%-44s ' "base vs --lora a.gguf b.gguf (must differ)"
if node tests/ref/compare_logits.mjs "$TMP/base.bin" "$TMP/herd.bin" $NV 0.05 >/dev/null; then
    echo "FAIL: the adapters hardly change the logits"; fails=$((fails + 1))
else echo "differ, as they should"; fi

# export: the merged model gives the adapters' logits
"$HERD" export -m "$m" --lora "$TMP/a.gguf" --lora "$TMP/b.gguf:-0.7" --out "$TMP/merged.gguf" --type f32 || die "export"
hl -m "$TMP/merged.gguf" -o "$TMP/merged.bin"
cmp_logits "herd export (f32) vs herd --lora a b:-0.7" "$TMP/herd.bin" "$TMP/merged.bin" 1e-4
node tests/ref/logits.mjs "$TMP/merged.gguf" "$PROMPT" "$TMP/ref.bin" || die "llama.cpp on the merged model"
cmp_logits "llama.cpp on herd export vs herd --lora" "$TMP/ref.bin" "$TMP/herd.bin" 5e-4

# PEFT folder = GGUF adapter
hl -m "$m" -o "$TMP/a.bin" --lora "$TMP/a.gguf:0.5"
hl -m "$m" -o "$TMP/p.bin" --lora "$TMP/a-peft:0.5"
same_bits "PEFT folder vs GGUF adapter (scale 0.5)" "$TMP/a.bin" "$TMP/p.bin"

# a HF-directory base: Q/K rows in HF order, the adapters' rows moved to match
tokdir=$(tests/ref/hf_tokenizer.sh)
if [ $? -eq 0 ]; then
    dir=$TMP/hf
    node tests/tools/make_hf_dir.mjs "$dir" --tokenizer-json "$tokdir/tokenizer.json" --tokenizer-config \
        "$tokdir/tokenizer_config.json" --dtype F32 --n-embd 128 --n-head 4 --n-head-kv 2 --head-dim 32 --n-ff 256 \
        --n-layer 2 --rope-scale 8 --seed 5 || die "make_hf_dir"
    "$HERD" convert "$dir" "$TMP/hf.gguf" || die "convert"
    "$MK" "$TMP/hf.gguf" "$TMP/h.gguf" --rank 4 --alpha 8 --seed 13 || die "make_lora h"
    "$MK" "$TMP/hf.gguf" "$TMP/h-peft" --peft --rank 4 --alpha 8 --seed 13 || die "make_lora h --peft"
    # adapters made on the HF-order base (b rows in HF order in memory): written as PEFT (as is) and as GGUF
    # (Q/K rows moved to GGUF order), each the same adapter on either base
    "$MK" "$dir" "$TMP/hd-peft" --peft --rank 4 --alpha 8 --seed 14 || die "make_lora on the dir"
    "$MK" "$dir" "$TMP/hd.gguf" --rank 4 --alpha 8 --seed 14 || die "make_lora on the dir"
    hl -m "$TMP/hf.gguf" -o "$TMP/g.bin" --lora "$TMP/h.gguf"
    hl -m "$dir" -o "$TMP/d.bin" --lora "$TMP/h.gguf"
    same_bits "HF dir + GGUF adapter vs GGUF + it" "$TMP/g.bin" "$TMP/d.bin"
    hl -m "$dir" -o "$TMP/d.bin" --lora "$TMP/h-peft"
    same_bits "HF dir + PEFT adapter vs GGUF + GGUF adapter" "$TMP/g.bin" "$TMP/d.bin"
    hl -m "$dir" -o "$TMP/g2.bin" --lora "$TMP/hd-peft"
    hl -m "$TMP/hf.gguf" -o "$TMP/d.bin" --lora "$TMP/hd-peft"
    same_bits "HF dir's own PEFT adapter, on dir vs GGUF" "$TMP/g2.bin" "$TMP/d.bin"
    hl -m "$TMP/hf.gguf" -o "$TMP/d.bin" --lora "$TMP/hd.gguf"
    same_bits "HF dir's own GGUF adapter, on dir vs GGUF" "$TMP/g2.bin" "$TMP/d.bin"
    "$HERD" export -m "$dir" --lora "$TMP/h.gguf" --out "$TMP/hm.gguf" || die "export from a HF dir"
    hl -m "$TMP/hm.gguf" -o "$TMP/d.bin"
    cmp_logits "herd export of a HF dir vs GGUF + adapter" "$TMP/g.bin" "$TMP/d.bin" 1e-4
    node tests/ref/logits.mjs "$TMP/hf.gguf" "$PROMPT" "$TMP/ref.bin" --lora "$TMP/h.gguf" || die "llama.cpp h"
    cmp_logits "llama.cpp vs herd, GGUF of a HF dir + adapter" "$TMP/ref.bin" "$TMP/g.bin" 5e-4
else
    echo "HF-directory checks skipped: the npm tokenizer package could not be fetched"
fi

# the server: the adapter is a model of its own, the base stays the base
"$HERD" serve -m "$m" --port 0 --parallel 2 -c 512 --lora "$TMP/a.gguf" --lora "style=$TMP/b.gguf:-0.7" \
    >"$TMP/port" 2>"$TMP/serve.log" &
pid=$!
for _ in $(seq 100); do [ -s "$TMP/port" ] && break; sleep 0.1; done
port=$(head -n 1 "$TMP/port")
[ -n "$port" ] || { cat "$TMP/serve.log"; die "herd serve did not start"; }
get() { curl -s "http://127.0.0.1:$port$1"; }
post() { curl -s "http://127.0.0.1:$port$1" -H 'Content-Type: application/json' -d "$2"; }
models=$(get /v1/models | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).data.map(m=>m.id).join(",")))')
if [ "$models" = "m,a,style" ]; then echo "/v1/models lists the base and the adapters: $models"
else echo "FAIL /v1/models: '$models', expected m,a,style"; fails=$((fails + 1)); fi
text_of() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);console.log(j.choices?JSON.stringify([j.model,j.choices[0].text]):JSON.stringify(j))})'; }
for spec in "a|--lora $TMP/a.gguf" "style|--lora $TMP/b.gguf:-0.7" "m|"; do
    IFS='|' read -r model args <<<"$spec"
    got=$(post /v1/completions "{\"model\": \"$model\", \"prompt\": \"Hello, world\", \"max_tokens\": 16, \"temperature\": 0}" | text_of)
    # shellcheck disable=SC2086
    want=$("$HERD" run -m "$m" -p "Hello, world" -n 16 --temp 0 --json $args | node -e \
        'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.stringify([process.argv[1],JSON.parse(s).text])))' "$model")
    if [ "$got" = "$want" ]; then echo "serve model '$model' = herd run ${args:-(no adapter)}: $got"
    else echo "FAIL serve model '$model': $got, herd run: $want"; fails=$((fails + 1)); fi
done
err=$(post /v1/completions '{"model": "nope", "prompt": "hi"}')
if [[ "$err" == *model_not_found* && "$err" == *"'style'"* ]]; then echo "unknown model refused: $err"
else echo "FAIL unknown model: $err"; fails=$((fails + 1)); fi
kill "$pid"; wait "$pid" 2>/dev/null

# bad adapters fail with one line naming the problem
out=$("$HERD" run -m "$m" -p hi -n 1 --lora "$TMP/merged.gguf" 2>&1)
if [[ $? -ne 0 && "$out" == "herd run: error: lora: "*"not a LoRA adapter"* ]]; then echo "a model given as --lora refused: $out"
else echo "FAIL: $out"; fails=$((fails + 1)); fi
cd "$ROOT" || exit 1
[ $fails -eq 0 ] || die "$fails LoRA checks failed"
echo "all LoRA checks passed"
