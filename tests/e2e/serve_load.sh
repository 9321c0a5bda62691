#!/bin/bash
# 32 concurrent streaming clients for 60 s against the ASan build of herd serve (tests/e2e/serve_load.mjs).
source tests/lib.sh
need_ref
[ -x build/asan/herd ] || die "build/asan/herd is not built (make asan)"
ln -sfn ../../build/ref/node_modules tests/e2e/node_modules
ASAN_OPTIONS=detect_leaks=1 HERD_SERVE_BIN=$PWD/build/asan/herd timeout 400 node tests/e2e/serve_load.mjs
