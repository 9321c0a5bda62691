#!/bin/bash
# herd bench: the llama-bench-like table, the --json object the issue specifies (one object, pp and tg
# with n_tokens, tokens_per_s and sd), and --roofline (decode against a plain read of the same
# weights: a fraction, the read's bandwidth, both rates). Speed itself is never asserted: only that
# each figure is there, of the right kind and consistent with the others.
source tests/lib.sh
need_ref
[ -x "$HERD" ] || die "$HERD is not built"
m=$TMP/m.gguf
"$HERD" synth --vocab "$VOCAB_BPE" -o "$m" --n-embd 256 --n-head 4 --n-head-kv 2 --n-layer 2 --n-ff 512 \
    --type q8_0 --ctx 256 >/dev/null || die "synth"

out=$("$HERD" bench -m "$m" -t 2 -p 16 -n 8 -r 2 --json --roofline) || die "bench --json --roofline failed"
[ "$(printf '%s\n' "$out" | grep -c .)" -eq 1 ] || die "--json printed more than one line: $out"
python3 - "$out" <<'PY' || die "bench --json: $out"
import json, math, sys
o = json.loads(sys.argv[1])
assert o["model"].endswith("m.gguf") and o["threads"] == 2, o
for k, n in (("pp", 16), ("tg", 8)):
    assert o[k]["n_tokens"] == n and o[k]["tokens_per_s"] > 0 and o[k]["sd"] >= 0, o[k]
r = o["roofline"]
assert 0 < r["fraction"] < 100 and r["sd"] >= 0 and r["read_gb_per_s"] > 0, r
assert r["read_tokens_per_s"] > 0 and r["tokens_per_s"] > 0, r
# the fraction is the reads' time against decode's time, pooled over repetitions as the two rates are:
# fraction = tokens/s while measured / read tokens/s
assert math.isclose(r["fraction"] * r["read_tokens_per_s"], r["tokens_per_s"], rel_tol=1e-3), r
# the read's bandwidth is decode_bytes at the roofline rate
assert math.isclose(r["read_gb_per_s"], o["decode_bytes"] * r["read_tokens_per_s"] / 1e9, rel_tol=1e-3), r
PY
echo "ok   bench --json --roofline: $out"

plain=$("$HERD" bench -m "$m" -t 1 -p 0 -n 4 -r 1 --json) || die "bench --json failed"
python3 -c 'import json,sys; o=json.loads(sys.argv[1]); assert "roofline" not in o and o["pp"]["n_tokens"] == 0, o' "$plain" ||
    die "without --roofline: $plain"
echo "ok   bench --json without --roofline has no roofline object"

table=$("$HERD" bench -m "$m" -t 2 -p 16 -n 8 -r 1 --roofline) || die "bench failed"
for row in "| pp16 |" "| tg8 |" "| tg8 / roofline |"; do
    [[ "$table" == *"$row"* ]] || die "the table has no '$row' row: $table"
done
echo "ok   bench table:"
printf '%s\n' "$table" | sed 's/^/    /'
