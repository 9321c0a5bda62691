#!/bin/bash
# Bad input gets one clear error line and exit status 1 — never a crash, a hang or a silent wrong
# answer: corrupt, truncated and inconsistent model files, unsupported types and architectures,
# malformed JSON and out-of-range options. Runs the normal binary and, when built, the ASan/UBSan one.
source tests/lib.sh
need_ref
[ -x "$HERD" ] || die "$HERD is not built"
edit() { python3 tests/tools/gguf_edit.py "$@" || die "gguf_edit $*"; }

# a small valid model (the llama.cpp SentencePiece vocabulary, q4_0 weights)
good=$TMP/good.gguf
"$HERD" synth --vocab "$VOCAB_SPM" -o "$good" --n-embd 64 --n-head 4 --n-head-kv 2 --n-layer 2 --n-ff 128 \
    --type q4_0 --output-type f16 --untied --rope-scale 0 --ctx 256 || die "synth"
"$HERD" run -m "$good" -p "hello" -n 4 --temp 0 >/dev/null 2>&1 || die "the good model does not run"
size=$(stat -c %s "$good")
read -r _ hdr_end _ kv_end < <(edit "$good" - offsets)

edit "$good" "$TMP/trunc-magic.gguf" truncate 3
edit "$good" "$TMP/trunc-kv.gguf" truncate $((kv_end / 2))
edit "$good" "$TMP/trunc-tensors.gguf" truncate $(((kv_end + hdr_end) / 2))
edit "$good" "$TMP/trunc-data.gguf" truncate $((size - 1000))
printf 'GGUG' | cat - <(tail -c +5 "$good") >"$TMP/magic.gguf"
edit "$good" "$TMP/unknown-type.gguf" tensor-type blk.0.attn_q.weight 1234
edit "$good" "$TMP/iq4nl.gguf" tensor-type blk.1.ffn_up.weight 39     # mxfp4: 32-blocks of 17 bytes (fits), no kernels
edit "$good" "$TMP/missing.gguf" tensor-rename blk.1.attn_k.weight blk.1.attn_x.weight
edit "$good" "$TMP/offset.gguf" tensor-offset blk.0.ffn_down.weight 99999999968
edit "$good" "$TMP/misaligned.gguf" tensor-offset blk.0.ffn_down.weight 3
edit "$good" "$TMP/shape.gguf" kv-u32 llama.embedding_length 96
edit "$good" "$TMP/layers.gguf" kv-u32 llama.block_count 1000000000
edit "$good" "$TMP/heads.gguf" kv-u32 llama.attention.head_count_kv 3
edit "$good" "$TMP/vocab.gguf" kv-u32 llama.vocab_size 1000
edit "$good" "$TMP/arch.gguf" kv-str general.architecture gpt2
: >"$TMP/empty.gguf"
head -c 4096 /dev/urandom >"$TMP/random.gguf"

fails=0
# expect_error WANT_SUBSTRING -- herd args...: exit 1 (2 for usage errors), stderr exactly one line
# mentioning WANT
expect_error() {
    local want=$1; shift; shift
    for bin in "$HERD" ${ASAN_HERD:+"$ASAN_HERD"}; do
        local err rc lines
        err=$(timeout 60 "$bin" "$@" 2>&1 >/dev/null); rc=$?
        lines=$(printf '%s\n' "$err" | grep -c .)
        if { [ $rc -ne 1 ] && [ $rc -ne 2 ]; } || [ "$lines" -ne 1 ] || [[ "$err" != *"$want"* ]]; then
            echo "FAIL ($(basename "$bin")) herd $*: exit $rc, $lines stderr lines, want '$want':"
            printf '%s\n' "$err" | head -5 | sed 's/^/    /'
            fails=$((fails + 1))
            return
        fi
    done
    echo "ok   herd $*  ->  $err"
}
ASAN_HERD=""
[ -x build/asan/herd ] && ASAN_HERD=$PWD/build/asan/herd
export ASAN_OPTIONS=detect_leaks=1

for cmd in info run; do
    args=(); [ $cmd = run ] && args=(-p hi -n 2)
    m() { if [ $cmd = info ]; then echo "$1"; else echo "-m $1"; fi; }
    # shellcheck disable=SC2046
    {
    expect_error "truncated" -- $cmd $(m "$TMP/trunc-data.gguf") "${args[@]}"
    expect_error "past the end" -- $cmd $(m "$TMP/trunc-kv.gguf") "${args[@]}"
    expect_error "past the end" -- $cmd $(m "$TMP/trunc-tensors.gguf") "${args[@]}"
    expect_error "not a GGUF file" -- $cmd $(m "$TMP/trunc-magic.gguf") "${args[@]}"
    expect_error "not a GGUF file" -- $cmd $(m "$TMP/magic.gguf") "${args[@]}"
    expect_error "not a GGUF file" -- $cmd $(m "$TMP/empty.gguf") "${args[@]}"
    expect_error "not a GGUF file" -- $cmd $(m "$TMP/random.gguf") "${args[@]}"
    expect_error "'blk.0.attn_q.weight' has unknown tensor type 1234" -- $cmd $(m "$TMP/unknown-type.gguf") "${args[@]}"
    expect_error "'blk.1.ffn_up.weight' has type mxfp4, which herd does not support" -- $cmd $(m "$TMP/iq4nl.gguf") "${args[@]}"
    expect_error "tensor 'blk.1.attn_k.weight' is missing" -- $cmd $(m "$TMP/missing.gguf") "${args[@]}"
    expect_error "beyond the end of the file" -- $cmd $(m "$TMP/offset.gguf") "${args[@]}"
    expect_error "not aligned" -- $cmd $(m "$TMP/misaligned.gguf") "${args[@]}"
    expect_error "has shape" -- $cmd $(m "$TMP/shape.gguf") "${args[@]}"
    expect_error "implausible" -- $cmd $(m "$TMP/layers.gguf") "${args[@]}"
    expect_error "not a multiple of n_head_kv" -- $cmd $(m "$TMP/heads.gguf") "${args[@]}"
    expect_error "differs from the" -- $cmd $(m "$TMP/vocab.gguf") "${args[@]}"
    expect_error "architecture 'gpt2' is not supported" -- $cmd $(m "$TMP/arch.gguf") "${args[@]}"
    expect_error "cannot open" -- $cmd $(m "$TMP/nonexistent.gguf") "${args[@]}"
    expect_error "is a directory" -- $cmd $(m "$TMP") "${args[@]}"
    }
done
expect_error "not valid JSON" -- run -m "$good" --prompt-ids "[1, 2"
expect_error "not a non-negative integer" -- run -m "$good" --prompt-ids '[1, "x"]'
expect_error "JSON array" -- run -m "$good" --prompt-ids '{"a": 1}'
expect_error "outside the vocabulary" -- run -m "$good" --prompt-ids "[1, 999999]"
expect_error "exceeds the model's 256 positions" -- run -m "$good" -p hi -c 100000
expect_error "exceed the context of 8" -- run -m "$good" --prompt-ids "[1,2,3,4,5,6,7,8,9]" -c 8
expect_error "wants a number" -- run -m "$good" -p hi --temp abc
expect_error "wants a number" -- run -m "$good" -p hi --top-p 2
expect_error "wants an integer" -- run -m "$good" -p hi -n 1.5
expect_error "unknown option" -- run -m "$good" -p hi --bogus
expect_error "no prompt given" -- run -m "$good"
expect_error "--kv-type must be" -- run -m "$good" -p hi --kv-type q5_0
expect_error "out of range" -- detokenize -m "$good" --ids "[5, 40000]"
expect_error "not valid JSON" -- detokenize -m "$good" --ids "nope"
expect_error "is empty" -- logits -m "$good" --prompt-ids "[]" -o "$TMP/x.bin"
expect_error "no Llama 3 chat tokens" -- chat -m "$good" -p hi
expect_error "it needs -n > 0" -- bench -m "$good" -n 0 --roofline
expect_error "wants an integer in [1, 1000]" -- bench -m "$good" -r 0
expect_error "unknown option" -- bench -m "$good" --bogus
expect_error "unknown command" -- frobnicate
[ $fails -eq 0 ] || die "$fails bad inputs were not handled cleanly"
echo "every bad input gave one clear error line and a non-zero exit status"
