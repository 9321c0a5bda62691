#!/bin/bash
# herd serve against the official Llama Stack TypeScript client: tests/serve/llama_stack_client.mjs.
source tests/lib.sh
need_ref
[ -x "$HERD" ] || die "$HERD is not built"
ln -sfn ../../build/ref/node_modules tests/serve/node_modules
timeout 600 node tests/serve/llama_stack_client.mjs
