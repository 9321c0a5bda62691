#!/bin/bash
# herd eval --type code (HumanEval style) on a small random-weight model: each completion is herd's greedy
# output (`herd run --temp 0` with the same stops), prompt + completion + test + check(entry_point) runs in
# herd's sandbox, and pass@1 and every item's pass/fail are recomputed here by running the same programs
# with python3 (outside any sandbox); an endless loop is stopped by the sandbox's limits (a fail); a line
# without "test" is one error naming FILE:LINE.
source tests/lib.sh
need_ref
[ -x "$HERD" ] || die "$HERD is not built"
MODEL=$TMP/code-tiny.gguf
"$HERD" synth --vocab "$VOCAB31" -o "$MODEL" --shape tiny --type q8_0 --seed 7 --name code-tiny >/dev/null ||
    die "herd synth failed"
# the prompts end in a comment and generation stops at a newline, so a random model's completion is inert:
# the item's own code decides, and both outcomes occur
cat >"$TMP/code.jsonl" <<'J'
{"prompt": "def answer():\n    return 42\n\n# ", "test": "def check(f):\n    assert f() == 42\n", "entry_point": "answer"}
{"prompt": "def answer():\n    return 41\n\n# ", "test": "def check(f):\n    assert f() == 42\n", "entry_point": "answer"}

{"prompt": "import sys\n# ", "test": "sys.exit(3)\n"}
{"prompt": "def add(a, b):\n    return a + b\n# ", "test": "def check(f):\n    assert f(2, 3) == 5\n    assert f(-1, 1) == 0\n", "entry_point": "add"}
{"prompt": "def spin():\n    while True:\n        pass\n# ", "test": "def check(f):\n    f()\n", "entry_point": "spin"}
J
"$HERD" eval -m "$MODEL" --task "$TMP/code.jsonl" --type code --stop $'\n' -n 8 -t 2 --json "$TMP/out.json" \
    >"$TMP/table.txt" 2>"$TMP/err.txt"
rc=$?
grep -q "sandbox cannot run code" "$TMP/err.txt" && skip "the sandbox cannot run code here: $(cat "$TMP/err.txt")"
[ $rc -eq 0 ] || { cat "$TMP/err.txt"; die "herd eval --type code failed"; }
grep -q "|code.jsonl *|code *|pass@1 *|" "$TMP/table.txt" || { cat "$TMP/table.txt"; die "no pass@1 row"; }

python3 - "$TMP" "$HERD" "$MODEL" <<'PY' || die "pass@1 recomputed"
import json, subprocess, sys
tmp, herd, model = sys.argv[1:4]
items = [json.loads(l) for l in open(f"{tmp}/code.jsonl") if l.strip()]
doc = json.load(open(f"{tmp}/out.json"))
recs = doc["items"]
assert doc["type"] == "code" and doc["n"] == len(items) == len(recs), doc["n"]
passed = 0
for it, r in zip(items, recs):
    run = json.loads(subprocess.run([herd, "run", "-m", model, "-p", it["prompt"], "--temp", "0", "-n", "8",
                                     "--stop", "\n", "-t", "2", "--json"], capture_output=True, check=True).stdout)
    assert r["output"] == run["text"], (r["line"], r["output"], run["text"])
    prog = it["prompt"] + r["output"] + "\n" + it["test"] + (f"\ncheck({it['entry_point']})\n" if "entry_point" in it else "")
    if "spin" in it["prompt"]:
        ok = False  # runs forever: the sandbox's limits end it
        assert r["passed"] == 0 and (r["timed_out"] or r["exit_code"] != 0), r
    else:
        ok = subprocess.run(["python3", "-c", prog], capture_output=True, timeout=60).returncode == 0
    assert r["passed"] == int(ok), (r["line"], r, ok)
    passed += ok
assert [r["passed"] for r in recs] == [1, 0, 0, 1, 0], [r["passed"] for r in recs]
assert recs[2]["exit_code"] == 3 and "AssertionError" in recs[1]["stderr"], recs[1:3]
assert abs(doc["metrics"]["pass@1"] - passed / len(items)) < 1e-12, doc["metrics"]
print(f"ok   pass@1 = {passed}/{len(items)}, every item's verdict recomputed")
PY
[ $? -eq 0 ] || exit 1
printf '{"prompt": "def f():\\n", "entry_point": "f"}\n' >"$TMP/bad.jsonl"
"$HERD" eval -m "$MODEL" --task "$TMP/bad.jsonl" --type code 2>"$TMP/bad.err" && die "a line without test was accepted"
grep -q 'bad.jsonl:1: needs "test"' "$TMP/bad.err" || { cat "$TMP/bad.err"; die "no error naming FILE:LINE"; }
echo "eval_code: ok"
