#!/bin/bash
# herd serve --store --data-dir: OpenAI vector store files and file batches, and the file_search tool in chat
# completions, against the official OpenAI client: tests/serve/vector_store_files_client.mjs.
source tests/lib.sh
need_ref
[ -x "$HERD" ] || die "$HERD is not built"
ln -sfn ../../build/ref/node_modules tests/serve/node_modules
timeout 600 node tests/serve/vector_store_files_client.mjs
