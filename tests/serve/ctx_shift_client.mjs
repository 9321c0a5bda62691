// The server's context shift while a reply is written (context_policy "shift", docs/CONTEXT.md), on the
// tiny random-weight model (it hardly ever ends a turn, so a reply without max_tokens fills the context):
//   - shift: the reply goes on past the slot's context: each time the context fills, the fewest oldest
//     turns (user + assistant) go so that the conversation, the reply so far and a quarter of the context
//     fit (the system prompt and the last turn stay), the reply so far is appended as it is, and generation
//     goes on; when no turn is left to drop it ends with finish_reason "length", stop_reason "context".
//     Expected, computed independently: herd run --temp 0 on the full prompt's ids for the first part, then
//     on (the shortened conversation's ids + the reply so far) for each next part. The reply's text equals
//     the detokenized ids, completion_tokens their count (more than the context holds), dropped_messages
//     the messages left out; streamed, the same text and the same fields in the last chunk; and a fresh
//     /v1/completions request on the first shifted prompt (as token ids) gives the same continuation.
//   - stop: the same conversation ends at the first fill: finish_reason length, stop_reason context, the
//     first part's text;
//   - shift with speculative decoding (herd serve --lookup 3): the same reply.
import {execFileSync} from "node:child_process";
import {startServer, testModel, check, done, herdChatIds, herdRunGreedy, HERD} from "./lib.mjs";

const model = testModel();
const CTX = 320, Q = Math.floor(CTX / 4);
const sys = {role: "system", content: "You are a helpful assistant."};
const turns = [];
for (let i = 0; i < 4; i++)
    turns.push([{role: "user", content: `Question ${i}: what do you know about the number ${i * 11 + 5}?`},
        {role: "assistant", content: `The number ${i * 11 + 5} is odd, and it comes after ${i * 11 + 4}.`}]);
const last = {role: "user", content: "Now write a very long story about all of these numbers."};
const conv = k => [sys, ...turns.slice(k).flat(), last]; // the conversation without its k oldest turns

// the expected reply, part by part
const P = herdChatIds(conv(0)).length;
check(P + Q <= CTX, `setup: the prompt (${P} tokens) and a quarter of the context fit ${CTX}: no shift before the reply`);
let k = 0, ids = herdChatIds(conv(0)), gen = [], firstShift = null;
const parts = [];
for (;;) {
    const g = herdRunGreedy(model, ids, CTX - ids.length + 1).ids; // until the context is full
    check(g.length === CTX - ids.length + 1, `setup: herd run part ${parts.length + 1} fills the context (no end of turn)`);
    gen = gen.concat(g);
    parts.push(g.length);
    let j = k;
    while (j < turns.length && herdChatIds(conv(j)).length + gen.length + Q > CTX) j++;
    const n = herdChatIds(conv(j)).length;
    if (j === k || n + gen.length >= CTX) break;
    k = j;
    ids = herdChatIds(conv(k)).concat(gen);
    if (!firstShift) firstShift = {ids, at: gen.length};
}
check(parts.length >= 3, `setup: the reply shifts at least twice (parts ${parts.join("+")})`);
const detok = a => execFileSync(HERD, ["detokenize", "-m", model, "--ids", JSON.stringify(a)]).toString();
const expected = detok(gen), first = detok(gen.slice(0, parts[0]));

async function post(srv, path, body) {
    const r = await fetch(srv.base + path, {method: "POST", headers: {"Content-Type": "application/json"},
        body: JSON.stringify({model: "tiny", ...body})});
    let j = null;
    try { j = await r.json(); } catch { /* not JSON */ }
    return {status: r.status, j};
}

let srv;
try {
    srv = await startServer(["-m", model, "--parallel", "1", "-c", String(CTX), "--alias", "tiny", "-t", "2"]);
    const body = {messages: conv(0), temperature: 0, context_policy: "shift"};
    let r = await post(srv, "/v1/chat/completions", body);
    const ch = r.j?.choices?.[0];
    check(r.status === 200 && ch.message.content === expected,
        `shift: the reply goes on after each shift, equal to herd run on each shifted prompt (${parts.join(" + ")} tokens)`,
        JSON.stringify({status: r.status, err: r.j?.error, got: ch?.message?.content?.slice(0, 400), want: expected.slice(0, 400)}));
    check(r.j?.usage?.completion_tokens === gen.length && gen.length > CTX - P + 1 && r.j.usage.prompt_tokens === P,
        `shift: completion_tokens ${gen.length} > the ${CTX - P + 1} the context holds after the prompt`, JSON.stringify(r.j?.usage));
    check(ch?.finish_reason === "length" && ch?.stop_reason === "context" && r.j.dropped_messages === 2 * k,
        `shift: with no turn left to drop, finish_reason length, stop_reason context; dropped_messages ${2 * k}`,
        JSON.stringify({finish: ch?.finish_reason, stop: ch?.stop_reason, dropped: r.j?.dropped_messages}));
    // streamed
    const s = await fetch(srv.base + "/v1/chat/completions", {method: "POST", headers: {"Content-Type": "application/json"},
        body: JSON.stringify({model: "tiny", stream: true, stream_options: {include_usage: true}, ...body})});
    const chunks = (await s.text()).split("\n\n").filter(l => l.startsWith("data: {")).map(l => JSON.parse(l.slice(6)));
    const text = chunks.map(c => c.choices?.[0]?.delta?.content ?? "").join("");
    const fin = chunks.find(c => c.choices?.[0]?.finish_reason);
    check(text === expected && fin?.choices[0].stop_reason === "context" && fin?.dropped_messages === 2 * k,
        "shift, streamed: the same text; the last chunk has stop_reason context and dropped_messages",
        JSON.stringify({fin, same: text === expected}));
    // a fresh request on the first shifted prompt: the same continuation
    const room = CTX - firstShift.ids.length;
    r = await post(srv, "/v1/completions", {prompt: firstShift.ids, max_tokens: room, temperature: 0});
    const want = detok(gen.slice(firstShift.at, firstShift.at + room));
    check(r.status === 200 && r.j.choices[0].text === want,
        `shift: a fresh request on the shifted prompt (${firstShift.ids.length} ids) continues the same way (${room} tokens)`,
        JSON.stringify({status: r.status, err: r.j?.error, got: r.j?.choices?.[0]?.text?.slice(0, 200), want: want.slice(0, 200)}));
    // stop: ends at the first fill
    r = await post(srv, "/v1/chat/completions", {...body, context_policy: "stop"});
    const c2 = r.j?.choices?.[0];
    check(r.status === 200 && c2.message.content === first && c2.finish_reason === "length" && c2.stop_reason === "context" &&
        r.j.usage.completion_tokens === parts[0] && r.j.dropped_messages === undefined,
        `stop: the same reply ends when the context fills (${parts[0]} tokens), finish_reason length, stop_reason context`,
        JSON.stringify({usage: r.j?.usage, finish: c2?.finish_reason, stop: c2?.stop_reason}));
    check(await srv.stop() === 0, "server: clean exit");
    // with prompt-lookup drafting (drafts verified in the same pass, up to the context's end): the same reply
    srv = await startServer(["-m", model, "--parallel", "1", "-c", String(CTX), "--alias", "tiny", "-t", "2", "--lookup", "3"]);
    r = await post(srv, "/v1/chat/completions", body);
    check(r.status === 200 && r.j.choices[0].message.content === expected && r.j.usage.completion_tokens === gen.length,
        "shift with --lookup 3: the same reply", JSON.stringify({status: r.status, usage: r.j?.usage}));
    check(await srv.stop() === 0, "lookup server: clean exit");
} finally {
    if (srv) await srv.stop();
}
done("ctx_shift");
