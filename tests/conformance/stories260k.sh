#!/bin/bash
# End-to-end on real trained weights: stories260K (a tiny Llama 2-style model with a SentencePiece
# tokenizer, from ../shared/fixtures). Greedy decoding from BOS must tell llama2.c's story, token
# for token as llama.cpp does, and the logits of 64 positions must agree with llama.cpp's to 5e-4.
source tests/lib.sh
[ -f "$STORIES" ] || skip "stories260K.gguf is not at $STORIES (../shared/fixtures is not on this machine)"
need_ref
[ -x "$HERD" ] || die "$HERD is not built"

text=$("$HERD" run -m "$STORIES" -p "" -n 32 --temp 0 2>/dev/null)
want="Once upon a time, there was a little girl named Lily. She loved to play outside in the park."
case "$text" in
    *"$want"*) echo "greedy story: $text" ;;
    *) die "greedy output '$text' does not contain '$want'" ;;
esac

# llama.cpp's own greedy continuation of 63 tokens after BOS, and its logits on all 64 positions
ids=$(node tests/ref/logits.mjs "$STORIES" "[1]" "$TMP/ref.bin" --generate 63) || die "llama.cpp failed"
"$HERD" logits -m "$STORIES" --prompt-ids "$ids" -o "$TMP/herd.bin" || die "herd logits failed"
node tests/ref/compare_logits.mjs "$TMP/ref.bin" "$TMP/herd.bin" 512 5e-4 || die "logits differ from llama.cpp"
got=$("$HERD" run -m "$STORIES" --prompt-ids "[1]" -n 63 --temp 0 --json |
      node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.stringify([1,...JSON.parse(s).ids])))')
[ "$got" = "$ids" ] || die "greedy ids differ: llama.cpp $ids herd $got"
echo "63 greedy tokens identical to llama.cpp"
