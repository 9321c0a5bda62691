#!/bin/bash
# Results do not depend on the thread count or on the scheduler (src/thread/pool.h: chunks claimed
# dynamically, each output computed by one thread in one order): the logits of a prompt and the greedy
# ids of a continuation are bit-identical with 1, 2, 3 and 4 threads, and again with 2 and 4 threads
# next to a busy-loop process that takes cores away from them at random moments (every thread kept in
# use by HERD_DYNAMIC_THREADS=0, 4 threads as the pool chooses, src/thread/pool.h, and 4 threads with every
# decode step through the relay, HERD_RELAY=1, src/model/relay.h). Models: q8_0 (the
# packed kernels), q4_k (packed K-quant) and f16 (per-row dots in decode, the gemm in the prompt), wide
# enough that every matmul is cut into many chunks. Also: the default thread count honours the
# affinity mask (`taskset -c 0 herd info` says 1), and an idle server uses no CPU (its pool sleeps).
source tests/lib.sh
need_ref
[ -x "$HERD" ] || die "$HERD is not built"
PROMPT='[128000, 9906, 11, 1917, 0, 2028, 374, 264, 1296, 315, 279, 11914, 13, 578, 4062, 14198, 39935, 35308, 927, 279, 16053, 5679, 13, 220, 16, 17, 18, 19, 20, 21, 22, 23, 9906, 11, 1917, 0, 2028, 374, 264, 1296]'
busy=""
trap '[ -n "$busy" ] && kill "$busy" 2>/dev/null; rm -rf "$TMP"' EXIT

run_all() { # tag threads: logits and greedy ids into $TMP
    local tag=$1 t=$2 m=$3
    "$HERD" logits -m "$m" --prompt-ids "$PROMPT" -t "$t" -o "$TMP/$tag.bin" || die "logits $tag"
    "$HERD" run -m "$m" --prompt-ids "$PROMPT" -n 24 --temp 0 --json -t "$t" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["ids"])' >"$TMP/$tag.ids" || die "run $tag"
}

for type in q8_0 q4_k f16; do
    m=$TMP/m-$type.gguf
    "$HERD" synth --vocab "$VOCAB_BPE" -o "$m" --n-embd 512 --n-head 8 --n-head-kv 2 --head-dim 64 --n-ff 1536 \
        --n-layer 2 --type "$type" --scale 0.05 --seed 11 --ctx 256 >/dev/null || die "synth $type"
    for t in 1 2 3 4; do run_all "$type-t$t" "$t" "$m"; done
    # a neighbour that wants a core all the time: our threads are descheduled mid-pass, at random
    bash -c 'while :; do :; done' &
    busy=$!
    # every thread in use (HERD_DYNAMIC_THREADS=0: the pool would otherwise run fewer next to the
    # neighbour), then as the pool chooses
    for t in 2 4; do HERD_DYNAMIC_THREADS=0 run_all "$type-busy-t$t" "$t" "$m"; done
    run_all "$type-busy-dyn-t4" 4 "$m"
    # every decode step through the relay (src/model/relay.h: the step carried by any running thread)
    HERD_RELAY=1 run_all "$type-busy-relay-t4" 4 "$m"
    kill "$busy"; wait "$busy" 2>/dev/null; busy=""
    for tag in t2 t3 t4 busy-t2 busy-t4 busy-dyn-t4 busy-relay-t4; do
        cmp -s "$TMP/$type-t1.bin" "$TMP/$type-$tag.bin" || die "$type: logits with $tag differ from 1 thread"
        cmp -s "$TMP/$type-t1.ids" "$TMP/$type-$tag.ids" || die "$type: greedy ids with $tag differ: $(cat "$TMP/$type-$tag.ids") vs $(cat "$TMP/$type-t1.ids")"
    done
    [ "$(stat -c %s "$TMP/$type-t1.bin")" -eq $((40 * 128256 * 4)) ] || die "$type: logits file has the wrong size"
    echo "ok   $type: logits of 40 positions and 24 greedy ids bit-identical with 1-4 threads and next to a busy loop"
done

if command -v taskset >/dev/null; then
    out=$(taskset -c 0 "$HERD" info "$TMP/m-q8_0.gguf") || die "info under taskset"
    grep -q '^threads: *1 (default; affinity mask 1 of' <<<"$out" || die "taskset -c 0 herd info: $(grep threads <<<"$out")"
    echo "ok   taskset -c 0: $(grep '^threads' <<<"$out")"
else
    echo "note: taskset not installed, affinity part not checked"
fi

# An idle server costs no CPU: after a request, its threads (HTTP, engine, the pool's workers) sleep.
"$HERD" serve -m "$TMP/m-q8_0.gguf" --port 0 -t 2 >"$TMP/port" 2>"$TMP/serve.err" &
srv=$!
trap '[ -n "$busy" ] && kill "$busy" 2>/dev/null; kill "$srv" 2>/dev/null; rm -rf "$TMP"' EXIT
for _ in $(seq 100); do [ -s "$TMP/port" ] && break; sleep 0.1; done
port=$(head -n 1 "$TMP/port")
[ -n "$port" ] || die "server did not start: $(cat "$TMP/serve.err")"
curl -sf "http://127.0.0.1:$port/v1/completions" -H 'Content-Type: application/json' \
    -d '{"prompt": "Hello", "max_tokens": 8, "temperature": 0}' >/dev/null || die "completion request failed"
sleep 0.5
ticks() { awk '{print $14 + $15}' "/proc/$srv/stat"; }
t0=$(ticks); sleep 2; t1=$(ticks)
hz=$(getconf CLK_TCK)
[ $((t1 - t0)) -le $((hz / 20)) ] || die "idle server used $((t1 - t0)) ticks of CPU in 2 s (at most $((hz / 20)))"
echo "ok   idle server: $((t1 - t0)) CPU ticks in 2 s"
kill "$srv"; wait "$srv" 2>/dev/null
