#!/bin/bash
# Tensor parallelism over MPI (build/herd-mpi --tp N, docs/SCALING.md) on small random-weight models:
#   - logits of a 12-token prompt (herd logits, byte for byte) at --tp 2 and --tp 4 equal the single process's,
#     for F32, Q8_0, Q4_0 and Q4_K weights with GQA ratios 1, 2 and 4;
#   - greedy generation gives the same ids (prompt processing and decode steps); chat and perplexity the same output;
#   - serve answers parallel chat and completion requests as one process does; SIGTERM ends every rank;
#     its prefix cache and slot files hold one process's KV bytes (gathered from the ranks);
#   - pipeline stages (--pp 2, --pp 4, and --tp 2 x --pp 2): the same logits, greedy ids, perplexity (batches
#     cut into micro-batches) and server answers; each stage holds only its layers (the last one also the output);
#   - each rank holds ~1/N of the weights resident (HERD_TP_DEBUG=1: pages from /proc/self/pagemap);
#   - a follower waiting for rank 0 (which waits on stdin) uses little CPU;
#   - a follower killed mid-generation (under --tp 2 and --pp 2) ends every rank; one stopped past HERD_TP_TIMEOUT is named in one
#     error line and every rank ends; a wrong split (--tp not dividing the KV heads, ranks != tp) is refused
#     with one line before any weight is read.
# Launch: --oversubscribe (4 ranks on 2 cores), --bind-to none (else each rank's threads share one core), and
# root in CI needs OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1.
source tests/lib.sh
need_ref
[ -x "$HERD" ] || die "$HERD is not built"
HMPI=${HERD_MPI:-$(dirname "$HERD")/herd-mpi}
if ! command -v mpirun >/dev/null || [ ! -x "$HMPI" ]; then
    [ -n "${CI:-}" ] && die "mpirun or $HMPI is missing (scripts/setup.sh installs openmpi-bin libopenmpi-dev)"
    skip "no mpirun or $HMPI (apt-get install openmpi-bin libopenmpi-dev, then make)"
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
MPIRUN=(mpirun --oversubscribe --bind-to none)
export HERD_TP_TIMEOUT=60

mkdir -p build/test-models
# name type extra-synth-args: GQA 1 (8 KV heads), 2 (4) and 4 (16 query heads of 16 dims over 4 KV heads)
model() {
    local f=$PWD/build/test-models/tp-$1.gguf
    if [ ! -f "$f" ]; then
        "$HERD" synth --vocab "$VOCAB31" -o "$f.tmp.$$" --shape tiny --type "$2" --seed 11 "${@:3}" >/dev/null ||
            die "herd synth $1 failed"
        mv "$f.tmp.$$" "$f"
    fi
    echo "$f"
}
F32=$(model f32-gqa1 f32 --n-head-kv 8)
Q8=$(model q8_0-gqa2 q8_0 --n-head-kv 4)
Q4=$(model q4_0-gqa4 q4_0 --n-head 16 --n-head-kv 4 --head-dim 16)
QK=$(model q4_k-gqa1 q4_k --n-head-kv 8)
IDS='[128000,791,4062,14198,39935,35308,927,279,16053,5679,13,578]'

# ---- logits, byte for byte ----
for m in "$F32" "$Q8" "$Q4" "$QK"; do
    "$HERD" logits -m "$m" --prompt-ids "$IDS" -t 1 -o "$TMP/one.bin" || die "single-process logits failed on $m"
    for n in 2 4; do
        timeout 120 "${MPIRUN[@]}" -np $n "$HMPI" logits -m "$m" --prompt-ids "$IDS" -t 1 -o "$TMP/tp.bin" --tp $n \
            >"$TMP/log" 2>&1 || { cat "$TMP/log"; die "--tp $n logits failed on $m"; }
        cmp -s "$TMP/one.bin" "$TMP/tp.bin" || die "--tp $n logits differ from the single process on $(basename "$m")"
        echo "ok: $(basename "$m") --tp $n logits bit-identical ($(stat -c %s "$TMP/tp.bin") bytes)"
    done
    # pipeline stages do not depend on the weight type: 2 and 4 stages on F32, 2 on Q8_0, 4 on Q4_0
    case $m in "$F32") pps="2 4" ;; "$Q8") pps=2 ;; "$Q4") pps=4 ;; *) pps="" ;; esac
    for n in $pps; do
        timeout 120 "${MPIRUN[@]}" -np $n "$HMPI" logits -m "$m" --prompt-ids "$IDS" -t 1 -o "$TMP/pp.bin" --pp $n \
            >"$TMP/log" 2>&1 || { cat "$TMP/log"; die "--pp $n logits failed on $m"; }
        cmp -s "$TMP/one.bin" "$TMP/pp.bin" || die "--pp $n logits differ from the single process on $(basename "$m")"
        echo "ok: $(basename "$m") --pp $n logits bit-identical"
    done
done

# ---- greedy generation (Q8_0; the other types' decode steps are in the logits above, token by token is
# bit-identical to a batch: test_forward); also the resident weights per rank: about 1/N of the file's matrices ----
for m in "$Q8"; do
    "$HERD" run -m "$m" -p "The quick brown fox" -n 24 --temp 0 --json -t 1 >"$TMP/one.json" || die "single-process run failed"
    for n in 2 4; do
        HERD_TP_DEBUG=1 timeout 120 "${MPIRUN[@]}" -np $n "$HMPI" run -m "$m" -p "The quick brown fox" -n 24 --temp 0 --json \
            -t 1 --tp $n >"$TMP/tp.json" 2>"$TMP/log" || { cat "$TMP/log"; die "--tp $n run failed on $m"; }
        python3 - "$TMP/one.json" "$TMP/tp.json" <<'PY' || die "--tp $n greedy ids differ on $(basename "$m")"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
assert len(a["ids"]) == 24 and a["ids"] == b["ids"] and a["prompt_ids"] == b["prompt_ids"], (a["ids"], b["ids"])
PY
        echo "ok: $(basename "$m") --tp $n greedy ids identical"
        [ "$m" = "$Q8" ] || continue
        python3 - "$TMP/log" $n <<'PY' || { cat "$TMP/log"; die "--tp $n: a rank holds more than about 1/$n of the weights"; }
import re, sys
n = int(sys.argv[2])
rows = re.findall(r"tp: rank (\d+) of \d+: weights resident (\d+) bytes .* of (\d+) in the file", open(sys.argv[1]).read())
assert len(rows) == n, rows
for r, res, tot in rows:
    res, tot = int(res), int(tot)
    share = tot / n
    print(f"rank {r}: {res} bytes resident, {res / tot:.3f} of the weights (1/{n} = {1 / n:.3f})")
    assert 0.8 * share < res < 1.15 * share + (2 << 20), (r, res, share)
PY
    done
done

# pipeline stages: the same greedy ids; each stage holds its layers (and the last one the output matrix)
"$HERD" run -m "$Q8" -p "The quick brown fox" -n 24 --temp 0 --json -t 1 >"$TMP/one.json" || die "single-process run failed"
HERD_TP_DEBUG=1 timeout 120 "${MPIRUN[@]}" -np 2 "$HMPI" run -m "$Q8" -p "The quick brown fox" -n 24 --temp 0 --json \
    -t 1 --pp 2 >"$TMP/pp.json" 2>"$TMP/log" || { cat "$TMP/log"; die "--pp 2 run failed"; }
python3 - "$TMP/one.json" "$TMP/pp.json" "$TMP/log" <<'PY' || { cat "$TMP/log"; die "--pp 2: greedy ids or resident weights wrong"; }
import json, re, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
assert len(a["ids"]) == 24 and a["ids"] == b["ids"], (a["ids"], b["ids"])
rows = {int(r): (int(res), int(tot), int(emb)) for r, res, tot, emb in re.findall(
    r"tp: rank (\d+) of 2: weights resident (\d+) bytes .* of (\d+) in the file; token embedding \d+ of (\d+)", open(sys.argv[3]).read())}
assert sorted(rows) == [0, 1], rows
tot, out = rows[0][1], rows[0][2]  # the output matrix has the token embedding's shape here
layers = tot - out
print(f"--pp 2: stage 0 holds {rows[0][0]} bytes, stage 1 {rows[1][0]} (layers {layers}, output {out})")
assert rows[0][0] < 0.65 * layers + (1 << 20), rows        # half the layers, no output matrix
# the other half and the output (once: packed, its mapped pages dropped; a few MiB of mapped pages may stay)
assert out < rows[1][0] < out + layers + (4 << 20), rows
PY
echo "ok: --pp 2 greedy ids identical; each stage holds its layers"

# ---- chat and perplexity at --tp 2: the same output as one process ----
printf 'the cat walks over the river and the moon sings quickly under the storm %.0s' $(seq 60) >"$TMP/text.txt"
"$HERD" chat -m "$Q8" -p "Hello, who are you?" -n 16 --temp 0 -t 1 >"$TMP/one.txt" 2>/dev/null || die "chat failed"
timeout 120 "${MPIRUN[@]}" -np 2 "$HMPI" chat -m "$Q8" -p "Hello, who are you?" -n 16 --temp 0 -t 1 --tp 2 \
    >"$TMP/tp.txt" 2>"$TMP/log" || { cat "$TMP/log"; die "--tp 2 chat failed"; }
cmp -s "$TMP/one.txt" "$TMP/tp.txt" || die "--tp 2 chat differs"
"$HERD" perplexity -m "$Q8" -f "$TMP/text.txt" -c 128 --chunks 3 -t 1 2>/dev/null | grep -v 'minutes' >"$TMP/one.txt" ||
    die "perplexity failed"
timeout 120 "${MPIRUN[@]}" -np 2 "$HMPI" perplexity -m "$Q8" -f "$TMP/text.txt" -c 128 --chunks 3 -t 1 --tp 2 2>"$TMP/log" |
    grep -v 'minutes' >"$TMP/tp.txt" || { cat "$TMP/log"; die "--tp 2 perplexity failed"; }
grep -q '\[3\]' "$TMP/one.txt" && cmp -s "$TMP/one.txt" "$TMP/tp.txt" ||
    die "--tp 2 perplexity differs: $(cat "$TMP/one.txt") vs $(cat "$TMP/tp.txt")"
echo "ok: chat and perplexity at --tp 2 equal one process ($(cat "$TMP/tp.txt"))"
# windows of 128 tokens: 4 micro-batches per pass at --pp 2, stages working on different ones at once
timeout 120 "${MPIRUN[@]}" -np 2 "$HMPI" perplexity -m "$Q8" -f "$TMP/text.txt" -c 128 --chunks 3 -t 1 --pp 2 2>"$TMP/log" |
    grep -v 'minutes' >"$TMP/pp.txt" || { cat "$TMP/log"; die "--pp 2 perplexity failed"; }
cmp -s "$TMP/one.txt" "$TMP/pp.txt" || die "--pp 2 perplexity differs: $(cat "$TMP/one.txt") vs $(cat "$TMP/pp.txt")"
echo "ok: perplexity at --pp 2 (micro-batches in flight) equals one process"
# tensor x pipeline: 2 stages of 2 ranks each
timeout 120 "${MPIRUN[@]}" -np 4 "$HMPI" perplexity -m "$Q8" -f "$TMP/text.txt" -c 128 --chunks 3 -t 1 --tp 2 --pp 2 2>"$TMP/log" |
    grep -v 'minutes' >"$TMP/pp.txt" || { cat "$TMP/log"; die "--tp 2 --pp 2 perplexity failed"; }
cmp -s "$TMP/one.txt" "$TMP/pp.txt" || die "--tp 2 --pp 2 perplexity differs: $(cat "$TMP/one.txt") vs $(cat "$TMP/pp.txt")"
"$HERD" logits -m "$Q4" --prompt-ids "$IDS" -t 1 -o "$TMP/one.bin" || die "single-process logits failed"
timeout 120 "${MPIRUN[@]}" -np 4 "$HMPI" logits -m "$Q4" --prompt-ids "$IDS" -t 1 -o "$TMP/pp.bin" --tp 2 --pp 2 >"$TMP/log" 2>&1 ||
    { cat "$TMP/log"; die "--tp 2 --pp 2 logits failed"; }
cmp -s "$TMP/one.bin" "$TMP/pp.bin" || die "--tp 2 --pp 2 logits differ from the single process"
echo "ok: --tp 2 --pp 2 (4 ranks): perplexity and logits equal one process"

# ---- serve at --tp 2: the same answers as one process (2 slots, requests in parallel), then SIGTERM ends
# every rank; what needs the whole KV cache (a second context for echo's prompt log-probs) is refused ----
serve_answers() { # out-file cmd... (TP_ARGS after serve's): starts the server, asks, stops it
    local out=$1; shift
    "$@" serve -m "$Q8" --port 0 --parallel 2 -t 1 ${TP_ARGS:-} >"$TMP/srv.port" 2>"$TMP/srv.log" &
    local pid=$! port=""
    for _ in $(seq 300); do port=$(head -1 "$TMP/srv.port" 2>/dev/null); [ -n "$port" ] && break; sleep 0.1; done
    [ -n "$port" ] || { kill $pid; cat "$TMP/srv.log"; die "the server did not start: $*"; }
    local u=http://127.0.0.1:$port
    local q cpids=()
    for q in "Hello, who are you?" "Tell me about the moon."; do
        curl -s -m 60 $u/v1/chat/completions -H 'Content-Type: application/json' \
            -d "{\"messages\":[{\"role\":\"user\",\"content\":\"$q\"}],\"max_tokens\":16,\"temperature\":0}" >"$TMP/c-$q.json" &
        cpids+=($!)
    done
    wait "${cpids[@]}"
    for q in "Hello, who are you?" "Tell me about the moon."; do
        python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["choices"][0]["message"]["content"])' "$TMP/c-$q.json" >>"$out" ||
            die "bad answer from $*: $(cat "$TMP/c-$q.json")"
    done
    curl -s -m 60 $u/v1/completions -H 'Content-Type: application/json' \
        -d '{"prompt":"The quick brown fox","max_tokens":8,"temperature":0}' >"$TMP/cmp.json"
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["choices"][0]["text"])' "$TMP/cmp.json" >>"$out" ||
        die "bad completion from $*: $(cat "$TMP/cmp.json")"
    curl -s -m 60 $u/v1/completions -H 'Content-Type: application/json' \
        -d '{"prompt":"The quick brown fox","max_tokens":2,"temperature":0,"echo":true,"logprobs":1}' >"$TMP/echo.json"
    kill -TERM $pid
    local t0=$SECONDS
    while kill -0 $pid 2>/dev/null; do [ $((SECONDS - t0)) -gt 30 ] && { kill -9 $pid; die "the server did not stop: $*"; }; sleep 0.2; done
    wait $pid 2>/dev/null || true
}
rm -f "$TMP"/c-*.json
serve_answers "$TMP/one.srv" "$HERD"
rm -f "$TMP"/c-*.json
TP_ARGS="--tp 2" serve_answers "$TMP/tp.srv" timeout 120 "${MPIRUN[@]}" -np 2 "$HMPI"
[ "$(wc -l <"$TMP/one.srv")" -ge 3 ] && cmp -s "$TMP/one.srv" "$TMP/tp.srv" ||
    die "serve at --tp 2 answers differently: $(cat "$TMP/one.srv") vs $(cat "$TMP/tp.srv")"
grep -q 'one context at a time under --tp' "$TMP/echo.json" || die "echo at --tp 2: $(cat "$TMP/echo.json")"
rm -f "$TMP"/c-*.json
TP_ARGS="--pp 2" serve_answers "$TMP/pp.srv" timeout 120 "${MPIRUN[@]}" -np 2 "$HMPI"
cmp -s "$TMP/one.srv" "$TMP/pp.srv" || die "serve at --pp 2 answers differently: $(cat "$TMP/one.srv") vs $(cat "$TMP/pp.srv")"
# mpirun returns as its ranks are being reaped: give them a few seconds before calling one left behind
t0=$SECONDS
while pgrep -f "herd-mpi.*serve" >/dev/null; do
    [ $((SECONDS - t0)) -gt 10 ] && die "a rank of the server is still running 10 s after SIGTERM: $(pgrep -af 'herd-mpi.*serve')"
    sleep 0.2
done
timeout 60 "${MPIRUN[@]}" -np 2 "$HMPI" serve -m "$Q8" --port 0 --tp 2 --guard-model "$Q8" >"$TMP/log" 2>&1 &&
    die "serve --guard-model at --tp 2 was accepted"
[ "$(grep -c '^herd: error: --guard-model does not work with --tp yet' "$TMP/log")" = 1 ] || die "bad --guard-model message: $(cat "$TMP/log")"
echo "ok: serve at --tp 2 and --pp 2 answers as one process (2 slots in parallel; chat and completions); echo's second context and --guard-model refused"

# ---- the prefix cache and slot files under --tp / --pp: the KV bytes are gathered from the ranks in one
# process's layout, so a repeated prompt is reused from the cache with the same answers, and the slot file
# saved after the same requests is byte-identical to one process's ----
SYS_A=$(printf 'You are a careful assistant who answers in full sentences and checks every fact twice. %.0s' 1 2 3)
SYS_B=$(printf 'You are a terse pirate who keeps every reply short and salty, matey. %.0s' 1 2 3)
prefix_run() { # tag cmd... (TP_ARGS after serve's)
    local tag=$1; shift
    mkdir -p "$TMP/slots"
    "$@" serve -m "$Q8" --port 0 --parallel 1 -t 1 --cache-ram 64 --slot-save-path "$TMP/slots" ${TP_ARGS:-} \
        >"$TMP/srv.port" 2>"$TMP/srv.log" &
    local pid=$! port="" sys
    for _ in $(seq 300); do port=$(head -1 "$TMP/srv.port" 2>/dev/null); [ -n "$port" ] && break; sleep 0.1; done
    [ -n "$port" ] || { kill $pid; cat "$TMP/srv.log"; die "the server did not start: $*"; }
    local u=http://127.0.0.1:$port
    : >"$TMP/pc-$tag.txt"
    for sys in "$SYS_A" "$SYS_B" "$SYS_A"; do # one slot: the third finds its prompt in the cache only
        curl -s -m 60 $u/v1/chat/completions -H 'Content-Type: application/json' -d "{\"messages\":[{\"role\":\"system\",
            \"content\":\"$sys\"},{\"role\":\"user\",\"content\":\"Hello?\"}],\"max_tokens\":8,\"temperature\":0}" >"$TMP/pc.json"
        python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["choices"][0]["message"]["content"]); print("cached", j["usage"]["prompt_tokens_details"]["cached_tokens"])' \
            "$TMP/pc.json" >>"$TMP/pc-$tag.txt" || die "bad answer from $*: $(cat "$TMP/pc.json")"
    done
    curl -s -m 60 "$u/slots/0?action=save" -H 'Content-Type: application/json' -d "{\"filename\":\"$tag.bin\"}" >"$TMP/save.json"
    grep -q '"n_saved"' "$TMP/save.json" || die "slot save failed under $*: $(cat "$TMP/save.json")"
    kill -TERM $pid
    wait $pid 2>/dev/null || true
}
prefix_run one "$HERD"
[ "$(tail -1 "$TMP/pc-one.txt" | cut -d' ' -f2)" -ge 48 ] || die "the prefix cache did not serve the repeated prompt: $(cat "$TMP/pc-one.txt")"
for split in "2 --tp 2" "2 --pp 2" "4 --tp 2 --pp 2"; do
    set -- $split
    np=$1; shift
    TP_ARGS="$*" prefix_run "np$np$1" timeout 120 "${MPIRUN[@]}" -np $np "$HMPI"
    cmp -s "$TMP/pc-one.txt" "$TMP/pc-np$np$1.txt" ||
        die "prefix cache at $*: $(cat "$TMP/pc-np$np$1.txt") vs one process $(cat "$TMP/pc-one.txt")"
    cmp -s "$TMP/slots/one.bin" "$TMP/slots/np$np$1.bin" || die "the slot file saved at $* differs from one process's"
done
echo "ok: prefix cache at --tp 2, --pp 2 and --tp 2 --pp 2: same answers and cached tokens ($(tail -1 "$TMP/pc-one.txt")), slot files byte-identical"

# ---- an idle follower sleeps: rank 0 waits 8 s for its prompt on stdin ----
(sleep 8; echo "Hello there") | HERD_TP_DEBUG=1 timeout 120 "${MPIRUN[@]}" -np 2 "$HMPI" run -m "$Q8" -f /dev/stdin -n 2 \
    --temp 0 -t 1 --tp 2 >/dev/null 2>"$TMP/log" || { cat "$TMP/log"; die "the idle run failed"; }
python3 - "$TMP/log" <<'PY' || { cat "$TMP/log"; die "an idle follower burns CPU"; }
import re, sys
m = re.search(r"tp: rank 1 of 2: .* idle ([\d.]+) s using ([\d.]+) s cpu", open(sys.argv[1]).read())
idle, cpu = float(m[1]), float(m[2])
print(f"idle follower: {idle:.2f} s waiting, {cpu:.3f} s cpu ({100 * cpu / idle:.1f} %)")
assert idle > 2 and cpu < 0.05 * idle, (idle, cpu)
PY

# ---- faults ----
# the pid of rank R among mpirun's children (Open MPI gives each its rank in the environment)
rank_pid() {
    local p
    for p in $(pgrep -P "$1"); do
        tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2" && { echo "$p"; return; }
    done
}
start_long() { # a generation of 3000 tokens split by "$@" (--tp 2 or --pp 2), in the background, until it
    # is under way; sets MPID and R1
    "${MPIRUN[@]}" -np 2 "$HMPI" run -m "$Q8" -p "Once upon a time" -n 3000 -c 4096 --temp 0 -t 1 "$@" \
        >"$TMP/fault.out" 2>"$TMP/fault.log" &
    MPID=$!
    for _ in $(seq 300); do # until it has printed some of the generation
        [ "$(stat -c %s "$TMP/fault.out" 2>/dev/null || echo 0)" -gt 40 ] && break
        sleep 0.1
    done
    R1=$(rank_pid $MPID 1)
    [ -n "$R1" ] || die "rank 1 of the long run not found"
}
wait_end() { # waits up to $1 s for mpirun; its status in RC
    local t0=$SECONDS
    while kill -0 $MPID 2>/dev/null; do
        [ $((SECONDS - t0)) -gt "$1" ] && { kill -9 $MPID; die "the ranks did not all exit within $1 s: $(cat "$TMP/fault.log")"; }
        sleep 0.2
    done
    wait $MPID; RC=$?
}
# under --tp 2 rank 1 holds half of every layer; under --pp 2 it is the last stage (the one that sends the
# outputs back): either way rank 0 waits on it every step
for split in "--tp 2" "--pp 2"; do
    start_long $split
    kill -9 "$R1"
    wait_end 30
    [ $RC -ne 0 ] || die "mpirun exited 0 after rank 1 was killed ($split)"
    grep -q "rank 1" "$TMP/fault.log" || die "no line names rank 1 ($split): $(cat "$TMP/fault.log")"
    echo "ok: $split: a killed follower ends every rank ($(grep -m1 'rank 1' "$TMP/fault.log"))"

    HERD_TP_TIMEOUT=3 start_long $split
    kill -STOP "$R1"
    wait_end 30
    kill -9 "$R1" 2>/dev/null
    [ $RC -ne 0 ] || die "mpirun exited 0 with rank 1 stopped ($split)"
    grep -q "rank 0: rank 1 did not answer within 3 s" "$TMP/fault.log" || die "no timeout line ($split): $(cat "$TMP/fault.log")"
    echo "ok: $split: a hung follower is named: $(grep -m1 'did not answer' "$TMP/fault.log")"
done

# ---- wrong splits, refused before loading ----
timeout 60 "${MPIRUN[@]}" -np 3 "$HMPI" logits -m "$Q8" --prompt-ids "$IDS" -o "$TMP/x.bin" --tp 3 >"$TMP/log" 2>&1 &&
    die "--tp 3 on 4 KV heads was accepted"
[ "$(grep -c '^herd: error: tp: --tp 3 does not divide the 4 KV heads' "$TMP/log")" = 1 ] || die "bad --tp 3 message: $(cat "$TMP/log")"
timeout 60 "${MPIRUN[@]}" -np 4 "$HMPI" logits -m "$Q8" --prompt-ids "$IDS" -o "$TMP/x.bin" --tp 2 >"$TMP/log" 2>&1 &&
    die "--tp 2 on 4 ranks was accepted"
[ "$(grep -c '^herd: error: --tp 2 but mpirun started 4 ranks' "$TMP/log")" = 1 ] || die "bad ranks message: $(cat "$TMP/log")"
timeout 60 "${MPIRUN[@]}" -np 2 "$HMPI" info "$Q8" --tp 2 >"$TMP/log" 2>&1 && die "info --tp 2 was accepted"
[ "$(grep -c "^herd: error: --tp works with run, logits, chat, perplexity, bench and serve, not 'info'" "$TMP/log")" = 1 ] ||
    die "bad command message: $(cat "$TMP/log")"
timeout 60 "${MPIRUN[@]}" -np 2 "$HMPI" logits -m "$Q8" --prompt-ids "$IDS" -o "$TMP/x.bin" --tp 2 --pp 2 >"$TMP/log" 2>&1 &&
    die "--tp 2 --pp 2 on 2 ranks was accepted"
[ "$(grep -c '^herd: error: --tp 2 --pp 2 but mpirun started 2 ranks (run mpirun -np 4)' "$TMP/log")" = 1 ] ||
    die "bad tp x pp ranks message: $(cat "$TMP/log")"
HM=$(model q8_0-2layers q8_0 --n-layer 2)
timeout 60 "${MPIRUN[@]}" -np 3 "$HMPI" logits -m "$HM" --prompt-ids "$IDS" -o "$TMP/x.bin" --pp 3 >"$TMP/log" 2>&1 &&
    die "--pp 3 on 2 layers was accepted"
[ "$(grep -c '^herd: error: pp: --pp 3 needs at least 3 layers' "$TMP/log")" = 1 ] || die "bad --pp 3 message: $(cat "$TMP/log")"
echo "ok: wrong splits and commands refused with one line"
echo "PASS"
