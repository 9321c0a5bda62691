// The server's context-full policy (src/server/ctx_policy.h, docs/CONTEXT.md) on a random-weight model
// with a small per-slot context:
//   - stop (the default): a conversation that does not fit is 400 context_length_exceeded; a reply that
//     fills the context ends with finish_reason "length" and "stop_reason": "context" (streamed too), one
//     cut by max_tokens with "length" alone; prompt + completion tokens = the context;
//   - shift (per request, or the server's --context-policy): the fewest oldest turns are left out, the
//     system prompt kept: prompt_tokens is the official template's count over the rest,
//     "dropped_messages" says how many went, and the greedy answer equals the answer to the shortened
//     conversation sent as it is; a system prompt alone too long is still 400;
//   - bad values: 400 naming context_policy; herd serve --context-policy bogus exits with one line.
import {spawnSync} from "node:child_process";
import {startServer, testModel, check, done, herdChatIds, HERD} from "./lib.mjs";

const model = testModel();
const CTX = 256;
const sys = {role: "system", content: "You are a helpful assistant who answers in one short sentence."};
const turns = [];
for (let i = 0; i < 6; i++)
    turns.push({role: "user", content: `Question number ${i}: tell me something about the number ${i * 7 + 3}, please, briefly.`},
        {role: "assistant", content: `The number ${i * 7 + 3} is a fine number, and here is a short remark about it.`});
const last = {role: "user", content: "Now summarise the conversation."};
const full = [sys, ...turns, last];

async function post(srv, body) {
    const r = await fetch(srv.base + "/v1/chat/completions", {method: "POST",
        headers: {"Content-Type": "application/json"}, body: JSON.stringify({model: "tiny", ...body})});
    let j = null;
    try { j = await r.json(); } catch { /* not JSON */ }
    return {status: r.status, j};
}
async function stream(srv, body) {
    const r = await fetch(srv.base + "/v1/chat/completions", {method: "POST",
        headers: {"Content-Type": "application/json"},
        body: JSON.stringify({model: "tiny", stream: true, stream_options: {include_usage: true}, ...body})});
    const chunks = (await r.text()).split("\n\n").filter(l => l.startsWith("data: {")).map(l => JSON.parse(l.slice(6)));
    return chunks;
}

const nFull = herdChatIds(full).length;
check(nFull + 8 > CTX, `setup: the whole conversation (${nFull} tokens) + 8 does not fit ${CTX}`);
// the expected shift with max_tokens 8: the fewest whole turns (user + assistant) left out
let k = 0;
while (herdChatIds([sys, ...turns.slice(2 * k), last]).length + 8 > CTX) k++;
const kept = [sys, ...turns.slice(2 * k), last];
check(k >= 1 && k < 6, `setup: ${k} turn(s) must go`);

let srv;
try {
    srv = await startServer(["-m", model, "--parallel", "1", "-c", String(CTX), "--alias", "tiny", "-t", "2"]);
    // stop: refused
    let r = await post(srv, {messages: full, temperature: 0, max_tokens: 8});
    check(r.status === 400 && r.j?.error?.code === "context_length_exceeded", "stop: a conversation that does not fit is 400 context_length_exceeded",
        JSON.stringify(r.j));
    // shift, per request
    r = await post(srv, {messages: full, temperature: 0, max_tokens: 8, context_policy: "shift"});
    const want = herdChatIds(kept).length;
    check(r.status === 200 && r.j.usage.prompt_tokens === want && r.j.dropped_messages === 2 * k,
        `shift: the ${k} oldest turn(s) (${2 * k} messages) left out, the system prompt kept (prompt_tokens ${want})`,
        JSON.stringify({status: r.status, usage: r.j?.usage, dropped: r.j?.dropped_messages, err: r.j?.error}));
    const direct = await post(srv, {messages: kept, temperature: 0, max_tokens: 8});
    check(direct.status === 200 && r.j?.choices?.[0]?.message?.content === direct.j.choices[0].message.content &&
        direct.j.dropped_messages === undefined,
        "shift: the greedy answer equals the answer to the shortened conversation", JSON.stringify([r.j?.choices, direct.j?.choices]));
    // a reply that fills the context: finish_reason length + stop_reason context
    const short = [sys, {role: "user", content: "Tell me a very long story."}];
    r = await post(srv, {messages: short, temperature: 0});
    const ch = r.j?.choices?.[0];
    check(r.status === 200 && ch.finish_reason === "length" && ch.stop_reason === "context" &&
        r.j.usage.prompt_tokens + r.j.usage.completion_tokens === CTX + 1,
        "stop: a reply that fills the context ends with finish_reason length, stop_reason context, prompt + completion = the context + 1 (the last token needs no KV)",
        JSON.stringify({ch: ch && {finish_reason: ch.finish_reason, stop_reason: ch.stop_reason}, usage: r.j?.usage}));
    const chunks = await stream(srv, {messages: short, temperature: 0});
    const fin = chunks.find(c => c.choices?.[0]?.finish_reason);
    const text = chunks.map(c => c.choices?.[0]?.delta?.content ?? "").join("");
    check(fin?.choices[0].finish_reason === "length" && fin.choices[0].stop_reason === "context" && text === ch?.message?.content,
        "stop, streamed: the last chunk has finish_reason length and stop_reason context; the same text",
        JSON.stringify(fin));
    r = await post(srv, {messages: short, temperature: 0, max_tokens: 5});
    check(r.status === 200 && r.j.choices[0].finish_reason === "length" && r.j.choices[0].stop_reason === undefined,
        "max_tokens: finish_reason length without stop_reason");
    // shift that cannot help: a system prompt alone larger than the context
    const huge = [{role: "system", content: "word ".repeat(400)}, {role: "user", content: "hi"}];
    r = await post(srv, {messages: huge, temperature: 0, max_tokens: 4, context_policy: "shift"});
    check(r.status === 400 && r.j?.error?.code === "context_length_exceeded" && /system prompt and the last turn/.test(r.j.error.message),
        "shift: a system prompt alone too long is still 400 context_length_exceeded", JSON.stringify(r.j));
    // bad value
    r = await post(srv, {messages: short, context_policy: "drop"});
    check(r.status === 400 && r.j?.error?.param === "context_policy", "context_policy 'drop': 400 naming the parameter",
        JSON.stringify(r.j));
    check(await srv.stop() === 0, "stop server: clean exit");

    // the server's default: shift; a request can still ask for stop
    srv = await startServer(["-m", model, "--parallel", "1", "-c", String(CTX), "--alias", "tiny", "-t", "2",
        "--context-policy", "shift"]);
    r = await post(srv, {messages: full, temperature: 0, max_tokens: 8});
    check(r.status === 200 && r.j.dropped_messages === 2 * k && r.j.choices[0].message.content === direct.j.choices[0].message.content,
        "--context-policy shift: the default for requests without the field", JSON.stringify(r.j?.error ?? r.j?.usage));
    const chunks2 = await stream(srv, {messages: full, temperature: 0, max_tokens: 8});
    const fin2 = chunks2.find(c => c.choices?.[0]?.finish_reason);
    check(fin2?.dropped_messages === 2 * k, "shift, streamed: the last chunk says dropped_messages", JSON.stringify(fin2));
    r = await post(srv, {messages: full, temperature: 0, max_tokens: 8, context_policy: "stop"});
    check(r.status === 400 && r.j?.error?.code === "context_length_exceeded", "a request's context_policy stop overrides the server's shift");
    check(await srv.stop() === 0, "shift server: clean exit");
} finally {
    if (srv) await srv.stop();
}
const bad = spawnSync(HERD, ["serve", "-m", model, "--context-policy", "bogus"]);
check(bad.status !== 0 && /context-policy: 'bogus' is not stop or shift/.test(bad.stderr.toString()),
    "herd serve --context-policy bogus: one clear error", bad.stderr.toString());
done("ctx_policy");
