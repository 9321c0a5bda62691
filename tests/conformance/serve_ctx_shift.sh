#!/bin/bash
# The server's context shift while a reply is written (context_policy "shift"): the reply continues past
# the slot's context, exactly as herd run and a fresh request on each shifted prompt continue it; under
# "stop" it ends at the first fill (finish_reason length, stop_reason context). See
# tests/serve/ctx_shift_client.mjs.
source tests/lib.sh
need_ref
[ -x "$HERD" ] || die "$HERD is not built"
ln -sfn ../../build/ref/node_modules tests/serve/node_modules
timeout 300 node tests/serve/ctx_shift_client.mjs || die "context shift mid-reply in the server"
