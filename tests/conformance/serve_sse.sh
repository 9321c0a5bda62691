#!/bin/bash
# Raw SSE framing of herd serve, with curl: headers, "data: <json>" events separated by blank
# lines, the opening role chunk, a finish_reason, the usage chunk, and "data: [DONE]" last.
source tests/lib.sh
need_ref
command -v curl >/dev/null || die "curl is not installed"
[ -x "$HERD" ] || die "$HERD is not built"
model=$(node -e 'import("./tests/serve/lib.mjs").then(m => console.log(m.testModel()))') || die "test model"
"$HERD" serve -m "$model" --port 0 --parallel 2 --alias tiny >"$TMP/port" 2>"$TMP/err" &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$TMP"' EXIT
for _ in $(seq 100); do [ -s "$TMP/port" ] && break; sleep 0.1; done
port=$(head -n 1 "$TMP/port")
[ -n "$port" ] || die "server did not start: $(cat "$TMP/err")"
curl -sN -D "$TMP/headers" -H 'Content-Type: application/json' "http://127.0.0.1:$port/v1/chat/completions" \
    -d '{"model":"tiny","messages":[{"role":"user","content":"Hello"}],"stream":true,"max_tokens":12,"temperature":0,
         "stream_options":{"include_usage":true}}' >"$TMP/body" || die "curl failed"
grep -qi '^content-type: text/event-stream' "$TMP/headers" || die "Content-Type is not text/event-stream: $(cat "$TMP/headers")"
grep -qi '^transfer-encoding: chunked' "$TMP/headers" || die "not chunked"
node - "$TMP/body" <<'JS' || die "SSE framing"
const body = require("fs").readFileSync(process.argv[2], "utf8");
if (!body.endsWith("data: [DONE]\n\n")) { console.log("does not end with data: [DONE]"); process.exit(1); }
const events = body.split("\n\n").filter(e => e.length);
let chunks = [], bad = 0;
for (const e of events) {
    if (e.startsWith(": ")) continue;                 // keep-alive comment
    if (!e.startsWith("data: ") || e.includes("\n")) { bad++; continue; }
    const d = e.slice(6);
    if (d === "[DONE]") continue;
    chunks.push(JSON.parse(d));
}
const first = chunks[0], last = chunks[chunks.length - 1];
const finish = chunks.filter(c => c.choices.length && c.choices[0].finish_reason);
const ok = bad === 0 && first.choices[0].delta.role === "assistant" && finish.length === 1 &&
    last.choices.length === 0 && last.usage && last.usage.completion_tokens > 0 &&
    chunks.every(c => c.object === "chat.completion.chunk" && c.id === first.id);
console.log(`${events.length} events, ${chunks.length} JSON chunks, finish ${finish[0]?.choices[0].finish_reason}, ` +
    `usage ${JSON.stringify(last.usage)}`);
process.exit(ok ? 0 : 1);
JS
kill -TERM $pid; wait $pid; rc=$?
[ $rc -eq 0 ] || die "server exit status $rc after SIGTERM"
echo "SSE framing ok"
