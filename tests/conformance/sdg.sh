#!/bin/bash
# herd sdg (docs/SDG.md) on a small synthesized Llama 3.1 model (random weights): the SFT output is JSONL
# `herd train --objective sft` accepts (a 1-step run), the DPO pairs are JSONL `--objective dpo` accepts;
# the judge's answer gives a score 1..10 for every candidate (journal; also with a separate --judge model), the fates follow the threshold /
# --best-of, the output holds exactly the kept candidates; greedy duplicates are dropped (exact) and
# identical prompts give one example; documents are chunked by tokens (count checked against herd
# tokenize) into QA seeds; kill -9 mid-run plus a torn last line, then a rerun, give every seed once; a
# finished job reruns as a no-op; bad input gives one error line and a non-zero exit.
source tests/lib.sh
need_ref
[ -x "$HERD" ] || die "$HERD is not built"
command -v python3 >/dev/null || die "python3 is needed (scripts/setup.sh installs it)"
MODEL=$PWD/build/test-models/sdg-tiny31-q8_0.gguf
if [ ! -f "$MODEL" ]; then
    mkdir -p build/test-models
    "$HERD" synth --vocab "$VOCAB31" -o "$MODEL.tmp.$$" --shape tiny --type q8_0 --output-type q8_0 --seed 5 \
        --name sdg-tiny >/dev/null || die "herd synth failed"
    mv "$MODEL.tmp.$$" "$MODEL"
fi
S=("$HERD" sdg -m "$MODEL" -t 2 -c 4096 -n 24 --judge-max-tokens 48 --no-progress)

python3 - "$TMP" <<'EOF2'
import json, sys
d = sys.argv[1]
topics = ["rain", "bread", "copper", "violin", "rivers", "storms", "gardens", "bridges", "lamps", "towers"]
with open(f"{d}/seeds.jsonl", "w") as f:
    for i, t in enumerate(topics):
        f.write(json.dumps({"id": f"s{i}", "prompt": f"Write two sentences about {t}."}) + "\n")
    f.write(json.dumps({"id": "multi", "messages": [{"role": "system", "content": "Be brief."},
                        {"role": "user", "content": "Name a color."}]}) + "\n")
    f.write("\n")  # blank: ignored
    f.write(json.dumps("Say hello.") + "\n")  # a bare string, id seeds.jsonl:13
with open(f"{d}/many.txt", "w") as f:
    for i in range(24):
        f.write(f"Question number {i}: what is {i} plus {i + 1}?\n")
EOF2

# ---- sft: every candidate judged, fates, output == kept; herd train accepts it ----
"${S[@]}" --seeds "$TMP/seeds.jsonl" -o "$TMP/sft.jsonl" -k 3 --threshold 4 --judge-temp 1 --parallel 4 --progress \
    2>"$TMP/sft.err" || { cat "$TMP/sft.err"; die "herd sdg --task sft failed"; }
grep -q 'herd sdg: \[#*\.*\] .* seeds, .* tok/s, ETA' "$TMP/sft.err" || { cat "$TMP/sft.err"; die "no progress bar"; }
check() { # task output journal threshold best_of n_seeds
python3 - "$@" <<'EOF2'
import json, sys
task, out, jr, thr, best_of, n_seeds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] == "1", int(sys.argv[6])
def load(p):
    rows = []
    for k, l in enumerate(open(p)):
        assert l.endswith("\n"), f"{p}:{k+1}: not a whole line"
        rows.append(json.loads(l))
    return rows
outs, jrs = load(out), load(jr)
ids = [j["seed_id"] for j in jrs]
assert len(ids) == len(set(ids)) == n_seeds, f"journal: {len(ids)} lines, {len(set(ids))} seeds, want {n_seeds}"
kept = set()
for j in jrs:
    scored = [c for c in j["candidates"] if c["fate"] not in ("generation_failed",)]
    for c in j["candidates"]:
        if c["fate"] == "generation_failed":
            assert task == "qa" and c["error"], c
            continue
        # the judge's answer parsed for every candidate: an integer score 1..10
        assert isinstance(c["score"], int) and 1 <= c["score"] <= 10, f"{j['seed_id']}: candidate {c['candidate']} score {c.get('score')} ({c.get('error')})"
        assert c["fate"] != "judge_failed", c
        if task == "dpo":
            assert c["fate"] in ("chosen", "rejected", "unpaired", "duplicate", "near_duplicate"), c["fate"]
        else:
            if c["score"] < thr: assert c["fate"] == "below_threshold", c
            else: assert c["fate"] in ("kept", "not_best", "duplicate", "near_duplicate", "empty"), c
        if c["fate"] in ("kept", "chosen"): kept.add((j["seed_id"], c["candidate"]))
    if task == "dpo":
        f = {c["fate"] for c in j["candidates"]}
        assert ("chosen" in f) == ("rejected" in f) == (j["kept"] == 1), j
    if best_of: assert j["kept"] <= 1, j
    if task != "dpo":
        top = max([c["score"] for c in scored if c["fate"] not in ("empty",)] or [0])
        if best_of and top >= thr and not any(c["fate"] in ("duplicate", "near_duplicate") for c in scored):
            assert j["kept"] == 1, j
got = set()
for o in outs:
    m = o["sdg"]
    assert m["seed_id"] in ids
    if task == "dpo":
        assert set(o) in ({"prompt", "chosen", "rejected", "sdg"}, {"messages", "chosen", "rejected", "sdg"}), o.keys()
        assert isinstance(o["chosen"], str) and isinstance(o["rejected"], str)
        assert m["chosen_score"] > m["rejected_score"] and m["chosen_score"] >= thr, m
        got.add((m["seed_id"], m["chosen_candidate"]))
    else:
        assert set(o) == {"messages", "sdg"}, o.keys()
        msgs = o["messages"]
        assert msgs[-1]["role"] == "assistant" and msgs[-1]["content"].strip() and msgs[-2]["role"] == "user", msgs
        assert m["score"] >= thr
        got.add((m["seed_id"], m["candidate"]))
assert len(got) == len(outs), "an example written twice"
assert got == kept, f"output {sorted(got)} != kept in the journal {sorted(kept)}"
print(f"{task}: {n_seeds} seeds, {sum(len(j['candidates']) for j in jrs)} candidates, {len(outs)} examples")
EOF2
}
check sft "$TMP/sft.jsonl" "$TMP/sft.judged.jsonl" 4 0 12 || die "sft output / journal"
grep -q '"role":"system","content":"Be brief."' "$TMP/sft.jsonl" "$TMP/sft.judged.jsonl" 2>/dev/null ||
    python3 -c "import json,sys; [sys.exit(0) for l in open('$TMP/sft.judged.jsonl') if json.loads(l)['seed_id']=='multi' and json.loads(l)['kept']==0]; sys.exit(1)" ||
    die "the multi-turn seed's system message is not in its examples"
[ -s "$TMP/sft.jsonl" ] || die "sft kept nothing"
"$HERD" train -m "$MODEL" --data "$TMP/sft.jsonl" --objective sft --method lora --steps 1 -t 2 --out "$TMP/sft.gguf" \
    >"$TMP/t.log" 2>&1 || { cat "$TMP/t.log"; die "herd train --objective sft refused sdg's output"; }

# ---- dpo: pairs best vs worst; herd train accepts them ----
"${S[@]}" --seeds "$TMP/seeds.jsonl" -o "$TMP/dpo.jsonl" --task dpo -k 4 --threshold 1 --judge-temp 1 --parallel 4 \
    2>"$TMP/dpo.err" || { cat "$TMP/dpo.err"; die "herd sdg --task dpo failed"; }
check dpo "$TMP/dpo.jsonl" "$TMP/dpo.judged.jsonl" 1 0 12 || die "dpo output / journal"
[ -s "$TMP/dpo.jsonl" ] || die "dpo paired nothing"
"$HERD" train -m "$MODEL" --data "$TMP/dpo.jsonl" --objective dpo --method lora --steps 1 -t 2 --out "$TMP/dpo.gguf" \
    >"$TMP/t.log" 2>&1 || { cat "$TMP/t.log"; die "herd train --objective dpo refused sdg's pairs"; }

# ---- a separate judge model (its own engine and loopback server) ----
JUDGE=$PWD/build/test-models/sdg-judge-tiny31-q8_0.gguf
if [ ! -f "$JUDGE" ]; then
    "$HERD" synth --vocab "$VOCAB31" -o "$JUDGE.tmp.$$" --shape tiny --type q8_0 --output-type q8_0 --seed 6 \
        --name sdg-judge >/dev/null || die "herd synth (judge) failed"
    mv "$JUDGE.tmp.$$" "$JUDGE"
fi
head -4 "$TMP/seeds.jsonl" >"$TMP/four.jsonl"
"${S[@]}" --seeds "$TMP/four.jsonl" --judge "$JUDGE" -o "$TMP/j.jsonl" -k 2 --threshold 1 --parallel 2 2>"$TMP/j.err" ||
    { cat "$TMP/j.err"; die "herd sdg --judge failed"; }
check sft "$TMP/j.jsonl" "$TMP/j.judged.jsonl" 1 0 4 || die "--judge output / journal"

# ---- cot --best-of with the default (greedy) judge ----
"${S[@]}" --seeds "$TMP/seeds.jsonl" -o "$TMP/cot.jsonl" --task cot -k 2 --best-of --parallel 4 2>"$TMP/cot.err" ||
    { cat "$TMP/cot.err"; die "herd sdg --task cot failed"; }
check cot "$TMP/cot.jsonl" "$TMP/cot.judged.jsonl" 1 1 12 || die "cot output / journal"

# ---- dedupe: greedy candidates are identical (one kept per seed), two seeds with one prompt give one ----
printf '{"id": "a", "prompt": "Tell me a story."}\n{"id": "b", "prompt": "Tell me a story."}\n{"id": "c", "prompt": "Count to three."}\n' >"$TMP/dup.jsonl"
"${S[@]}" --seeds "$TMP/dup.jsonl" -o "$TMP/dup.out.jsonl" -k 3 --temp 0 --threshold 1 --parallel 1 2>"$TMP/dup.err" ||
    { cat "$TMP/dup.err"; die "herd sdg (dedupe) failed"; }
python3 - "$TMP/dup.out.jsonl" "$TMP/dup.out.judged.jsonl" <<'EOF2' || die "dedupe"
import json, sys
outs = [json.loads(l) for l in open(sys.argv[1])]
jr = {j["seed_id"]: j for j in map(json.loads, open(sys.argv[2]))}
assert sorted(o["sdg"]["seed_id"] for o in outs) == ["a", "c"], [o["sdg"] for o in outs]
for s, want in (("a", ["kept", "duplicate", "duplicate"]), ("b", ["duplicate"] * 3), ("c", ["kept", "duplicate", "duplicate"])):
    f = sorted((c["fate"] for c in jr[s]["candidates"]), key=lambda x: x != "kept")
    assert f == want, (s, f)
EOF2

# ---- qa from a document: token chunks, questions and answers ----
python3 - "$TMP/doc.md" <<'EOF2'
import random, sys
random.seed(3)
w = "the river city bread storm violin garden copper moon lamp tower bridge market north".split()
with open(sys.argv[1], "w") as f:
    f.write("# Field notes\n\n" + "\n\n".join(" ".join(random.choice(w) for _ in range(50)) + "." for _ in range(5)) + "\n")
EOF2
NTOK=$("$HERD" tokenize -m "$MODEL" --no-bos -f "$TMP/doc.md" | python3 -c "import json,sys; print(len(json.load(sys.stdin)))")
WANT=$(python3 -c "n=$NTOK; print(1 + max(0, -(-(n - 64) // 48)))")
"${S[@]}" --docs "$TMP/doc.md" --chunk-tokens 64 --task qa -n 64 -o "$TMP/qa.jsonl" -k 2 --threshold 1 --parallel 4 \
    2>"$TMP/qa.err" || { cat "$TMP/qa.err"; die "herd sdg --task qa failed"; }
check qa "$TMP/qa.jsonl" "$TMP/qa.judged.jsonl" 1 0 "$WANT" || die "qa output / journal ($NTOK tokens, want $WANT chunks)"
python3 - "$TMP/qa.judged.jsonl" "$WANT" <<'EOF2' || die "qa seeds"
import json, sys
ids = sorted(json.loads(l)["seed_id"] for l in open(sys.argv[1]))
assert ids == sorted(f"doc.md#{i}" for i in range(int(sys.argv[2]))), ids
EOF2

# ---- kill -9 mid-run, a torn last line, rerun: every seed once; a finished job is a no-op ----
for _ in 1 2 3; do
    rm -f "$TMP/k.jsonl" "$TMP/k.judged.jsonl"
    "${S[@]}" --seeds "$TMP/many.txt" -o "$TMP/k.jsonl" -k 2 --threshold 1 --parallel 2 --fsync-interval 0 2>/dev/null &
    KPID=$!
    for _ in $(seq 3000); do
        [ "$( (wc -l <"$TMP/k.judged.jsonl") 2>/dev/null || echo 0)" -ge 4 ] && break
        kill -0 $KPID 2>/dev/null || break
        sleep 0.01
    done
    kill -9 $KPID 2>/dev/null && KILLED=1 || KILLED=0
    wait $KPID 2>/dev/null
    [ $KILLED = 1 ] && break
done
[ $KILLED = 1 ] || die "could not kill herd sdg mid-run (it finished first)"
[ "$(wc -l <"$TMP/k.judged.jsonl")" -lt 24 ] || die "the killed run had already done every seed"
printf '{"messages":[{"role":"user","content":"Question num' >>"$TMP/k.jsonl"
"${S[@]}" --seeds "$TMP/many.txt" -o "$TMP/k.jsonl" -k 2 --threshold 1 --parallel 4 2>"$TMP/k.err" ||
    { cat "$TMP/k.err"; die "the rerun failed"; }
grep -q "dropped a torn last line" "$TMP/k.err" || { cat "$TMP/k.err"; die "the torn line was not reported"; }
grep -q "24 seeds: [1-9][0-9]* skipped" "$TMP/k.err" || { cat "$TMP/k.err"; die "the rerun skipped nothing"; }
check sft "$TMP/k.jsonl" "$TMP/k.judged.jsonl" 1 0 24 || die "resumed output / journal"
cp "$TMP/k.jsonl" "$TMP/k.before"
"${S[@]}" --seeds "$TMP/many.txt" -o "$TMP/k.jsonl" -k 2 --threshold 1 2>"$TMP/k.err" || die "rerun of a finished job"
grep -q "24 seeds: 24 skipped" "$TMP/k.err" && cmp -s "$TMP/k.jsonl" "$TMP/k.before" || { cat "$TMP/k.err"; die "a finished job was not a no-op"; }

# ---- bad input: one error line, non-zero exit ----
bad() { # expected-text args...
    local want=$1
    shift
    "$HERD" sdg -m "$MODEL" -t 2 --no-progress "$@" >"$TMP/e.out" 2>"$TMP/e.err" && die "accepted: $*"
    [ "$(grep -c . "$TMP/e.err")" = 1 ] && grep -q "^herd sdg: error: .*$want" "$TMP/e.err" ||
        { cat "$TMP/e.err"; die "'$*': not one error line naming '$want'"; }
}
printf '{"prompt": "ok"}\n{"prompt": "unterminated\n' >"$TMP/bad1.jsonl"
bad "bad1.jsonl:2: not JSON" --seeds "$TMP/bad1.jsonl" -o "$TMP/x.jsonl"
printf '{"id": "x", "prompt": "a"}\n{"id": "x", "prompt": "b"}\n' >"$TMP/bad2.jsonl"
bad "seed id 'x' is used twice" --seeds "$TMP/bad2.jsonl" -o "$TMP/x.jsonl"
printf '{"promt": "a"}\n' >"$TMP/bad3.jsonl"
bad 'bad3.jsonl:1: unknown key "promt"' --seeds "$TMP/bad3.jsonl" -o "$TMP/x.jsonl"
bad "cannot read" --seeds "$TMP/missing.jsonl" -o "$TMP/x.jsonl"
bad "needs documents" --seeds "$TMP/seeds.jsonl" --task qa -o "$TMP/x.jsonl"
bad "needs -k 2" --seeds "$TMP/seeds.jsonl" --task dpo -k 1 -o "$TMP/x.jsonl"
bad "is not one of sft, dpo, qa, cot" --seeds "$TMP/seeds.jsonl" --task rlhf -o "$TMP/x.jsonl"
: >"$TMP/empty.md"
bad "the document is empty" --docs "$TMP/empty.md" --task qa -o "$TMP/x.jsonl"
bad "three different files" --seeds "$TMP/seeds.jsonl" -o "$TMP/seeds.jsonl"
[ ! -e "$TMP/x.jsonl" ] || die "a refused run created its output"
echo "sdg: ok"
