#!/bin/bash
# herd serve against the official OpenAI client (npm openai): see tests/serve/openai_client.mjs.
source tests/lib.sh
need_ref
[ -x "$HERD" ] || die "$HERD is not built"
ln -sfn ../../build/ref/node_modules tests/serve/node_modules
timeout 600 node tests/serve/openai_client.mjs
