#!/bin/bash
# herd batch (docs/BATCH.md) on a small synthesized Llama 3.1 model: the OpenAI Batch API output shapes;
# every body equal to what `herd serve` answers for the same request; --parallel 1 and 8 identical under
# greedy (ids, timestamps and the cached-token count aside); per-line errors for malformed JSON, unknown urls, wrong methods, oversized lines, duplicate
# custom_ids, stream: true; kill -9 mid-run (plus a torn last line) and a rerun give every custom_id
# exactly once with the same answers; a rerun of a finished job does nothing; herd batch --server against herd serve
# gives the same output as herd batch -m.
source tests/lib.sh
need_ref
[ -x "$HERD" ] || die "$HERD is not built"
command -v python3 >/dev/null || die "python3 is needed (scripts/setup.sh installs it)"
MODEL=$PWD/build/test-models/batch-tiny31-q8_0.gguf
if [ ! -f "$MODEL" ]; then
    mkdir -p build/test-models
    "$HERD" synth --vocab "$VOCAB31" -o "$MODEL.tmp.$$" --shape tiny --type q8_0 --output-type q8_0 --seed 5 \
        --name batch-tiny >/dev/null || die "herd synth failed"
    mv "$MODEL.tmp.$$" "$MODEL"
fi
MODEL_ID=batch-tiny31-q8_0

# ---- the job: 40 greedy requests of the three kinds, then the bad lines ----
python3 - "$TMP/in.jsonl" "$MODEL_ID" <<'EOF'
import json, sys
out, model = open(sys.argv[1], "w"), sys.argv[2]
words = ["cat", "river", "moon", "bread", "storm", "violin", "garden", "copper"]
def line(cid, url, body, method="POST"):
    out.write(json.dumps({"custom_id": cid, "method": method, "url": url, "body": body}) + "\n")
for i in range(40):
    w = words[i % len(words)]
    if i % 5 == 4:
        line(f"emb-{i}", "/v1/embeddings", {"input": [f"the {w}", f"a {w} {i}"], "model": model})
    elif i % 2 == 0:
        line(f"chat-{i}", "/v1/chat/completions",
             {"model": model, "temperature": 0, "max_tokens": 8 + i % 17, **({"logprobs": True, "top_logprobs": 2} if i % 4 == 0 else {}),
              "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"Tell me about the {w} #{i}."}]})
    else:
        line(f"cmpl-{i}", "/v1/completions", {"prompt": f"Once upon a time a {w} number {i}", "max_tokens": 5 + i % 13,
                                               "temperature": 0, "stop": ["\n\n"]})
# a request the server refuses (its 400 is the line's response)
line("bad-param", "/v1/completions", {"prompt": "x", "max_tokens": -5})
line("bad-model", "/v1/chat/completions", {"model": "nope", "messages": [{"role": "user", "content": "hi"}]})
# lines that are not requests
out.write("this is not json\n")
out.write('{"custom_id": "torn", "method": "POST", "url": "/v1/compl\n')
out.write('["an", "array"]\n')
out.write("\n")  # blank: ignored
line("dup", "/v1/completions", {"prompt": "first", "max_tokens": 3, "temperature": 0})
line("dup", "/v1/completions", {"prompt": "second", "max_tokens": 3, "temperature": 0})
line("get", "/v1/completions", {"prompt": "x"}, method="GET")
line("url", "/v1/images/generations", {"prompt": "x"})
line("stream", "/v1/completions", {"prompt": "x", "stream": True})
line("big", "/v1/completions", {"prompt": "word " * 2000, "max_tokens": 1})
out.write(json.dumps({"method": "POST", "url": "/v1/completions", "body": {"prompt": "x"}}) + "\n")
line("nobody", "/v1/completions", "a string")
EOF
N_IN=$(grep -c . "$TMP/in.jsonl")
B=("$HERD" batch -m "$MODEL" --input "$TMP/in.jsonl" -t 2 -c 4096 --max-body 8192 --no-progress)

"${B[@]}" --output "$TMP/p1.jsonl" --parallel 1 2>"$TMP/p1.err" || { cat "$TMP/p1.err"; die "herd batch --parallel 1 failed"; }
"${B[@]}" --output "$TMP/p8.jsonl" --parallel 8 --progress 2>"$TMP/p8.err" || { cat "$TMP/p8.err"; die "herd batch --parallel 8 failed"; }
grep -q "lines, .* tok/s, ETA" "$TMP/p8.err" || { cat "$TMP/p8.err"; die "--progress printed no progress line"; }

# ---- shapes, per-line errors, parallel 1 == parallel 8 ----
python3 - "$TMP/in.jsonl" "$TMP/p1.jsonl" "$TMP/p8.jsonl" <<'EOF' || die "output shapes / errors / --parallel"
import json, sys
inp = [l for l in open(sys.argv[1]) if l.strip()]
def load(p):
    rows = []
    for k, l in enumerate(open(p)):
        assert l.endswith("\n"), f"{p}:{k+1} not a whole line"
        o = json.loads(l)
        assert list(o) == ["id", "custom_id", "response", "error"], f"{p}:{k+1} keys {list(o)}"
        assert isinstance(o["id"], str) and o["id"].startswith("batch_req_"), o["id"]
        if o["error"] is None:
            r = o["response"]
            assert set(r) == {"status_code", "request_id", "body"}, r.keys()
            assert isinstance(r["status_code"], int) and r["request_id"].startswith("req_")
            assert isinstance(r["body"], dict)
        else:
            assert o["response"] is None and set(o["error"]) == {"code", "message"}, o
            assert o["error"]["message"], o
        rows.append(o)
    assert len(rows) == len(inp), f"{p}: {len(rows)} lines for {len(inp)} input lines"
    assert len({o["id"] for o in rows}) == len(rows), "ids not unique"
    return rows
def key(o):
    return o["id"].split("_")[2]  # the input line number
def strip(o):  # what may differ between runs: ids, timestamps
    o = json.loads(json.dumps(o)); o.pop("id")
    if o["response"]:
        o["response"].pop("request_id")
        b = o["response"]["body"]; b.pop("id", None); b.pop("created", None)
        b.get("usage", {}).pop("prompt_tokens_details", None)  # cached_tokens: which prefix a slot held
    return o
p1, p8 = load(sys.argv[2]), load(sys.argv[3])
a, b = {key(o): strip(o) for o in p1}, {key(o): strip(o) for o in p8}
assert a.keys() == b.keys()
for k in a:
    assert a[k] == b[k], f"line {k}: --parallel 1 and 8 differ:\n{a[k]}\n{b[k]}"
by = {}
for o in p1:
    by.setdefault(o["custom_id"], []).append(o)
ok = [c for c in by if c and c.split("-")[0] in ("chat", "cmpl", "emb")]
assert len(ok) == 40, len(ok)
for c in ok:
    r = by[c][0]["response"]
    assert r["status_code"] == 200, (c, r)
    body = r["body"]
    if c.startswith("chat"):
        assert body["object"] == "chat.completion" and body["choices"][0]["message"]["role"] == "assistant"
        assert body["usage"]["completion_tokens"] >= 1
    elif c.startswith("cmpl"):
        assert body["object"] == "text_completion" and isinstance(body["choices"][0]["text"], str)
    else:
        assert body["object"] == "list" and len(body["data"]) == 2 and len(body["data"][0]["embedding"]) > 0
def err(c, code, n=1):
    rows = [o for o in by.get(c, []) if o["error"]]
    assert len(rows) == n and all(o["error"]["code"] == code for o in rows), (c, by.get(c))
assert by["bad-param"][0]["response"]["status_code"] == 400 and "max_tokens" in json.dumps(by["bad-param"][0])
assert by["bad-model"][0]["response"]["status_code"] in (400, 404)
nulls = sorted(o["error"]["code"] for o in by[None])
assert nulls == ["invalid_json", "invalid_json", "invalid_request", "missing_custom_id"], nulls
assert len(by["dup"]) == 2 and by["dup"][0]["response"]["status_code"] == 200 if not by["dup"][0]["error"] else True
assert sum(1 for o in by["dup"] if o["error"] and o["error"]["code"] == "duplicate_custom_id") == 1
first = [o for o in by["dup"] if not o["error"]][0]
assert first["id"].split("_")[2] < [o for o in by["dup"] if o["error"]][0]["id"].split("_")[2], "the later dup must be the error"
err("get", "invalid_method"); err("url", "invalid_url"); err("stream", "invalid_body")
err("big", "request_too_large"); err("nobody", "invalid_body")
print("shapes, per-line errors, --parallel 1 == 8: ok")
EOF

# ---- every body equals herd serve's answer to the same request ----
"$HERD" serve -m "$MODEL" --port 0 --parallel 2 -t 2 -c 4096 >"$TMP/port" 2>"$TMP/serve.err" &
SPID=$!
for _ in $(seq 100); do [ -s "$TMP/port" ] && break; sleep 0.1; done
PORT=$(head -1 "$TMP/port")
[ -n "$PORT" ] || { kill $SPID; cat "$TMP/serve.err"; die "herd serve did not start"; }
python3 - "$TMP/in.jsonl" "$TMP/p1.jsonl" "$PORT" <<'EOF'
import json, sys, urllib.request, urllib.error
inp = [l for l in open(sys.argv[1]) if l.strip()]
rows = {int(o["id"].split("_")[2]): o for o in map(json.loads, open(sys.argv[2]))}
n = 0
for i, l in enumerate(inp):
    o = rows[i]
    if o["error"]: continue
    q = json.loads(l)
    req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[3]}{q['url']}", data=json.dumps(q["body"]).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r: status, body = r.status, json.load(r)
    except urllib.error.HTTPError as e: status, body = e.code, json.load(e)
    got = o["response"]
    assert got["status_code"] == status, (q["custom_id"], got["status_code"], status)
    for b in (body, got["body"]):
        b.pop("id", None); b.pop("created", None); b.get("usage", {}).pop("prompt_tokens_details", None)
    assert got["body"] == body, f"{q['custom_id']}: batch and serve differ:\n{got['body']}\n{body}"
    n += 1
assert n >= 43, n
print(f"{n} bodies equal to herd serve's: ok")
EOF
RC=$?
# the same job through herd batch --server against that server: the same output (the client is the same runner)
if [ $RC -eq 0 ]; then
    "$HERD" batch --server "http://127.0.0.1:$PORT/" --input "$TMP/in.jsonl" --output "$TMP/srv.jsonl" --parallel 2 \
        --max-body 8192 --no-progress 2>"$TMP/srv.err" || { cat "$TMP/srv.err"; RC=1; }
fi
[ $RC -eq 0 ] && python3 - "$TMP/p1.jsonl" "$TMP/srv.jsonl" <<'EOF'
import json, sys
def rows(p):
    out = {}
    for l in open(p):
        o = json.loads(l); k = o["id"].split("_")[2]; o.pop("id")
        if o["response"]:
            o["response"].pop("request_id"); b = o["response"]["body"]
            b.pop("id", None); b.pop("created", None); b.get("usage", {}).pop("prompt_tokens_details", None)
        out[k] = o
    return out
a, b = rows(sys.argv[1]), rows(sys.argv[2])
assert a.keys() == b.keys(), sorted(set(a) ^ set(b))
for k in a: assert a[k] == b[k], f"line {k}: herd batch -m and --server differ:\n{a[k]}\n{b[k]}"
print(f"herd batch --server: {len(b)} lines equal to herd batch -m's: ok")
EOF
RC=$?
kill $SPID; wait $SPID 2>/dev/null
[ $RC -eq 0 ] || die "batch bodies differ from herd serve's (or herd batch --server's from herd batch -m's)"

# ---- kill -9 mid-run, a torn last line, rerun: every line exactly once, same answers ----
for _ in 1 2 3; do
    rm -f "$TMP/k.jsonl"
    "${B[@]}" --output "$TMP/k.jsonl" --parallel 2 --fsync-interval 0 2>/dev/null &
    KPID=$!
    for _ in $(seq 3000); do
        [ "$( (wc -l <"$TMP/k.jsonl") 2>/dev/null || echo 0)" -ge 12 ] && break
        kill -0 $KPID 2>/dev/null || break
        sleep 0.01
    done
    kill -9 $KPID 2>/dev/null && KILLED=1 || KILLED=0
    wait $KPID 2>/dev/null
    [ $KILLED = 1 ] && break
done
[ $KILLED = 1 ] || die "could not kill herd batch mid-run (it finished first)"
DONE=$(wc -l <"$TMP/k.jsonl")
[ "$DONE" -lt "$N_IN" ] || die "the killed run had already written every line"
printf '{"id":"batch_req_0000000001_0123456789ab","custom_id":"cmpl-1","respo' >>"$TMP/k.jsonl"
"${B[@]}" --output "$TMP/k.jsonl" --parallel 4 2>"$TMP/k.err" || { cat "$TMP/k.err"; die "the rerun failed"; }
grep -q "dropped a torn last line" "$TMP/k.err" || { cat "$TMP/k.err"; die "the torn line was not reported"; }
grep -q "skipped" "$TMP/k.err" || die "no skip count"
python3 - "$TMP/p1.jsonl" "$TMP/k.jsonl" "$DONE" <<'EOF' || die "resume after kill -9"
import json, sys
def rows(p):
    out = {}
    for l in open(p):
        assert l.endswith("\n")
        o = json.loads(l); k = o["id"].split("_")[2]
        assert k not in out, f"line {k} ({o['custom_id']}) twice"
        o.pop("id")
        if o["response"]:
            o["response"].pop("request_id"); b = o["response"]["body"]
            b.pop("id", None); b.pop("created", None); b.get("usage", {}).pop("prompt_tokens_details", None)
        out[k] = o
    return out
a, b = rows(sys.argv[1]), rows(sys.argv[2])
assert a.keys() == b.keys(), (sorted(set(a) ^ set(b)))
for k in a: assert a[k] == b[k], f"line {k} differs after resume"
print(f"killed after {sys.argv[3]} lines, resumed: {len(b)} lines, each once, same answers: ok")
EOF
# a finished job: a rerun does nothing
cp "$TMP/k.jsonl" "$TMP/k2.jsonl"
"${B[@]}" --output "$TMP/k.jsonl" 2>"$TMP/k.err" || die "rerun of a finished job failed"
cmp -s "$TMP/k.jsonl" "$TMP/k2.jsonl" || die "a rerun of a finished job changed the output"
grep -q "$N_IN skipped" "$TMP/k.err" || { cat "$TMP/k.err"; die "a finished job was not skipped whole"; }

# ---- bad invocations: one error line, non-zero exit ----
"$HERD" batch -m "$MODEL" --input "$TMP/missing.jsonl" --output "$TMP/x.jsonl" 2>"$TMP/e" && die "missing input accepted"
grep -q "missing.jsonl" "$TMP/e" || die "the error does not name the missing file"
"$HERD" batch -m "$MODEL" --input "$TMP/in.jsonl" 2>/dev/null && die "no --output accepted"
"$HERD" batch --input "$TMP/in.jsonl" --output "$TMP/x.jsonl" 2>/dev/null && die "no -m accepted"
"$HERD" batch -m "$MODEL" --server http://127.0.0.1:1 --input "$TMP/in.jsonl" --output "$TMP/x.jsonl" 2>"$TMP/e" &&
    die "-m and --server together accepted"
grep -q "not both" "$TMP/e" || die "-m with --server: no clear error"
"$HERD" batch --server localhost:8080 --input "$TMP/in.jsonl" --output "$TMP/x.jsonl" 2>"$TMP/e" && die "a bad --server URL accepted"
grep -q "needs a URL" "$TMP/e" || die "a bad --server URL: no clear error"
echo "batch: ok"
