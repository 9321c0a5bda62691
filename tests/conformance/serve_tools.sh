#!/bin/bash
# Tool calling through herd serve with the OpenAI SDK on a scripted model: tests/serve/tools_client.mjs.
source tests/lib.sh
need_ref
[ -x "$HERD" ] || die "$HERD is not built"
ln -sfn ../../build/ref/node_modules tests/serve/node_modules
timeout 600 node tests/serve/tools_client.mjs
