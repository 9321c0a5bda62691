#!/bin/bash
# herd serve --store against the official OpenAI and Llama Stack clients: tests/serve/vector_stores_client.mjs.
source tests/lib.sh
need_ref
[ -x "$HERD" ] || die "$HERD is not built"
ln -sfn ../../build/ref/node_modules tests/serve/node_modules
timeout 600 node tests/serve/vector_stores_client.mjs
