#!/bin/bash
# The context-full policy (docs/CONTEXT.md) of `herd chat` and `herd serve`, on a tiny random-weight
# model with a small -c:
#   chat, scripted replies (--test-script forces the generated tokens while the model runs):
#   - stop: the turn that no longer fits ends the chat (exit 1, "stopped" on stderr), and so does a reply
#     that fills the context (reason: context), after printing what it got;
#   - shift: the oldest turns go, the system prompt stays: the final prompt (--dump-prompt) is exactly
#     the official template over the system message and the later turns; a reply that fills the
#     context goes on after the shift and comes out whole;
#   - greedy (a free reply): a reply continued after a shift equals `herd run --temp 0` on the shifted
#     conversation's ids followed by the reply's first part (re-templated, re-prefilled: exact);
#   server: tests/serve/ctx_policy_client.mjs.
source tests/lib.sh
need_ref
[ -x "$HERD" ] || die "$HERD is not built"
command -v python3 >/dev/null || die "python3 is needed"
MODEL=$PWD/build/test-models/serve-tiny31-q8_0.gguf # the server tests' model (tests/serve/lib.mjs)
if [ ! -f "$MODEL" ]; then
    mkdir -p build/test-models
    "$HERD" synth --vocab "$VOCAB31" -o "$MODEL.tmp.$$" --shape tiny --type q8_0 --output-type q8_0 --seed 11 \
        --name serve-tiny >/dev/null || die "herd synth failed"
    mv "$MODEL.tmp.$$" "$MODEL"
fi

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok   $*"; }

# the conversation: a system prompt, four user turns (one message per stdin line), scripted replies
SYS="You are a helpful assistant who answers in one short sentence."
U=("What is the capital of France, and what river runs through it?"
   "Name three famous museums in that city and say which one is the largest."
   "How long does the train from there to London take these days?"
   "Thank you. Now please summarise everything we talked about so far in a few words, covering the capital, its river, the museums and the train ride.")
R=("Paris, on the Seine." "The Louvre, the Orsay and the Pompidou; the Louvre is the largest." "About two hours and fifteen minutes." "Paris, the Seine, three museums, a short train ride.")
L1="This reply is deliberately long so that it fills the small context while it is being written: one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty."
LONG="$L1 And again, to be sure: $L1 And a third time: $L1"
printf '%s\n' "${U[@]}" >"$TMP/lines"

# msgs FILE K [LAST_REPLY]: the JSON conversation of the system prompt and turns K..4 (1-based), the
# replies R (or LAST_REPLY for the fourth)
msgs() {
    python3 - "$1" "$2" "${3:-${R[3]}}" "$SYS" "${U[@]}" "${R[0]}" "${R[1]}" "${R[2]}" <<'EOF'
import json, sys
out, k, last, sys_ = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
u, r = sys.argv[5:9], sys.argv[9:12] + [last]
m = [{"role": "system", "content": sys_}]
for i in range(k - 1, 4):
    m += [{"role": "user", "content": u[i]}, {"role": "assistant", "content": r[i]}]
json.dump(m, open(out, "w"))
EOF
}
ntok() { "$HERD" format -m "$MODEL" --messages "$1" --tokens "${@:2}" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
script() { python3 -c 'import json,sys; print(json.dumps([s + "<|eot_id|>" for s in sys.argv[1:]]))' "$@" >"$TMP/script.json"; }

# sizes: T4 = the prompt of the fourth turn (all earlier turns kept), T3 = the third's
msgs "$TMP/all.json" 1
python3 -c 'import json; m = json.load(open("'"$TMP/all.json"'")); json.dump(m[:-1], open("'"$TMP/t4.json"'", "w")); json.dump(m[:-3], open("'"$TMP/t3.json"'", "w"))'
T4=$(ntok "$TMP/t4.json") T3=$(ntok "$TMP/t3.json")
CTX=$((T4 - 4)) # the fourth turn does not fit; the third (+ its reply + -n 24) does
[ $((T3 + 24)) -le $CTX ] || die "test setup: the third turn ($T3 tokens + 24) does not fit -c $CTX"
echo "turn 3 prompt $T3 tokens, turn 4 prompt $T4 tokens, -c $CTX"

chat() { # chat NAME [options]: the four lines through herd chat, scripted
    timeout 120 "$HERD" chat -m "$MODEL" --no-stats --test-script "$TMP/script.json" -t 2 \
        --dump-prompt "$TMP/$1.prompt" "${@:2}" <"$TMP/lines" >"$TMP/$1.out" 2>"$TMP/$1.err"
}

# ---- 1. stop: the fourth turn does not fit -> the chat ends with the reason ----
script "${R[@]}"
chat stop --system "$SYS" -c $CTX -n 24 --temp 0; rc=$?
if [ $rc -eq 1 ] && grep -q "stopped: the conversation ($T4 tokens) no longer fits the context of $CTX tokens" "$TMP/stop.err" &&
    grep -qF "${R[2]}" "$TMP/stop.out" && ! grep -qF "${R[3]}" "$TMP/stop.out"; then
    ok "stop: the turn that does not fit ends the chat (exit 1, the reason on stderr)"
else
    fail "stop: rc=$rc: $(cat "$TMP/stop.err")"
fi

# ---- 2. shift: the oldest turns go, the system prompt stays, re-templated exactly ----
chat shift --system "$SYS" -c $CTX -n 24 --temp 0 --context-policy shift; rc=$?
k=0
for j in 2 3 4; do # the first turn kept: j; the official template over those messages
    msgs "$TMP/exp$j.json" $j
    "$HERD" format --messages "$TMP/exp$j.json" --no-generation-prompt >"$TMP/exp$j.prompt" || die "herd format"
    cmp -s "$TMP/exp$j.prompt" "$TMP/shift.prompt" && k=$j && break
done
if [ $rc -eq 0 ] && [ $k -ge 2 ] && grep -qF "${R[3]}" "$TMP/shift.out" && grep -q "^\[context shift: the" "$TMP/shift.err"; then
    # the fewest turns went: with one more turn kept, the fourth prompt + 24 would not fit
    msgs "$TMP/more.json" $((k - 1))
    python3 -c 'import json; m = json.load(open("'"$TMP/more.json"'")); json.dump(m[:-1], open("'"$TMP/more4.json"'", "w"))'
    if [ $(($(ntok "$TMP/more4.json") + 24)) -gt $CTX ]; then
        ok "shift: turns 1..$((k - 1)) left out, system prompt kept; the final prompt is the template over the rest"
    else
        fail "shift: more turns were left out than needed (first kept: $k)"
    fi
else
    fail "shift: rc=$rc, first turn kept $k: $(cat "$TMP/shift.err") / $(head -c 2000 "$TMP/shift.prompt")"
fi

# ---- 3. a reply that fills the context: stop ends there; shift goes on and comes out whole ----
script "${R[0]}" "${R[1]}" "${R[2]}" "$LONG"
msgs "$TMP/long.json" 1 "$LONG"
python3 -c 'import json; m = json.load(open("'"$TMP/long.json"'")); json.dump(m[:-1], open("'"$TMP/long4.json"'", "w"))'
TL=$(ntok "$TMP/long4.json")                       # the fourth prompt
LL=$(ntok "$TMP/long.json" --no-generation-prompt) # ... with the long reply and its <|eot_id|>
CTX2=$(( (TL * 4 + 2) / 3 + 1 ))                   # the fourth prompt + a quarter of -c fit: no shift before it
[ "$LL" -gt $((CTX2 + 8)) ] || die "test setup: the long reply ($((LL - TL)) tokens) does not overflow -c $CTX2"
chat midstop --system "$SYS" -c $CTX2 --temp 0; rc=$?
if [ $rc -eq 1 ] && grep -q "stopped: the context of $CTX2 tokens is full (reason: context" "$TMP/midstop.err" &&
    grep -qF "This reply is deliberately" "$TMP/midstop.out" && ! grep -qF "a third time" "$TMP/midstop.out"; then
    ok "stop: a reply that fills the context ends there, the chat too (reason: context)"
else
    fail "stop mid-reply: rc=$rc: $(cat "$TMP/midstop.err")"
fi
chat midshift --system "$SYS" -c $CTX2 --temp 0 --context-policy shift; rc=$?
k=0
for j in 2 3 4; do
    msgs "$TMP/expl$j.json" $j "$LONG"
    "$HERD" format --messages "$TMP/expl$j.json" --no-generation-prompt >"$TMP/expl$j.prompt" || die "herd format"
    cmp -s "$TMP/expl$j.prompt" "$TMP/midshift.prompt" && k=$j && break
done
if [ $rc -eq 0 ] && [ $k -ge 2 ] && grep -qF "$LONG" "$TMP/midshift.out" && grep -q "^\[context shift" "$TMP/midshift.err"; then
    ok "shift: a reply that fills the context goes on after the oldest turns go (first kept: turn $k), whole"
else
    fail "shift mid-reply: rc=$rc, k=$k: $(cat "$TMP/midshift.err") / $(cat "$TMP/midshift.out")"
fi

# ---- 4. greedy: a reply continued after a shift is exactly herd run on the shifted ids ----
# turn 1 scripted, turn 2 free (a null script entry). The free reply fills the context (the random model
# hardly ever ends a turn), turn 1 goes, the reply goes on until the context is full again with nothing
# left to leave out (then the chat stops: exit 1). Expected: herd run --temp 0 on the turn-2 prompt for
# the first part (m tokens), then on [system, U2] + those m ids for the rest.
printf '%s\n' "${U[0]}" "${U[3]}" >"$TMP/lines2"
python3 -c 'import json,sys; print(json.dumps([sys.argv[1] + "<|eot_id|>", None]))' "${R[0]}" >"$TMP/script2.json"
python3 - "$TMP" "$SYS" "${U[0]}" "${R[0]}" "${U[3]}" <<'EOF2'
import json, sys
t, s, u1, r1, u2 = sys.argv[1:]
json.dump([{"role": "system", "content": s}, {"role": "user", "content": u1}, {"role": "assistant", "content": r1},
           {"role": "user", "content": u2}], open(t + "/p2.json", "w"))
json.dump([{"role": "system", "content": s}, {"role": "user", "content": u2}], open(t + "/q.json", "w"))
EOF2
"$HERD" format -m "$MODEL" --messages "$TMP/p2.json" --tokens >"$TMP/p2.ids" || die "herd format"
"$HERD" format -m "$MODEL" --messages "$TMP/q.json" --tokens >"$TMP/q.ids" || die "herd format"
P2=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$TMP/p2.ids")
C3=$((P2 + 40))
[ $((C3 - C3 / 4)) -ge $P2 ] || die "test setup: turn 2 ($P2 tokens) + a quarter of -c $C3 does not fit"
timeout 120 "$HERD" chat -m "$MODEL" --no-stats --temp 0 -t 2 --system "$SYS" -c $C3 --context-policy shift \
    --test-script "$TMP/script2.json" <"$TMP/lines2" >"$TMP/greedy.out" 2>"$TMP/greedy.err"; rc=$?
M=$((C3 - P2 + 1)) # tokens of the first part: emitted until the context is full
"$HERD" run -m "$MODEL" -t 2 --temp 0 -n $M --json --prompt-ids "$(cat "$TMP/p2.ids")" >"$TMP/run1.json" || die "herd run 1"
python3 - "$TMP" "$C3" <<'EOF2' || die "building the second prompt"
import json, sys
t, c = sys.argv[1], int(sys.argv[2])
g = json.load(open(t + "/run1.json"))["ids"]
q = json.load(open(t + "/q.ids"))
json.dump(q + g, open(t + "/p3.ids", "w"))
open(t + "/m2", "w").write(str(c - (len(q) + len(g)) + 1))
EOF2
"$HERD" run -m "$MODEL" -t 2 --temp 0 -n "$(cat "$TMP/m2")" --json --prompt-ids "$(cat "$TMP/p3.ids")" \
    >"$TMP/run2.json" || die "herd run 2"
python3 - "$TMP" <<'EOF2' >"$TMP/all.ids"
import json, sys
t = sys.argv[1]
print(json.dumps(json.load(open(t + "/run1.json"))["ids"] + json.load(open(t + "/run2.json"))["ids"]))
EOF2
"$HERD" detokenize -m "$MODEL" --ids "$(cat "$TMP/all.ids")" >"$TMP/expected.txt" || die "herd detokenize"
if [ $rc -eq 1 ] && grep -q "^\[context shift: the 2 oldest messages left out" "$TMP/greedy.err" &&
    grep -q "only the system prompt and this turn are left" "$TMP/greedy.err" &&
    python3 -c 'import sys; a = open(sys.argv[1], "rb").read(); b = open(sys.argv[2], "rb").read(); sys.exit(0 if len(b) > 20 and b in a else 1)' \
        "$TMP/greedy.out" "$TMP/expected.txt"; then
    ok "greedy: the reply continued after a shift is herd run's on the re-templated conversation (${M}+$(cat "$TMP/m2") tokens)"
else
    fail "greedy shift: rc=$rc: $(cat "$TMP/greedy.err") / expected $(head -c 300 "$TMP/expected.txt") / got $(head -c 600 "$TMP/greedy.out")"
fi

# ---- 5. bad options ----
"$HERD" chat -m "$MODEL" --context-policy drop -p hi >"$TMP/bad.out" 2>&1 && fail "--context-policy drop accepted"
grep -q "context-policy: 'drop' is not stop or shift" "$TMP/bad.out" && ok "chat --context-policy drop: one clear error" ||
    fail "chat bad policy: $(cat "$TMP/bad.out")"

# ---- 6. the server ----
ln -sfn ../../build/ref/node_modules tests/serve/node_modules
timeout 300 node tests/serve/ctx_policy_client.mjs || fail "server (tests/serve/ctx_policy_client.mjs)"

[ $fails -eq 0 ] || die "$fails check(s) failed"
echo "context policy: all checks passed"
