#!/bin/bash
# Tokenizer ids against llama.cpp (node-llama-cpp 3.22.1 = llama.cpp v0.5.0) for both reference
# vocabularies (llama-bpe = Llama 3, llama-spm = Llama 2): ~1,500 corpus texts (hand-written samples
# in tests/data/tokenizer plus seeded generated ones), with and without special-token parsing, and a
# sweep of every code point U+0000..U+10FFFF except surrogates in four contexts. Every id must be
# identical; detokenize(tokenize(x)) == x is checked by the herd side (test_tokenizer --jsonl).
# Also per token of both vocabularies: the EOG set, the control attribute and the piece text.
# herd is driven through build/tests/test_tokenizer --jsonl and, when present, the CLI
# (`herd tokenize --jsonl --no-bos`), so both the library and the CLI wiring are compared.
source tests/lib.sh
need_ref
DRIVER=build/tests/test_tokenizer
[ -x "$DRIVER" ] || die "$DRIVER is missing (run make)"
cmds=("$DRIVER --jsonl {model} {special}")
if [ -x "$HERD" ] && "$HERD" tokenize --help >/dev/null 2>&1; then
    cmds+=("$HERD tokenize -m {model} --jsonl --no-bos {special}")
else
    echo "note: $HERD not built; comparing the library through $DRIVER only"
fi
node tests/ref/tokenize.mjs "$TMP" --vocab-cmd "$DRIVER --vocab {model}" "${cmds[@]}" 2>&1 | grep -v '^\[node-llama-cpp\]'
exit "${PIPESTATUS[0]}"
