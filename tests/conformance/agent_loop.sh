#!/bin/bash
# The agent loop of `herd chat --tools` on a scripted model (--test-script forces the generated
# tokens): the model calls brave_search (answered by a loopback fake of Brave's API, which checks the
# key header and the query), then python (run in the real sandbox), then answers. The final prompt
# (--dump-prompt) must equal the official Llama 3.1 template rendered by @huggingface/jinja over the
# same messages, with the exact ipython turns. Also: wolfram_alpha against a fake, a missing API key,
# an API that answers 500, one that never answers (--tool-timeout), custom functions (one-shot: the
# call is the answer; interactive: the user types the result), --max-steps, and bad options.
source tests/lib.sh
need_ref
[ -x "$HERD" ] || die "$HERD is not built"
command -v python3 >/dev/null || die "python3 is needed (scripts/setup.sh installs it)"
TEMPLATE=$REF/llama.cpp/templates/meta-llama-Llama-3.1-8B-Instruct.jinja
MODEL=$PWD/build/test-models/agent-tiny31-q8_0.gguf
if [ ! -f "$MODEL" ]; then
    mkdir -p build/test-models
    "$HERD" synth --vocab "$VOCAB31" -o "$MODEL.tmp.$$" --shape tiny --type q8_0 --output-type q8_0 --seed 11 \
        --name agent-tiny >/dev/null || die "herd synth failed"
    mv "$MODEL.tmp.$$" "$MODEL"
fi

# ---- a fake of Brave's and Wolfram|Alpha's APIs on a free loopback port ----
cat >"$TMP/fake.py" <<'EOF'
import json, sys, time, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
log = open(sys.argv[1], "a")
BRAVE = {"type": "search", "web": {"results": [
    {"title": "Paris - Wikipedia", "url": "https://en.wikipedia.org/wiki/Paris", "description": "Paris has 2,102,650 inhabitants.", "age": "x"},
    {"title": "Paris population", "url": "https://example.org/paris", "description": "About 2.1 million people."},
    {"title": "INSEE", "url": "https://insee.fr/paris", "description": "Official statistics \"quoted\"."},
    {"title": "Fourth", "url": "https://example.org/4", "description": "Not in the top 3."}]}}
WOLFRAM = {"queryresult": {"success": True, "pods": [
    {"title": "Input interpretation", "subpods": [{"plaintext": "integrate x^2 dx"}]},
    {"title": "Indefinite integral", "subpods": [{"plaintext": "x^3/3 + constant"}, {"plaintext": ""}]},
    {"title": "Plot", "subpods": [{"plaintext": ""}]}]}}
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        log.write(json.dumps({"path": u.path, "query": urllib.parse.parse_qs(u.query),
                              "token": self.headers.get("X-Subscription-Token")}) + "\n"); log.flush()
        if u.path == "/hang":
            time.sleep(60); return
        code, body = 200, {}
        if u.path == "/res/v1/web/search": body = BRAVE
        elif u.path == "/v2/query": body = WOLFRAM
        else: code, body = 500, {"error": "internal"}
        data = json.dumps(body).encode()
        self.send_response(code); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data))); self.end_headers(); self.wfile.write(data)
s = ThreadingHTTPServer(("127.0.0.1", 0), H)
s.daemon_threads = True
print(s.server_address[1], flush=True)
s.serve_forever()
EOF
python3 "$TMP/fake.py" "$TMP/requests.jsonl" >"$TMP/port" &
FAKE=$!
trap 'kill $FAKE 2>/dev/null; rm -rf "$TMP"' EXIT
for _ in $(seq 100); do [ -s "$TMP/port" ] && break; sleep 0.1; done
PORT=$(cat "$TMP/port")
[ -n "$PORT" ] || die "the fake API server did not start"
BASE=http://127.0.0.1:$PORT

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok   $*"; }

# chat NAME SCRIPT_JSON [herd chat options...]: runs one scripted conversation, output in $TMP/NAME.*
chat() {
    local name=$1 script=$2; shift 2
    printf '%s' "$script" >"$TMP/$name.script.json"
    timeout 120 "$HERD" chat -m "$MODEL" --no-stats --test-script "$TMP/$name.script.json" \
        --dump-prompt "$TMP/$name.prompt" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err"
}

# ---- 0. can this machine run the code sandbox? (it refuses when it cannot contain the code) ----
chat probe '["<|python_tag|>print(1)<|eom_id|>", "x<|eot_id|>"]' --tools code_interpreter -p "probe"
CODE_RESULT='completed\n[stdout]\n1024\n\n[/stdout]'
SANDBOX=yes
if grep -q '^error: sandbox unavailable' "$TMP/probe.out"; then
    SANDBOX=no
    CODE_RESULT=$(sed -n 's/^\(error: sandbox unavailable.*\)$/\1/p' "$TMP/probe.out")
    echo "note: the code sandbox is unavailable here (see test_sandbox); the loop is checked with its refusal: $CODE_RESULT"
fi

# ---- 1. the full loop: brave_search -> python -> answer ----
Q="population of Paris"
SCRIPT='["<|python_tag|>brave_search.call(query=\"population of Paris\")<|eom_id|>",
 "<|python_tag|>x = 2**10\nprint(x)<|eom_id|>",
 "Paris has about 2.1 million inhabitants, and 2**10 is 1024.<|eot_id|>"]'
BRAVE_API_KEY=test-key-123 HERD_BRAVE_URL=$BASE/res/v1/web/search \
    chat loop "$SCRIPT" --tools brave_search,code_interpreter -p "How many people live in Paris, and what is 2**10?"
[ $? -eq 0 ] || fail "herd chat (full loop) failed: $(cat "$TMP/loop.err")"
grep -q '^\[tool call\] brave_search {"query":"population of Paris"}' "$TMP/loop.out" &&
    grep -q '^\[tool call\] code_interpreter ' "$TMP/loop.out" && grep -q '^\[tool result\] code_interpreter' "$TMP/loop.out" &&
    grep -q '^Paris has about 2.1 million inhabitants, and 2\*\*10 is 1024.$' "$TMP/loop.out" &&
    ok "the calls, their results and the answer are shown as they happen" || fail "chat output: $(cat "$TMP/loop.out")"
python3 - "$TMP/requests.jsonl" <<'EOF' && ok "the search request carried the key header, the query and count=3" || fail "search request: $(cat "$TMP/requests.jsonl")"
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
b = [x for x in r if x["path"] == "/res/v1/web/search"]
assert len(b) == 1 and b[0]["token"] == "test-key-123" and b[0]["query"]["q"] == ["population of Paris"] and b[0]["query"]["count"] == ["3"], r
EOF

# the expected prompt: the official template over the same messages (tool call arguments as objects)
ln -sfn "$REF/node_modules" "$TMP/node_modules"
cat >"$TMP/render.mjs" <<'EOF'
import {Template} from "@huggingface/jinja";
import fs from "node:fs";
const [tmplPath, msgsPath] = process.argv.slice(2);
// @huggingface/jinja has no `reject` filter: the one expression that uses it is replaced by an
// equivalent loop (as tests/ref/chat_template.mjs does); the rest of the template is verbatim
const REJECT = `{{- "Tools: " + builtin_tools | reject('equalto', 'code_interpreter') | join(", ") + "\\n\\n"}}`;
const EQUIV = `{{- "Tools: " }}{%- for t in builtin_tools if t != 'code_interpreter' %}{{- t }}` +
    `{%- if not loop.last %}{{- ", " }}{%- endif %}{%- endfor %}{{- "\\n\\n" }}`;
const src = fs.readFileSync(tmplPath, "utf8");
if (!src.includes(REJECT)) { console.error("the template's reject expression was not found"); process.exit(1); }
const c = JSON.parse(fs.readFileSync(msgsPath, "utf8"));
process.stdout.write(new Template(src.replace(REJECT, EQUIV)).render({bos_token: "<|begin_of_text|>", ...c}));
EOF
BRAVE_RESULT='{"query":"population of Paris","top_k":[{"title":"Paris - Wikipedia","url":"https://en.wikipedia.org/wiki/Paris","description":"Paris has 2,102,650 inhabitants."},{"title":"Paris population","url":"https://example.org/paris","description":"About 2.1 million people."},{"title":"INSEE","url":"https://insee.fr/paris","description":"Official statistics \"quoted\"."}]}'
python3 - "$BRAVE_RESULT" "$CODE_RESULT" >"$TMP/expect.json" <<'EOF'
import json, sys
call = lambda name, args: {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": name, "arguments": args}}]}
print(json.dumps({"builtin_tools": ["brave_search", "code_interpreter"], "add_generation_prompt": False, "messages": [
    {"role": "user", "content": "How many people live in Paris, and what is 2**10?"},
    call("brave_search", {"query": "population of Paris"}),
    {"role": "ipython", "content": sys.argv[1]},
    call("code_interpreter", {"code": "x = 2**10\nprint(x)"}),
    {"role": "ipython", "content": sys.argv[2].replace("\\n", "\n")},
    {"role": "assistant", "content": "Paris has about 2.1 million inhabitants, and 2**10 is 1024."}]}))
EOF
node "$TMP/render.mjs" "$TEMPLATE" "$TMP/expect.json" >"$TMP/expect.prompt" || die "rendering the expected prompt failed"
if cmp -s "$TMP/expect.prompt" "$TMP/loop.prompt"; then
    ok "the final prompt equals the official template's rendering ($(wc -c <"$TMP/loop.prompt") bytes, both ipython turns exact)"
else
    fail "the final prompt differs from the official template's:"
    diff <(cat "$TMP/expect.prompt") <(cat "$TMP/loop.prompt") | head -20
fi
{ [ $SANDBOX = no ] || grep -qF '[stdout]\n1024\n\n[/stdout]' "$TMP/loop.prompt"; } && grep -qF '\"top_k\":[{' "$TMP/loop.prompt" &&
    ok "the prompt holds the search results and the sandbox's output" || fail "ipython turns missing in the prompt"

# ---- 2. wolfram_alpha against the fake ----
SCRIPT='["<|python_tag|>wolfram_alpha.call(query=\"integrate x^2\")<|eom_id|>", "x^3/3.<|eot_id|>"]'
WOLFRAM_ALPHA_APP_ID=app-42 HERD_WOLFRAM_URL=$BASE/v2/query chat wolfram "$SCRIPT" --tools wolfram_alpha -p "integral?"
grep -qF '{"query":"integrate x^2","pods":[{"title":"Input interpretation","text":"integrate x^2 dx"},{"title":"Indefinite integral","text":"x^3/3 + constant"}]}' "$TMP/wolfram.out" &&
    grep -qF '"appid": ["app-42"]' "$TMP/requests.jsonl" && grep -qF '"output": ["json"]' "$TMP/requests.jsonl" &&
    ok "wolfram_alpha: appid and output=json sent, pods condensed" || fail "wolfram_alpha: $(cat "$TMP/wolfram.out")"

# ---- 3. failures are tool results, never a hang ----
SCRIPT='["<|python_tag|>brave_search.call(query=\"x\")<|eom_id|>", "Sorry.<|eot_id|>"]'
(unset BRAVE_API_KEY; HERD_BRAVE_URL=$BASE/res/v1/web/search chat nokey "$SCRIPT" --tools brave_search -p "q")
grep -qF '{"error":"brave_search: BRAVE_API_KEY is not set, so herd cannot search the web"}' "$TMP/nokey.out" &&
    grep -qF 'BRAVE_API_KEY is not set' "$TMP/nokey.prompt" && ok "missing BRAVE_API_KEY -> a result saying so" ||
    fail "missing key: $(cat "$TMP/nokey.out")"
SCRIPT2='["<|python_tag|>wolfram_alpha.call(query=\"x\")<|eom_id|>", "Sorry.<|eot_id|>"]'
(unset WOLFRAM_ALPHA_APP_ID; chat nokey2 "$SCRIPT2" --tools wolfram_alpha -p "q")
grep -qF 'WOLFRAM_ALPHA_APP_ID is not set' "$TMP/nokey2.out" && ok "missing WOLFRAM_ALPHA_APP_ID -> a result saying so" ||
    fail "missing app id: $(cat "$TMP/nokey2.out")"
BRAVE_API_KEY=k HERD_BRAVE_URL=$BASE/fails chat http500 "$SCRIPT" --tools brave_search -p "q"
grep -qF '{"error":"brave_search: the search API answered HTTP 500"}' "$TMP/http500.out" && ok "HTTP 500 -> a result saying so" ||
    fail "HTTP 500: $(cat "$TMP/http500.out")"
BRAVE_API_KEY=k HERD_BRAVE_URL=$BASE/hang chat hang "$SCRIPT" --tools brave_search --tool-timeout 2 -p "q"
grep -qF '{"error":"brave_search: no response within 2 s"}' "$TMP/hang.out" && grep -q '^Sorry.$' "$TMP/hang.out" &&
    ok "an API that never answers -> a timeout result, and the loop goes on" || fail "hang: $(cat "$TMP/hang.out" "$TMP/hang.err")"
BRAVE_API_KEY=k HERD_BRAVE_URL=http://127.0.0.1:1/x chat refused "$SCRIPT" --tools brave_search -p "q"
grep -q '{"error":"brave_search: .*"}' "$TMP/refused.out" && ok "connection refused -> a result saying so" ||
    fail "refused: $(cat "$TMP/refused.out")"

# ---- 4. a built-in tool that was not enabled is not executed ----
SCRIPT='["<|python_tag|>import os\nopen(\"/tmp/should-not-run\", \"w\")<|eom_id|>", "x<|eot_id|>"]'
chat notenabled "$SCRIPT" --tools brave_search -p "q"
grep -q '^\[tool call\] code_interpreter' "$TMP/notenabled.out" && ! grep -q '^\[tool result\]' "$TMP/notenabled.out" &&
    ok "a call of a tool not in --tools is shown, not run" || fail "not enabled: $(cat "$TMP/notenabled.out")"

SCRIPT='["{\"name\": \"code_interpreter\", \"parameters\": {\"code\": \"print(6 * 7)\"}}<|eom_id|>", "42.<|eot_id|>"]'
chat jsoncall "$SCRIPT" --tools code_interpreter -p "q"
{ [ $SANDBOX = no ] || grep -q '^42$' "$TMP/jsoncall.out"; } && grep -q '^\[tool result\] code_interpreter' "$TMP/jsoncall.out" &&
    ok "an enabled built-in tool called in the JSON form is run too" || fail "JSON-form call: $(cat "$TMP/jsoncall.out")"

# ---- 5. custom functions ----
cat >"$TMP/functions.json" <<'EOF'
[{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city.",
  "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
EOF
SCRIPT='["{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}<|eot_id|>", "It is sunny in Paris.<|eot_id|>"]'
chat fn1 "$SCRIPT" --functions "$TMP/functions.json" -p "Weather in Paris?"
grep -qF '[tool call] get_weather {"city":"Paris"}' "$TMP/fn1.out" && ! grep -q sunny "$TMP/fn1.out" &&
    ok "custom function, one-shot: the call is printed and is the answer" || fail "fn one-shot: $(cat "$TMP/fn1.out")"
printf 'Weather in Paris?\n{"temperature": 21, "sky": "sunny"}\n' |
    chat fn2 "$SCRIPT" --functions "$TMP/functions.json"
grep -qF '[tool call] get_weather {"city":"Paris"}' "$TMP/fn2.out" && grep -q '^It is sunny in Paris.$' "$TMP/fn2.out" &&
    grep -qF '"{\"temperature\": 21, \"sky\": \"sunny\"}"<|eot_id|>' "$TMP/fn2.prompt" &&
    ok "custom function, interactive: the user's result goes back as an ipython turn" || fail "fn interactive: $(cat "$TMP/fn2.out")"

# ---- 6. --max-steps ----
SCRIPT='["<|python_tag|>print(1)<|eom_id|>", "<|python_tag|>print(2)<|eom_id|>", "<|python_tag|>print(3)<|eom_id|>"]'
chat steps "$SCRIPT" --tools code_interpreter --max-steps 2 -p "loop"
[ "$(grep -c '^\[tool result\] code_interpreter' "$TMP/steps.out")" = 2 ] && grep -q '^\[stopped\] --max-steps 2' "$TMP/steps.out" &&
    ok "--max-steps 2: two calls answered, the third not" || fail "max steps: $(cat "$TMP/steps.out")"

# ---- 7. bad options: one error line ----
for args in "--tools rm_rf" "--functions $TMP/nope.json" "--max-steps 0" "--tool-timeout -1"; do
    # shellcheck disable=SC2086
    "$HERD" chat -m "$MODEL" $args -p x >"$TMP/bad.out" 2>"$TMP/bad.err"
    rc=$?
    if [ $rc -ne 0 ] && [ "$(wc -l <"$TMP/bad.err")" = 1 ] && grep -q '^herd chat: error: ' "$TMP/bad.err"; then
        ok "bad option '$args': $(cat "$TMP/bad.err")"
    else
        fail "bad option '$args' (exit $rc): $(cat "$TMP/bad.err")"
    fi
done
echo '[1,' >"$TMP/badfn.json"
"$HERD" chat -m "$MODEL" --functions "$TMP/badfn.json" -p x 2>"$TMP/bad.err" >/dev/null
[ $? -ne 0 ] && grep -q 'not a JSON array' "$TMP/bad.err" && ok "malformed --functions file: $(cat "$TMP/bad.err")" ||
    fail "malformed functions: $(cat "$TMP/bad.err")"

[ $fails -eq 0 ] || die "$fails checks failed"
echo "all agent-loop checks passed"
