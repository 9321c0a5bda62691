#!/bin/bash
# The training data loader (src/train/data.h) against the CLI it promises to agree with, through
# build/tests/test_train_data --dump (the trainer's CLI is not needed):
#   sft  each conversation's tokens = `herd format --messages M --tokens --no-generation-prompt`
#        (with --tools / --builtin-tools when the line has them), and its targets detokenize
#        (`herd detokenize`) to the assistant bodies, each with its closing <|eot_id|> / <|eom_id|>;
#   dpo  chosen / rejected = herd format of prompt + response;
#   cpt  the first window = the first T + 1 ids of `herd tokenize -f FILE` (no separator, and a long
#        first document before one).
source tests/lib.sh
need_ref
[ -x "$HERD" ] || die "$HERD is not built"
DUMP=build/tests/test_train_data
[ -x "$DUMP" ] || die "$DUMP is not built"

cat >"$TMP/sft.jsonl" <<'JSONL'
{"messages": [{"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello! How can I help?"}]}

{"messages": [{"role": "system", "content": "  Be terse.\n"}, {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}, {"role": "user", "content": "And 3+3?"}, {"role": "assistant", "content": [{"type": "text", "text": "6, "}, {"type": "text", "text": "of course."}]}]}
{"messages": [{"role": "user", "content": "Weather in Paris?"}, {"role": "assistant", "content": null, "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\", \"days\": 2}"}}]}, {"role": "tool", "content": "{\"temp\": 21.5}"}, {"role": "assistant", "content": "21.5 degrees."}], "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Current weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city"]}}}]}
{"messages": [{"role": "system", "content": "You search."}, {"role": "user", "content": "Who won?"}, {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "brave_search", "arguments": {"query": "who won"}}}]}, {"role": "ipython", "content": "nobody"}, {"role": "assistant", "content": "Nobody won. 🎉 «ça»"}], "builtin_tools": ["brave_search", "wolfram_alpha"]}
{"messages": [{"role": "user", "content": "<|eot_id|> typed by a user stays text"}, {"role": "assistant", "content": "So does <|end_of_text|> here."}], "note": "unknown keys are ignored"}
JSONL
"$DUMP" --dump sft "$VOCAB31" "$TMP/sft.jsonl" 100000 >"$TMP/sft.out" || die "the loader failed on sft.jsonl"

cat >"$TMP/dpo.jsonl" <<'JSONL'
{"prompt": "Capital of France?", "chosen": "Paris.", "rejected": {"role": "assistant", "content": "Lyon."}}
{"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "2^10?"}], "chosen": [{"role": "assistant", "tool_calls": [{"function": {"name": "calc", "arguments": {"x": "2^10"}}}]}, {"role": "tool", "content": "1024"}, {"role": "assistant", "content": "1024"}], "rejected": "1000", "tools": [{"type": "function", "function": {"name": "calc", "parameters": {}}}]}
JSONL
"$DUMP" --dump dpo "$VOCAB31" "$TMP/dpo.jsonl" 100000 >"$TMP/dpo.out" || die "the loader failed on dpo.jsonl"

python3 - "$HERD" "$VOCAB31" "$TMP" <<'PY' || die "sft / dpo tokens differ from herd format"
import json, subprocess, sys
herd, vocab, tmp = sys.argv[1:]
bad = 0
def fmt(msgs, ex):
    json.dump(msgs, open(tmp + "/m.json", "w"))
    args = [herd, "format", "-m", vocab, "--messages", tmp + "/m.json", "--tokens", "--no-generation-prompt"]
    if "tools" in ex:
        json.dump(ex["tools"], open(tmp + "/t.json", "w"))
        args += ["--tools", tmp + "/t.json"]
    if "builtin_tools" in ex:
        args += ["--builtin-tools", ",".join(ex["builtin_tools"])]
    return json.loads(subprocess.check_output(args))
def detok(ids):
    return subprocess.check_output([herd, "detokenize", "-m", vocab, "--ids", json.dumps(ids)]).decode()
def body(m, builtin):
    if m.get("tool_calls"):
        f = m["tool_calls"][0]["function"]
        a = f["arguments"] if isinstance(f["arguments"], dict) else json.loads(f["arguments"])
        if builtin:
            return "<|python_tag|>%s.call(%s)<|eom_id|>" % (f["name"], ", ".join('%s="%s"' % kv for kv in a.items()))
        return json.dumps({"name": f["name"], "parameters": a}, ensure_ascii=False) + "<|eot_id|>"
    c = m["content"]
    c = c if isinstance(c, str) else "".join(p["text"] for p in c)
    return c.strip() + "<|eot_id|>"
n_checked = 0
def check(name, seq, msgs, ex, resp_from):
    global bad, n_checked
    n_checked += 1
    want = fmt(msgs, ex)
    if seq["tokens"] != want:
        print("%s: tokens differ from herd format\n got: %s\nwant: %s" % (name, seq["tokens"], want)); bad += 1
    got_t = detok([t for t, g in zip(seq["tokens"], seq["target"]) if g])
    want_t = "".join(body(m, "builtin_tools" in ex) for m in msgs[resp_from:] if m["role"] == "assistant")
    if got_t != want_t:
        print("%s: targets\n got: %r\nwant: %r" % (name, got_t, want_t)); bad += 1
lines = [(i + 1, json.loads(l)) for i, l in enumerate(open(tmp + "/sft.jsonl")) if l.strip()]
outs = [json.loads(l) for l in open(tmp + "/sft.out")]
if len(outs) != len(lines): print("sft: %d sequences for %d lines" % (len(outs), len(lines))); sys.exit(1)
for (ln, ex), seq in zip(lines, outs):
    if seq["line"] != ln: print("sft: line %d reported as %d" % (ln, seq["line"])); bad += 1
    check("sft line %d" % ln, seq, ex["messages"], ex, 0)
lines = [json.loads(l) for l in open(tmp + "/dpo.jsonl") if l.strip()]
outs = [json.loads(l) for l in open(tmp + "/dpo.out")]
if len(outs) != 2 * len(lines): print("dpo: %d sequences for %d pairs" % (len(outs), len(lines))); sys.exit(1)
def resp(r):
    return [{"role": "assistant", "content": r}] if isinstance(r, str) else [r] if isinstance(r, dict) else r
for i, ex in enumerate(lines):
    prompt = ex["messages"] if "messages" in ex else [{"role": "user", "content": ex["prompt"]}]
    for k, key in enumerate(("chosen", "rejected")):
        check("dpo %d %s" % (i + 1, key), outs[2 * i + k], prompt + resp(ex[key]), ex, len(prompt))
print("sft and dpo: %d sequences checked, %d differ" % (n_checked, bad))
sys.exit(1 if bad else 0)
PY

# cpt: the first window is the first T + 1 ids of herd tokenize -f FILE
printf 'Once upon a time, in a land far away, there lived a small herd of llamas.\nThey liked to count tokens.\n' >"$TMP/a.txt"
{ cat "$TMP/a.txt"; printf '<|end_of_text|>The second document.<|end_of_text|>\n'; } >"$TMP/b.txt"
for f in a b; do
    "$HERD" tokenize -m "$VOCAB31" -f "$TMP/$f.txt" >"$TMP/$f.ids" || die "herd tokenize $f.txt"
    for T in 1 7 16; do
        got=$("$DUMP" --dump cpt "$VOCAB31" "$TMP/$f.txt" $T | head -n 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["tokens"])')
        want=$(python3 -c "import json,sys; print(json.load(sys.stdin)[:$T + 1])" <"$TMP/$f.ids")
        [ "$got" = "$want" ] || die "cpt $f.txt T=$T: first window $got, herd tokenize $want"
    done
done
echo "cpt: first windows = herd tokenize"
