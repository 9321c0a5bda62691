#!/bin/bash
# Malformed requests and hostile clients (tests/serve/robustness.mjs), on the normal build and on
# the ASan/UBSan build (leaks and memory errors make the server's exit status non-zero).
source tests/lib.sh
need_ref
[ -x "$HERD" ] || die "$HERD is not built"
ln -sfn ../../build/ref/node_modules tests/serve/node_modules
timeout 600 node tests/serve/robustness.mjs || die "robustness (normal build)"
if [ -x build/asan/herd ]; then
    ASAN_OPTIONS=detect_leaks=1 HERD_SERVE_BIN=$PWD/build/asan/herd timeout 900 node tests/serve/robustness.mjs ||
        die "robustness (ASan build)"
fi
