#!/bin/bash
# herd serve --guard-model against the official Llama Stack and OpenAI clients: tests/serve/shields_client.mjs
# (shields, run-shield, moderations equal to `herd guard`, bad requests, /metrics).
source tests/lib.sh
need_ref
[ -x "$HERD" ] || die "$HERD is not built"
ln -sfn ../../build/ref/node_modules tests/serve/node_modules
timeout 600 node tests/serve/shields_client.mjs
