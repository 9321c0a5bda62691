#!/bin/bash
# Constrained decoding through herd serve with the OpenAI SDK on a random-weight model:
# tests/serve/constrain_client.mjs (response_format json_object / json_schema, tool_choice required / named).
source tests/lib.sh
need_ref
[ -x "$HERD" ] || die "$HERD is not built"
ln -sfn ../../build/ref/node_modules tests/serve/node_modules
timeout 600 node tests/serve/constrain_client.mjs
