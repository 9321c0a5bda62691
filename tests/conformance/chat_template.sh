#!/bin/bash
# The Llama 3.1 chat format (`herd format`, used by `herd chat` and the server) against the official
# template rendered by @huggingface/jinja: tests/ref/chat_template.mjs over tests/data/chat_cases.json
# (plain chats, system prompt variants, built-in tools, custom functions in the user or the system
# message, tool calls and results, multi-turn, unicode and JSON-number edge cases).
source tests/lib.sh
need_ref
[ -x "$HERD" ] || die "$HERD is not built"
node tests/ref/chat_template.mjs "$HERD" "$VOCAB31" "$REF/llama.cpp/templates/meta-llama-Llama-3.1-8B-Instruct.jinja" \
    tests/data/chat_cases.json "$TMP" 2> >(grep -v '^\[node-llama-cpp\]' >&2)
