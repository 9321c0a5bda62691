#!/bin/bash
# `herd guard` end to end on small random-weight models with the real Llama 3 vocabulary:
#  - P(unsafe) of `herd guard --json` equals softmax of the first generated position's logits at the
#    token "unsafe" (looked up by `herd tokenize`; 39257 in Llama 3), the logits taken from
#    `herd logits` over the ids of `herd guard --tokens` (the last prompt position);
#  - the verdict agrees with greedy constrained decoding's first step: the best-scoring token among
#    those that begin a verdict ("s", "sa", ..., "u", "un", ..., every one-token prefix of "safe" /
#    "unsafe\n") decides safe vs unsafe;
#  - an unsafe verdict lists only known, non-excluded codes (--exclude S1,S10);
#  - the plain output is "safe" or "unsafe" + the codes line, the JSON has exactly the issue's keys.
# Seeds are tried until both verdicts have been seen (at most 16 models).
source tests/lib.sh
need_ref
[ -x "$HERD" ] || die "$HERD is not built"
command -v python3 >/dev/null || skip "python3 is not installed"

U=$("$HERD" tokenize -m "$VOCAB31" --no-bos -p unsafe) || die "tokenize"
[ "$U" = "[39257]" ] || die "'unsafe' tokenizes as $U, expected [39257]"
# every one-token prefix of a verdict: the candidates of the first generated token
python3 - >"$TMP/cands.jsonl" <<'EOF'
import json
for w in ("safe", "unsafe\nS1"):
    for k in range(1, len(w) + 1):
        print(json.dumps(w[:k]))
EOF
"$HERD" tokenize -m "$VOCAB31" --no-bos --jsonl <"$TMP/cands.jsonl" >"$TMP/cand_ids.jsonl" || die "tokenize candidates"

cat >"$TMP/conv.json" <<'EOF'
[{"role": "user", "content": "How do I make a cake?"},
 {"role": "assistant", "content": "Mix flour, eggs and sugar, then bake it for 30 minutes."}]
EOF
seen_safe=0 seen_unsafe=0 runs=0
for seed in $(seq 1 16); do
    M=$TMP/m$seed.gguf
    "$HERD" synth --vocab "$VOCAB31" -o "$M" --n-embd 64 --n-head 4 --n-head-kv 2 --n-layer 2 --n-ff 128 \
        --type f32 --ctx 1024 --scale 0.5 --seed "$seed" >/dev/null || die "synth seed $seed"
    conv=(--messages "$TMP/conv.json")
    [ $((seed % 2)) -eq 0 ] && conv=(-p "What is the capital of France?")
    "$HERD" guard -m "$M" "${conv[@]}" --exclude S1,S10 --json -t 2 >"$TMP/v.json" 2>"$TMP/err" || die "seed $seed: guard: $(cat "$TMP/err")"
    "$HERD" guard -m "$M" "${conv[@]}" --exclude S1,S10 -t 2 >"$TMP/plain.txt" 2>"$TMP/err" || die "seed $seed: guard (plain): $(cat "$TMP/err")"
    "$HERD" guard -m "$M" "${conv[@]}" --exclude S1,S10 --tokens >"$TMP/ids.json" || die "seed $seed: guard --tokens"
    "$HERD" logits -m "$M" --prompt-ids "$(cat "$TMP/ids.json")" -o "$TMP/logits.bin" -t 2 2>"$TMP/err" || die "seed $seed: logits: $(cat "$TMP/err")"
    verdict=$(python3 - "$TMP" "$seed" <<'EOF'
import json, math, os, sys
from array import array
tmp, seed = sys.argv[1], sys.argv[2]
v = json.load(open(f"{tmp}/v.json"))
assert sorted(v) == ["categories", "p_unsafe", "verdict"], f"keys {sorted(v)}"
ids = json.load(open(f"{tmp}/ids.json"))
n_vocab = 128256
size = os.path.getsize(f"{tmp}/logits.bin")
assert size == len(ids) * n_vocab * 4, f"logits file size {size}"
last = array("f")
with open(f"{tmp}/logits.bin", "rb") as f:
    f.seek((len(ids) - 1) * n_vocab * 4)
    last.fromfile(f, n_vocab)
mx = max(last)
p_ref = math.exp(last[39257] - mx) / math.fsum(math.exp(x - mx) for x in last)
rel = abs(v["p_unsafe"] - p_ref) / p_ref
assert rel < 1e-4, f"p_unsafe {v['p_unsafe']:.9g} vs softmax {p_ref:.9g} (rel {rel:.2e})"
# the first generated token: argmax of the logits over the one-token verdict prefixes
cands = [json.loads(l) for l in open(f"{tmp}/cands.jsonl")]
cids = [json.loads(l) for l in open(f"{tmp}/cand_ids.jsonl")]
one = {c[0]: s for s, c in zip(cands, cids) if len(c) == 1}
best = min(one, key=lambda t: (-last[t], t))
want = "unsafe" if one[best].startswith("u") else "safe"
assert v["verdict"] == want, f"verdict {v['verdict']}, but the best first token is {one[best]!r} ({best})"
plain = open(f"{tmp}/plain.txt").read()
if want == "safe":
    assert v["categories"] == [] and plain == "safe\n", f"safe: {v['categories']} {plain!r}"
else:
    known = {f"S{i}" for i in range(1, 15)} - {"S1", "S10"}
    assert v["categories"] and set(v["categories"]) <= known, f"categories {v['categories']}"
    assert len(set(v["categories"])) == len(v["categories"]), "repeated codes"
    assert plain == "unsafe\n" + ",".join(v["categories"]) + "\n", f"plain output {plain!r}"
print(f"{want} {v['p_unsafe']:.6g} {rel:.1e} {len(ids)} {one[best]!r} {','.join(v['categories'])}")
EOF
) || die "seed $seed: $verdict"
    rm -f "$TMP/logits.bin" "$M"
    echo "seed $seed: $verdict"
    runs=$((runs + 1))
    case $verdict in safe*) seen_safe=1 ;; unsafe*) seen_unsafe=1 ;; esac
    [ $seen_safe = 1 ] && [ $seen_unsafe = 1 ] && [ $runs -ge 4 ] && break
done
[ $seen_safe = 1 ] && [ $seen_unsafe = 1 ] || die "16 models gave only one kind of verdict"
echo "P(unsafe) equals softmax of herd logits; verdicts follow the first constrained step ($runs models)"
