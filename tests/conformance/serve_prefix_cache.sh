#!/bin/bash
# The server's prefix cache and slot save/restore (tests/serve/prefix_cache_client.mjs): responses identical
# with the cache off, on and under a tiny budget; repeated 2K-token system prompts reused (usage, /metrics);
# slot save -> restart -> restore -> same continuation; bad filenames / slots -> 4xx.
source tests/lib.sh
need_ref
[ -x "$HERD" ] || die "$HERD is not built"
ln -sfn ../../build/ref/node_modules tests/serve/node_modules
timeout 600 node tests/serve/prefix_cache_client.mjs || die "prefix cache"
