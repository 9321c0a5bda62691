#!/bin/bash
# herd eval (docs/EVAL.md) on a small synthesized Llama 3.1 model (F32), every score recomputed here:
# - mc and mmlu: the continuation tokens as lm-evaluation-harness's _encode_pair makes them (`herd tokenize`),
#   the log-likelihoods from `herd logits` (every position of context + continuation) in numpy float64,
#   acc / acc_norm (Python len of the choice) and the MMLU prompt built here in the harness's format;
# - gen: each output equals `herd run --temp 0` on the same prompt, and the extracted answer / exact_match
#   equal the harness's flexible-extract regex and exact_match normalization (Python re);
# - bad task files: one error naming FILE:LINE, non-zero exit.
source tests/lib.sh
need_ref
[ -x "$HERD" ] || die "$HERD is not built"
/usr/bin/python3 -c "import numpy" 2>/dev/null || die "python3-numpy is needed (scripts/setup.sh installs it)"
MODEL=$PWD/build/test-models/eval-small31-f32.gguf
if [ ! -f "$MODEL" ]; then
    mkdir -p build/test-models
    "$HERD" synth --vocab "$VOCAB31" -o "$MODEL.tmp.$$" --shape tiny --n-embd 128 --n-head 4 --n-head-kv 2 --head-dim 32 --n-ff 384 --n-layer 2 --tied \
        --type f32 --output-type f32 --seed 7 \
        --name eval-tiny >/dev/null || die "herd synth failed"
    mv "$MODEL.tmp.$$" "$MODEL"
fi

/usr/bin/python3 - "$TMP" <<'EOF'
import json, sys
d = sys.argv[1]
def w(name, rows):
    with open(f"{d}/{name}", "w") as f:
        for r in rows: f.write((json.dumps(r, ensure_ascii=False) if not isinstance(r, str) else r) + "\n")
w("mc.jsonl", [
    {"question": "The cat sat on the", "choices": ["mat", "moon river", "café au lait"], "answer": 0},
    "",
    {"context": "2 + 2 = ", "choices": ["4", "five", "twenty-two"], "answer": 1},
    {"question": "Water boils at", "choices": ["100 degrees", "a low temperature", "naïve résumé"], "answer": 2},
    {"context": "Once upon a time\n", "choices": ["there was a king.", "x", "the end"], "answer": 0},
    {"question": "Pick a colour:", "choices": ["red", "green", "blue", "yellow"], "answer": 3},
])
w("mmlu_dev.jsonl", [
    {"question": "What is 1+1?", "choices": ["1", "2", "3", "4"], "answer": 1, "subject": "elementary_mathematics"},
    {"question": " Largest planet? ", "choices": ["Mars", "Venus", "Jupiter", "Earth"], "answer": 2, "subject": "astronomy"},
    {"question": "What is 3*3?", "choices": ["6", "9", "12", "33"], "answer": 1, "subject": "elementary_mathematics"},
    {"question": "Closest star?", "choices": ["Sun", "Vega", "Sirius", "Rigel"], "answer": 0, "subject": "astronomy"},
])
w("mmlu.jsonl", [
    {"question": "What is 5-2?", "choices": ["3", "2", "7", "1"], "answer": 0, "subject": "elementary_mathematics"},
    {"question": "Red planet?", "choices": ["Mars", "Venus", "Pluto", "Earth"], "answer": 0, "subject": "astronomy"},
])
w("gen.jsonl", [
    {"question": "Question: Tom has 3 apples and buys 4 more. How many apples?\nAnswer:", "answer": "3 + 4 = 7\n#### 7"},
    {"prompt": "Question: 12 * 10 = ?\nAnswer:", "answer": 120},
    {"question": "The numbers 1, 2, 3 and 4 sum to", "answer": "$1,0."},
])
EOF

E=("$HERD" eval -m "$MODEL" -t 2 -c 512 --no-progress)
"${E[@]}" --task "$TMP/mc.jsonl" --json "$TMP/mc.json" >"$TMP/mc.out" 2>&1 || { cat "$TMP/mc.out"; die "herd eval mc failed"; }
grep -q "|acc_norm " "$TMP/mc.out" || { cat "$TMP/mc.out"; die "no summary table"; }
"${E[@]}" --task "$TMP/mmlu.jsonl" --type mmlu --fewshot "$TMP/mmlu_dev.jsonl" --num-fewshot 2 --json "$TMP/mmlu.json" \
    >"$TMP/mmlu.out" 2>&1 || { cat "$TMP/mmlu.out"; die "herd eval mmlu failed"; }
"${E[@]}" --task "$TMP/gen.jsonl" --type gen --max-tokens 24 --stop "Question:" --json "$TMP/gen.json" \
    >"$TMP/gen.out" 2>&1 || { cat "$TMP/gen.out"; die "herd eval gen failed"; }
"${E[@]}" --task "$TMP/gen.jsonl" --type gen --chat --limit 2 --max-tokens 24 --json "$TMP/chat.json" \
    >"$TMP/chat.out" 2>&1 || { cat "$TMP/chat.out"; die "herd eval gen --chat failed"; }
"${E[@]}" --task "$TMP/mc.jsonl" --limit 2 --json "$TMP/lim.json" >/dev/null 2>&1 || die "herd eval --limit failed"

HERD="$HERD" MODEL="$MODEL" /usr/bin/python3 - "$TMP" <<'EOF' || die "scores differ"
import json, os, re, subprocess, sys
import numpy as np
d, herd, model = sys.argv[1], os.environ["HERD"], os.environ["MODEL"]
def tok(text):
    return json.loads(subprocess.check_output([herd, "tokenize", "-m", model, "-p", text]))
def logits(ids):
    out = f"{d}/l.bin"
    subprocess.check_call([herd, "logits", "-m", model, "--prompt-ids", json.dumps(ids), "-o", out, "-t", "2", "-c", "512"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return np.fromfile(out, dtype=np.float32).reshape(len(ids), -1).astype(np.float64)
def loglikelihood(context, continuation):   # lm-eval's _encode_pair + loglikelihood (BOS from tokenize)
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole, ctx = tok(context + continuation), tok(context)
    cont = whole[len(ctx):]
    l = logits(ctx + cont)
    ll = 0.0
    for j, t in enumerate(cont):
        row = l[len(ctx) - 1 + j]
        m = row.max()
        ll += row[t] - m - np.log(np.exp(row - m).sum())
    return ll, len(cont)
fails = 0
def check_mc(docs, contexts, choice_lists, res, label):
    global fails
    accs, norms = [], []
    for i, (doc, ctx, chs) in enumerate(zip(docs, contexts, choice_lists)):
        rec = res["items"][i]
        lls, ns = zip(*[loglikelihood(ctx, " " + c) for c in chs])
        if list(ns) != rec["n_tokens"]:
            print(f"{label} item {i}: continuation lengths {rec['n_tokens']} != {list(ns)}"); fails += 1
        err = max(abs(a - b) for a, b in zip(lls, rec["loglikelihoods"]))
        if err > 2e-3:
            print(f"{label} item {i}: loglikelihoods {rec['loglikelihoods']} != {lls}"); fails += 1
        pred = int(np.argmax(lls)); pred_norm = int(np.argmax(np.array(lls) / np.array([float(len(c)) for c in chs])))
        if (pred, pred_norm) != (rec["pred"], rec["pred_norm"]):
            print(f"{label} item {i}: pred {rec['pred']},{rec['pred_norm']} != {pred},{pred_norm}"); fails += 1
        accs.append(pred == doc["answer"]); norms.append(pred_norm == doc["answer"])
    for k, v in (("acc", np.mean(accs)), ("acc_norm", np.mean(norms))):
        if abs(res["metrics"][k] - v) > 1e-12:
            print(f"{label}: {k} {res['metrics'][k]} != {v}"); fails += 1
    print(f"{label}: {len(docs)} items, acc {np.mean(accs):.3f} acc_norm {np.mean(norms):.3f} recomputed")
def load(name):
    return [json.loads(l) for l in open(f"{d}/{name}") if l.strip()]

mc = load("mc.jsonl")
check_mc(mc, [x.get("question", x.get("context")) for x in mc], [x["choices"] for x in mc], json.load(open(f"{d}/mc.json")), "mc")
lim = json.load(open(f"{d}/lim.json"))
if lim["n"] != 2 or len(lim["items"]) != 2: print("--limit 2 scored", lim["n"]); fails += 1

# the harness's mmlu format (default template): description, shots of the same subject, "Answer:", letters
def doc_text(x):
    return x["question"].strip() + "\n" + "".join(f"{'ABCD'[k]}. {c}\n" for k, c in enumerate(x["choices"])) + "Answer:"
dev, mm = load("mmlu_dev.jsonl"), load("mmlu.jsonl")
prompts = []
for x in mm:
    p = f"The following are multiple choice questions (with answers) about {x['subject'].replace('_', ' ')}.\n\n"
    for s in [s for s in dev if s["subject"] == x["subject"]][:2]:
        p += doc_text(s) + " " + "ABCD"[s["answer"]] + "\n\n"
    prompts.append(p + doc_text(x))
check_mc(mm, prompts, [list("ABCD")] * len(mm), json.load(open(f"{d}/mmlu.json")), "mmlu")

# gen: herd run's greedy output, the harness's flexible-extract and exact_match normalization
def extract(text):
    m = re.findall(r"(-?[$0-9.,]{2,})|(-?[0-9]+)", text)
    if not m: return "[invalid]"
    m = m[-1]
    return [x for x in m if x][0].strip()
def norm(s):
    for r in [",", "\\$", "(?s).*#### ", "\\.$"]: s = re.sub(r, "", s)
    return s.lower()
gen = load("gen.jsonl"); res = json.load(open(f"{d}/gen.json"))
ems = []
for i, x in enumerate(gen):
    rec = res["items"][i]
    prompt = x.get("question", x.get("prompt"))
    out = json.loads(subprocess.check_output([herd, "run", "-m", model, "-p", prompt, "--no-special", "--temp", "0", "-n", "24",
                                              "--stop", "Question:", "--json", "-t", "2", "-c", "512"], stderr=subprocess.DEVNULL))["text"]
    if out != rec["output"]: print(f"gen item {i}: output {rec['output']!r} != herd run {out!r}"); fails += 1
    ex = extract(out); tgt = norm(str(x["answer"])); em = int(norm(ex) == tgt)
    if (ex, tgt, em) != (rec["extracted"], rec["target"], rec["exact_match"]):
        print(f"gen item {i}: {rec['extracted']!r} {rec['target']!r} {rec['exact_match']} != {ex!r} {tgt!r} {em}"); fails += 1
    ems.append(em)
if abs(res["metrics"]["exact_match"] - np.mean(ems)) > 1e-12: print("gen exact_match", res["metrics"]["exact_match"]); fails += 1
print(f"gen: {len(gen)} items, outputs equal herd run's, exact_match {np.mean(ems):.3f} recomputed")
# --chat: the prompt is the chat template's (herd format --tokens), the output herd run's on those ids
res = json.load(open(f"{d}/chat.json"))
for i, x in enumerate(gen[:2]):
    msgs = f"{d}/msgs.json"
    json.dump([{"role": "user", "content": x.get("question", x.get("prompt"))}], open(msgs, "w"))
    ids = subprocess.check_output([herd, "format", "-m", model, "--messages", msgs, "--tokens"]).decode().strip()
    out = json.loads(subprocess.check_output([herd, "run", "-m", model, "--prompt-ids", ids, "--temp", "0", "-n", "24", "--json",
                                              "-t", "2", "-c", "512"], stderr=subprocess.DEVNULL))["text"]
    if out != res["items"][i]["output"]: print(f"chat item {i}: {res['items'][i]['output']!r} != {out!r}"); fails += 1
if res["n"] != 2: print("chat --limit 2 scored", res["n"]); fails += 1
print("gen --chat: outputs equal herd run's on the chat template's ids")
sys.exit(1 if fails else 0)
EOF

# ---- bad task files: one error naming the file and line ----
bad() { # name, type, content, expected text
    printf '%s\n' "$3" >"$TMP/$1.jsonl"
    if "${E[@]}" --task "$TMP/$1.jsonl" --type "$2" >"$TMP/bad.out" 2>&1; then die "$1: accepted"; fi
    grep -q "$1.jsonl:$4" "$TMP/bad.out" || { cat "$TMP/bad.out"; die "$1: the error does not say '$1.jsonl:$4'"; }
    [ "$(grep -c . "$TMP/bad.out")" -eq 1 ] || { cat "$TMP/bad.out"; die "$1: more than one error line"; }
}
bad malformed mc $'{"question": "a", "choices": ["x"], "answer": 0}\n{"question": "b", "choices": ["x"' "2: malformed JSON"
bad range mc $'\n{"question": "a", "choices": ["x", "y"], "answer": 2}' "2: answer 2 out of range"
bad empty mc '{"question": "a", "choices": [], "answer": 0}' '1: "choices" is empty'
bad noans mc '{"question": "a", "choices": ["x"]}' '1: needs "answer"'
bad noq gen '{"answer": "1"}' '1: needs "question" or "prompt"'
bad mmlu3 mmlu '{"question": "a", "choices": ["x", "y", "z"], "answer": 0}' '1: mmlu needs 4 choices'
bad long mc "{\"question\": \"$(printf 'word %.0s' {1..600})\", \"choices\": [\"x\"], \"answer\": 0}" "1: context of"
bad longgen gen "{\"question\": \"$(printf 'word %.0s' {1..600})\", \"answer\": 1}" "1: prompt of"
echo "ok: herd eval mc / mmlu / gen scores recomputed; bad task files rejected by line"
