#!/bin/bash
# herd eval --type gen --judge MODEL (LLM-as-judge) with two small random-weight models (candidate and judge):
# every judge reply is a JSON object {"score": 1..10} (the schema constraint holds even for random weights),
# equals `herd run --temp 0 --json-schema` of the judge on the recorded prompt ids, and the judge_score
# metric is the mean of the items' scores; --judge without --type gen is refused.
source tests/lib.sh
need_ref
[ -x "$HERD" ] || die "$HERD is not built"
M=$TMP/cand.gguf J=$TMP/judge.gguf
"$HERD" synth --vocab "$VOCAB31" -o "$M" --shape tiny --type q8_0 --seed 7 --name cand >/dev/null || die "synth"
"$HERD" synth --vocab "$VOCAB31" -o "$J" --shape tiny --type q8_0 --seed 8 --name judge >/dev/null || die "synth"
cat >"$TMP/gen.jsonl" <<'T'
{"question": "What is 2 + 3?", "answer": "5"}
{"question": "Name the capital of France.", "answer": "Paris"}
{"question": "How many legs has a spider?", "answer": 8}
T
printf 'Score only arithmetic correctness: 10 right, 1 wrong.' >"$TMP/rubric.txt"
"$HERD" eval -m "$M" --task "$TMP/gen.jsonl" --type gen -n 6 --judge "$J" --rubric "$TMP/rubric.txt" -t 2 \
    -c 1024 --json "$TMP/out.json" >"$TMP/table.txt" 2>"$TMP/err.txt" || { cat "$TMP/err.txt"; die "herd eval --judge failed"; }
grep -q "|judge_score|" "$TMP/table.txt" || { cat "$TMP/table.txt"; die "no judge_score row"; }
printf '%s' '{"type":"object","properties":{"score":{"type":"integer","enum":[1,2,3,4,5,6,7,8,9,10]}},"required":["score"],"additionalProperties":false}' >"$TMP/schema.json"
python3 - "$TMP" "$HERD" "$J" <<'PY' || die "judge scores"
import json, subprocess, sys
tmp, herd, judge = sys.argv[1:4]
doc = json.load(open(f"{tmp}/out.json"))
scores = []
for r in doc["items"]:
    reply = json.loads(r["judge_output"])
    assert list(reply) == ["score"] and reply["score"] in range(1, 11) and r["judge_score"] == reply["score"], r
    run = json.loads(subprocess.run([herd, "run", "-m", judge, "--prompt-ids", json.dumps(r["judge_prompt_ids"]),
                                     "--temp", "0", "-n", "64", "--json-schema", f"{tmp}/schema.json", "-t", "2",
                                     "-c", "1024", "--json"], capture_output=True, check=True).stdout)
    assert run["text"] == r["judge_output"], (run["text"], r["judge_output"])
    scores.append(reply["score"])
ids = doc["items"][0]["judge_prompt_ids"]
fmt = subprocess.run([herd, "detokenize", "-m", judge, "--ids", json.dumps(ids)], capture_output=True, check=True).stdout.decode()
assert "Score only arithmetic correctness" in fmt and "What is 2 + 3?" in fmt and doc["items"][0]["output"] in fmt, fmt
m = doc["metrics"]
assert m["judge_scored"] == 3 and abs(m["judge_score"] - sum(scores) / 3) < 1e-12, m
print(f"ok   judge scores {scores}, mean {m['judge_score']}")
PY
[ $? -eq 0 ] || exit 1
"$HERD" eval -m "$M" --task "$TMP/gen.jsonl" --type mc --judge "$J" 2>"$TMP/e2" && die "--judge with --type mc accepted"
grep -q "needs --type gen" "$TMP/e2" || { cat "$TMP/e2"; die "unclear error"; }
echo "eval_judge: ok"
