#!/bin/bash
# Speculative decoding in the server (herd serve --draft MODEL / --lookup N, per slot inside continuous
# batching): through the HTTP API, every response (greedy, seeded sampling, constrained, streamed, three
# requests at once) identical to the server without a draft, with the same model quantized to q8_0 as
# the draft, an unrelated draft and prompt lookup; see tests/serve/spec_client.mjs.
source tests/lib.sh
need_ref
[ -x "$HERD" ] || die "$HERD is not built"
synth() { "$HERD" synth --vocab "$1" -o "$2" --n-embd 64 --n-head 4 --n-head-kv 2 --n-layer 2 --n-ff 128 \
    --type f32 --ctx 4096 --seed "$3" >/dev/null || die "synth $2"; }
synth "$VOCAB31" "$TMP/t.gguf" 5
synth "$VOCAB31" "$TMP/other.gguf" 6
synth "$VOCAB_SPM" "$TMP/spm.gguf" 5
"$HERD" quantize "$TMP/t.gguf" "$TMP/twin.gguf" Q8_0 >/dev/null 2>&1 || die "quantize"
ln -sfn ../../build/ref/node_modules tests/serve/node_modules
timeout 600 node tests/serve/spec_client.mjs "$TMP/t.gguf" "$TMP/twin.gguf" "$TMP/other.gguf" "$TMP/spm.gguf" ||
    die "speculative decoding in the server"
