#!/bin/bash
# herd serve /v1/completions with echo + logprobs (prompt log-probs, as OpenAI's legacy completions and vLLM
# return them; what lm-evaluation-harness's local-completions loglikelihood reads) on a small random-weight
# F32 Llama 3.1 model: tokens / token_logprobs (null first) / top_logprobs / text_offset of every prompt
# token, equal to the log-softmax of `herd logits` rows for the same ids (numpy float64), the top
# alternatives the highest logits, the generated token after them; the same in a stream's first chunk; a
# text prompt gives its tokens (BOS first) and offsets into the echoed text; too long a prompt: 400.
source tests/lib.sh
need_ref
[ -x "$HERD" ] || die "$HERD is not built"
/usr/bin/python3 -c "import numpy" 2>/dev/null || die "python3-numpy is needed (scripts/setup.sh installs it)"
command -v curl >/dev/null || die "curl is needed"
MODEL=$TMP/echo-f32.gguf
"$HERD" synth --vocab "$VOCAB31" -o "$MODEL" --shape tiny --type f32 --seed 21 --name echo-f32 >/dev/null ||
    die "herd synth failed"
IDS='[128000, 791, 4062, 14198, 39935, 35308, 927, 279, 16053, 5679, 13, 578, 5679, 374, 17551, 1131, 720, 9906, 1917, 0, 12, 220, 16, 17, 18, 11, 3000, 1174, 6586, 30, 1226, 1587, 1202, 19]'
"$HERD" logits -m "$MODEL" --prompt-ids "$IDS" -o "$TMP/logits.f32" -t 2 -c 256 2>"$TMP/logits.err" ||
    { cat "$TMP/logits.err"; die "herd logits failed"; }

"$HERD" serve -m "$MODEL" --port 0 -c 256 --parallel 1 -t 2 --alias echo >"$TMP/port" 2>"$TMP/serve.err" &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$TMP"' EXIT
for _ in $(seq 200); do [ -s "$TMP/port" ] && break; sleep 0.1; done
PORT=$(head -1 "$TMP/port")
[ -n "$PORT" ] || { cat "$TMP/serve.err"; die "herd serve did not start"; }
B=http://127.0.0.1:$PORT
for _ in $(seq 100); do curl -sf "$B/health" >/dev/null && break; sleep 0.1; done
post() { curl -s -w '\n%{http_code}' "$B/v1/completions" -H 'Content-Type: application/json' -d "$1"; }
post "{\"prompt\": $IDS, \"echo\": true, \"logprobs\": 3, \"max_tokens\": 1, \"temperature\": 0}" >"$TMP/ids.json"
post "{\"prompt\": $IDS, \"echo\": true, \"logprobs\": 2, \"max_tokens\": 2, \"temperature\": 0, \"stream\": true}" >"$TMP/stream.txt"
post '{"prompt": "The quick brown fox, 12 jumps! Über café 東京.", "echo": true, "logprobs": 1, "max_tokens": 1, "temperature": 0}' >"$TMP/text.json"
post "{\"prompt\": \"$(printf 'word %.0s' $(seq 300))\", \"echo\": true, \"logprobs\": 1, \"max_tokens\": 1}" >"$TMP/long.json"
curl -s "$B/v1/completions" -H 'Content-Type: application/json' \
    -d "{\"prompt\": $IDS, \"max_tokens\": 1, \"temperature\": 0, \"logprobs\": 1}" >"$TMP/plain.json"

/usr/bin/python3 - "$TMP" "$IDS" "$MODEL" "$HERD" <<'PY' || die "prompt logprobs"
import json, subprocess, sys
import numpy as np
tmp, ids, model, herd = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
def resp(p):
    body, code = open(p).read().rsplit("\n", 1)
    return int(code), body
n = len(ids)
L = np.fromfile(f"{tmp}/logits.f32", dtype=np.float32).reshape(n, -1).astype(np.float64)
lsm = L - (L.max(1, keepdims=True) + np.log(np.exp(L - L.max(1, keepdims=True)).sum(1, keepdims=True)))
code, body = resp(f"{tmp}/ids.json")
assert code == 200, body
o = json.loads(body); c = o["choices"][0]; lp = c["logprobs"]
assert set(lp) == {"tokens", "token_logprobs", "top_logprobs", "text_offset"}, lp.keys()
assert all(len(lp[k]) == n + 1 for k in lp), [len(v) for v in lp.values()]  # the prompt, then the generated token
assert lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None
worst = 0
for i in range(1, n):
    want = lsm[i - 1, ids[i]]
    worst = max(worst, abs(lp["token_logprobs"][i] - want))
    top = lp["top_logprobs"][i]
    best = np.argsort(-L[i - 1], kind="stable")[:3]
    assert len(top) <= 3 and abs(max(top.values()) - lsm[i - 1, best[0]]) < 1e-5, (i, top)
    assert len(top) == 3 and np.allclose(sorted(top.values()), sorted(lsm[i - 1, best]), atol=1e-5), (i, top)
assert worst < 1e-5, f"prompt logprobs differ from herd logits by {worst}"
# the generated token: greedy from the last row, its logprob that row's
g = int(np.argmax(L[n - 1]))
assert abs(lp["token_logprobs"][n] - lsm[n - 1, g]) < 1e-5, (lp["token_logprobs"][n], lsm[n - 1, g])
text = c["text"]
for i in range(n + 1):
    t, off = lp["tokens"][i], lp["text_offset"][i]
    assert text.encode()[off:off + len(t.encode())] == t.encode() or "\ufffd" in t, (i, t, off)
assert o["usage"]["prompt_tokens"] == n and o["usage"]["completion_tokens"] == 1, o["usage"]
# lm-evaluation-harness: loglikelihood of the continuation = sum(token_logprobs[ctxlen:-1])
ctxlen = 10
ll = sum(lp["token_logprobs"][ctxlen:-1]); want = sum(lsm[i - 1, ids[i]] for i in range(ctxlen, n))
assert abs(ll - want) < 1e-4, (ll, want)
print(f"ok   echo+logprobs of {n} prompt tokens equal herd logits (max |diff| {worst:.2e})")

code, body = resp(f"{tmp}/stream.txt")
assert code == 200
chunks = [json.loads(l[6:]) for l in body.split("\n") if l.startswith("data: ") and l != "data: [DONE]"]
first = chunks[0]["choices"][0]["logprobs"]
assert len(first["token_logprobs"]) == n and first["token_logprobs"][0] is None
assert max(abs(first["token_logprobs"][i] - lp["token_logprobs"][i]) for i in range(1, n)) == 0
later = [ch["choices"][0]["logprobs"] for ch in chunks[1:] if ch["choices"] and ch["choices"][0].get("logprobs")]
assert later and later[0]["text_offset"][0] == len(chunks[0]["choices"][0]["text"].encode()), later[0]
print("ok   streamed: the first chunk carries the prompt's logprobs, then offsets continue after the echo")

code, body = resp(f"{tmp}/text.json")
assert code == 200, body
c = json.loads(body)["choices"][0]; lp = c["logprobs"]
prompt = "The quick brown fox, 12 jumps! Über café 東京."
toks = json.loads(subprocess.run([herd, "tokenize", "-m", model, "-p", prompt], capture_output=True, check=True).stdout)
assert len(lp["tokens"]) == len(toks) + 1 and lp["text_offset"][0] == 0 and lp["tokens"][0] == ""
assert c["text"].startswith(prompt), c["text"]
assert "".join(lp["tokens"][:len(toks)]) == prompt, lp["tokens"]
print("ok   a text prompt: BOS first, the pieces give the echoed text, offsets index it")

code, body = resp(f"{tmp}/long.json")
assert code == 400 and "context" in json.loads(body)["error"]["message"], (code, body)
print("ok   a prompt longer than the context: 400")
plain = json.load(open(f"{tmp}/plain.json"))["choices"][0]["logprobs"]
assert len(plain["tokens"]) == 1 and plain["text_offset"] == [0], plain  # no echo: the generated token only
PY
echo "serve_echo_logprobs: ok"
