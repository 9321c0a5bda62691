#!/bin/bash
# The chat page in Debian's headless Chromium (tests/e2e/chat_page.mjs); screenshot in build/test-logs/.
source tests/lib.sh
need_ref
command -v chromium >/dev/null || { [ "${CI:-}" = "true" ] && die "chromium is not installed"; skip "chromium is not installed (make test-e2e installs it)"; }
ln -sfn ../../build/ref/node_modules tests/e2e/node_modules
mkdir -p build/test-logs
timeout 180 node tests/e2e/chat_page.mjs
