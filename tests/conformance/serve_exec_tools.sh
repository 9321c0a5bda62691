#!/bin/bash
# herd serve --exec-builtin-tools with the OpenAI SDK on a scripted model: tests/serve/exec_tools_client.mjs
# (brave_search against a loopback fake, python in the real sandbox, the exact ipython turns).
source tests/lib.sh
need_ref
[ -x "$HERD" ] || die "$HERD is not built"
command -v python3 >/dev/null || die "python3 is needed (scripts/setup.sh installs it)"
ln -sfn ../../build/ref/node_modules tests/serve/node_modules
timeout 600 node tests/serve/exec_tools_client.mjs || die "exec_tools_client failed"

# bad options: one error line, non-zero status, before the model loads
m=build/test-models/serve-tiny31-q8_0.gguf
bad() { # WANT ARGS...
    local want=$1; shift
    if timeout 30 "$HERD" serve -m "$m" --port 0 "$@" >/dev/null 2>"$TMP/err"; then die "accepted: $*"; fi
    [ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -qF -- "$want" "$TMP/err" || die "$*: $(cat "$TMP/err")"
    echo "ok   $(cat "$TMP/err")"
}
bad "unknown tool 'python'" --exec-builtin-tools code_interpreter,python
bad "unknown tool ''" --exec-builtin-tools ,
bad "--max-tool-steps" --max-tool-steps 0
bad "--tool-timeout" --tool-timeout -1
