#!/bin/bash
# herd serve --data-dir: /v1/files and /v1/batches against the official OpenAI client (npm openai):
# see tests/serve/batches_client.mjs.
source tests/lib.sh
need_ref
[ -x "$HERD" ] || die "$HERD is not built"
ln -sfn ../../build/ref/node_modules tests/serve/node_modules
timeout 600 node tests/serve/batches_client.mjs
