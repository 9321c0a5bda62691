#!/bin/bash
# Speculative decoding through the CLI (herd run / chat --draft, --lookup) on random-weight models with
# the real Llama 3 vocabulary: greedy ids identical to plain decoding for --draft-max 1..16 (a sample of
# the sizes here; every size in tests/unit/test_spec.c) with a draft that agrees often (the same model quantized to q8_0 by herd quantize) and with one that never
# agrees (another random model); prompt lookup likewise; a two-turn chat prints the same with and
# without a draft (the caches are left as plain decoding leaves them); the statistics are reported;
# a draft with another vocabulary and bad option combinations are refused with one clear line.
# The statistical checks of sampling (chi-square) are in tests/unit/test_spec.c.
. tests/lib.sh
need_ref
command -v python3 >/dev/null || skip "python3 is not installed"

synth() { "$HERD" synth --vocab "$1" -o "$2" --n-embd 64 --n-head 4 --n-head-kv 2 --n-layer 2 --n-ff 128 \
    --type f32 --ctx 2048 --seed "$3" >/dev/null || die "synth $2"; }
synth "$VOCAB31" "$TMP/t.gguf" 5
synth "$VOCAB31" "$TMP/other.gguf" 6
synth "$VOCAB_SPM" "$TMP/spm.gguf" 5
"$HERD" quantize "$TMP/t.gguf" "$TMP/twin.gguf" Q8_0 >/dev/null 2>&1 || die "quantize"

P="Once upon a time, the cat sat on the mat. Once upon a time, the dog sat on the"
ids() { python3 -c "import json,sys; d=json.load(sys.stdin); print(d['ids'], d['stop_reason'])"; }
run() { "$HERD" run -m "$TMP/t.gguf" -p "$P" -n 40 --temp 0 --repeat-penalty 1.1 -t 1 --json "$@"; }
run >"$TMP/plain.json" || die "plain run"
want=$(ids <"$TMP/plain.json")
n=$(python3 -c "import json; print(len(json.load(open('$TMP/plain.json'))['ids']))")
[ "$n" -ge 20 ] || die "plain greedy generated only $n tokens"

acc_twin=0; drafted_twin=0; acc_other=0
for k in 1 2 3 5 8 16; do
    run --draft "$TMP/twin.gguf" --draft-max "$k" >"$TMP/s.json" || die "run --draft twin --draft-max $k"
    [ "$(ids <"$TMP/s.json")" = "$want" ] || die "twin draft, --draft-max $k: ids differ from plain: $(ids <"$TMP/s.json") vs $want"
    read -r a d < <(python3 -c "import json; t=json.load(open('$TMP/s.json'))['timings']; print(t['accepted'], t['drafted'])")
    acc_twin=$((acc_twin + a)); drafted_twin=$((drafted_twin + d))
    case $k in 1|5|16) ;; *) continue ;; esac
    run --draft "$TMP/other.gguf" --draft-max "$k" >"$TMP/s.json" || die "run --draft other --draft-max $k"
    [ "$(ids <"$TMP/s.json")" = "$want" ] || die "unrelated draft, --draft-max $k: ids differ from plain"
    acc_other=$((acc_other + $(python3 -c "import json; print(json.load(open('$TMP/s.json'))['timings']['accepted'])")))
done
echo "twin draft: accepted $acc_twin of $drafted_twin drafted; unrelated draft: accepted $acc_other"
[ $((acc_twin * 2)) -gt "$drafted_twin" ] || die "the q8_0 twin should agree often ($acc_twin of $drafted_twin)"
for kg in 1:1 3:3 16:2; do
    k=${kg%:*} g=${kg#*:}
    run --lookup "$g" --draft-max "$k" >"$TMP/s.json" || die "run --lookup $g"
    [ "$(ids <"$TMP/s.json")" = "$want" ] || die "--lookup $g --draft-max $k: ids differ from plain"
done
# --draft-min larger than every proposal: plain steps only, same ids
run --draft "$TMP/other.gguf" --draft-max 4 --draft-min 4 --draft-p-min 0.99 >"$TMP/s.json" || die "--draft-min"
[ "$(ids <"$TMP/s.json")" = "$want" ] || die "--draft-min/--draft-p-min: ids differ from plain"
# the statistics line
"$HERD" run -m "$TMP/t.gguf" -p "$P" -n 16 --temp 0 -t 1 --draft "$TMP/twin.gguf" >/dev/null 2>"$TMP/err" || die "run"
grep -q "drafted [0-9]*, accepted [0-9]* (" "$TMP/err" || die "no draft statistics in the timing line: $(cat "$TMP/err")"

# sampling runs too (its distribution is tested in test_spec)
"$HERD" run -m "$TMP/t.gguf" -p "$P" -n 24 --temp 1 --seed 3 -t 1 --json --draft "$TMP/twin.gguf" >"$TMP/s.json" \
    || die "sampled run with a draft"
python3 -c "import json; d=json.load(open('$TMP/s.json')); assert len(d['ids']) > 0 and d['timings']['drafted'] > 0" \
    || die "sampled run: $(cat "$TMP/s.json")"

# chat: two turns, the second reusing the cache the first left behind
printf 'Hello there\nTell me more\n' | "$HERD" chat -m "$TMP/t.gguf" --temp 0 -n 20 -t 1 --no-stats >"$TMP/c0" \
    || die "chat"
printf 'Hello there\nTell me more\n' | "$HERD" chat -m "$TMP/t.gguf" --temp 0 -n 20 -t 1 --no-stats \
    --draft "$TMP/twin.gguf" --draft-max 5 >"$TMP/c1" || die "chat --draft"
cmp -s "$TMP/c0" "$TMP/c1" || die "chat with a draft differs from plain: $(diff "$TMP/c0" "$TMP/c1" | head -5)"
printf 'Hello there\nTell me more\n' | "$HERD" chat -m "$TMP/t.gguf" --temp 0 -n 20 -t 1 --no-stats \
    --lookup 2 >"$TMP/c2" || die "chat --lookup"
cmp -s "$TMP/c0" "$TMP/c2" || die "chat with --lookup differs from plain"

# refusals: one line, non-zero exit
"$HERD" run -m "$TMP/t.gguf" -p "$P" -n 4 --draft "$TMP/spm.gguf" >/dev/null 2>"$TMP/err" && die "a draft with another vocabulary was accepted"
grep -q "vocabulary" "$TMP/err" && [ "$(wc -l <"$TMP/err")" -eq 1 ] || die "vocabulary mismatch message: $(cat "$TMP/err")"
"$HERD" run -m "$TMP/t.gguf" -p "$P" -n 4 --draft "$TMP/twin.gguf" --lookup 2 >/dev/null 2>"$TMP/err" && die "--draft with --lookup accepted"
grep -q "not both" "$TMP/err" || die "--draft + --lookup message: $(cat "$TMP/err")"
"$HERD" run -m "$TMP/t.gguf" -p "$P" --draft-max 0 >/dev/null 2>&1 && die "--draft-max 0 accepted"
"$HERD" run -m "$TMP/t.gguf" -p "$P" --draft "$TMP/missing.gguf" >/dev/null 2>"$TMP/err" && die "a missing draft was accepted"
grep -q "draft model" "$TMP/err" || die "missing draft message: $(cat "$TMP/err")"
echo "ok"
