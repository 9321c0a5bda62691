#!/bin/bash
# herd serve --exec-builtin-tools with the OpenAI SDK on a scripted model: tests/serve/exec_tools_client.mjs
# (brave_search against a loopback fake, python in the real sandbox, the exact ipython turns).
source tests/lib.sh
need_ref
[ -x "$HERD" ] || die "$HERD is not built"
command -v python3 >/dev/null || die "python3 is needed (scripts/setup.sh installs it)"
ln -sfn ../../build/ref/node_modules tests/serve/node_modules
timeout 600 node tests/serve/exec_tools_client.mjs
