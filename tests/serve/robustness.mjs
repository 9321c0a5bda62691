// Malformed input and hostile clients: every case gets the right 4xx with an OpenAI-style error
// object and the server keeps serving everyone else. Also: body limit, invalid UTF-8, header flood,
// garbage request lines, slow clients, a client that disconnects mid-stream (its slot is freed),
// a full queue (429 + Retry-After), API keys, and SIGTERM draining in-flight requests.
import net from "node:net";
import {startServer, testModel, check, done} from "./lib.mjs";

const model = testModel();
const bin = process.env.HERD_SERVE_BIN; // optional: the ASan build
const opts = bin ? {bin} : {};
const srv = await startServer(["-m", model, "--parallel", "2", "-c", "1024", "--max-body", "65536", "--alias", "tiny"], opts);
const B = srv.base;

async function post(path, body, headers = {}) {
    const r = await fetch(B + path, {method: "POST", headers: {"Content-Type": "application/json", ...headers}, body});
    const text = await r.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    return {status: r.status, json, text, headers: r.headers};
}

function isErr(r) {
    return r.json && r.json.error && typeof r.json.error.message === "string" && typeof r.json.error.type === "string";
}

const chat = (extra) => JSON.stringify({model: "tiny", messages: [{role: "user", content: "hi"}], max_tokens: 2, ...extra});
const cases = [
    // [name, path, body, status, param?]
    ["invalid JSON", "/v1/chat/completions", "{", 400],
    ["JSON array body", "/v1/chat/completions", "[]", 400],
    ["empty body", "/v1/chat/completions", "", 400],
    ["JSON string body", "/v1/chat/completions", "\"hello\"", 400],
    ["no messages", "/v1/chat/completions", JSON.stringify({model: "tiny"}), 400, "messages"],
    ["messages not an array", "/v1/chat/completions", JSON.stringify({messages: "hi"}), 400, "messages"],
    ["messages empty", "/v1/chat/completions", JSON.stringify({messages: []}), 400, "messages"],
    ["message without role", "/v1/chat/completions", JSON.stringify({messages: [{content: "x"}]}), 400, "messages"],
    ["message not an object", "/v1/chat/completions", JSON.stringify({messages: ["x"]}), 400, "messages"],
    ["unknown role", "/v1/chat/completions", JSON.stringify({messages: [{role: "robot", content: "x"}]}), 400, "messages"],
    ["role not a string", "/v1/chat/completions", JSON.stringify({messages: [{role: 7, content: "x"}]}), 400, "messages"],
    ["user without content", "/v1/chat/completions", JSON.stringify({messages: [{role: "user"}]}), 400, "messages"],
    ["content a number", "/v1/chat/completions", JSON.stringify({messages: [{role: "user", content: 5}]}), 400, "messages"],
    ["image content part", "/v1/chat/completions",
        JSON.stringify({messages: [{role: "user", content: [{type: "image_url", image_url: {url: "x"}}]}]}), 400, "messages"],
    ["temperature a string", "/v1/chat/completions", chat({temperature: "hot"}), 400, "temperature"],
    ["temperature negative", "/v1/chat/completions", chat({temperature: -1}), 400, "temperature"],
    ["temperature 3", "/v1/chat/completions", chat({temperature: 3}), 400, "temperature"],
    ["top_p 1.5", "/v1/chat/completions", chat({top_p: 1.5}), 400, "top_p"],
    ["max_tokens negative", "/v1/chat/completions", chat({max_tokens: -5}), 400, "max_tokens"],
    ["max_tokens zero", "/v1/chat/completions", chat({max_tokens: 0}), 400, "max_tokens"],
    ["max_tokens huge", "/v1/chat/completions", chat({max_tokens: 1e12}), 400, "max_tokens"],
    ["max_tokens over the context", "/v1/chat/completions", chat({max_tokens: 100000}), 400, "max_tokens"],
    ["max_tokens fractional", "/v1/chat/completions", chat({max_tokens: 1.5}), 400, "max_tokens"],
    ["max_completion_tokens string", "/v1/chat/completions", chat({max_completion_tokens: "x"}), 400, "max_completion_tokens"],
    ["n = 2", "/v1/chat/completions", chat({n: 2}), 400, "n"],
    ["stop a number", "/v1/chat/completions", chat({stop: 5}), 400, "stop"],
    ["stop empty string", "/v1/chat/completions", chat({stop: [""]}), 400, "stop"],
    ["17 stop strings", "/v1/chat/completions", chat({stop: Array(17).fill("x")}), 400, "stop"],
    ["seed a string", "/v1/chat/completions", chat({seed: "abc"}), 400, "seed"],
    ["stream a string", "/v1/chat/completions", chat({stream: "yes"}), 400, "stream"],
    ["logprobs a string", "/v1/chat/completions", chat({logprobs: "yes"}), 400, "logprobs"],
    ["top_logprobs 50", "/v1/chat/completions", chat({logprobs: true, top_logprobs: 50}), 400, "top_logprobs"],
    ["top_logprobs without logprobs", "/v1/chat/completions", chat({top_logprobs: 2}), 400, "top_logprobs"],
    ["model a number", "/v1/chat/completions", chat({model: 123}), 400, "model"],
    ["unknown model", "/v1/chat/completions", chat({model: "gpt-4"}), 404, "model"],
    ["presence_penalty", "/v1/chat/completions", chat({presence_penalty: 1}), 400, "presence_penalty"],
    ["logit_bias", "/v1/chat/completions", chat({logit_bias: {"1": 5}}), 400, "logit_bias"],
    ["tools not an array", "/v1/chat/completions", chat({tools: {}}), 400, "tools"],
    ["tool without a function", "/v1/chat/completions", chat({tools: [{type: "function"}]}), 400, "tools"],
    ["tool name with spaces", "/v1/chat/completions", chat({tools: [{type: "function", function: {name: "a b"}}]}), 400, "tools"],
    ["tool parameters not an object", "/v1/chat/completions",
        chat({tools: [{type: "function", function: {name: "f", parameters: 3}}]}), 400, "tools"],
    ["tool_choice unknown", "/v1/chat/completions", chat({tool_choice: "sometimes"}), 400, "tool_choice"],
    ["two tool calls in one message", "/v1/chat/completions", JSON.stringify({messages: [{role: "user", content: "x"},
        {role: "assistant", tool_calls: [{type: "function", function: {name: "f", arguments: "{}"}},
                                         {type: "function", function: {name: "g", arguments: "{}"}}]}]}), 400, "messages"],
    ["tool call arguments not JSON", "/v1/chat/completions", JSON.stringify({messages: [{role: "user", content: "x"},
        {role: "assistant", tool_calls: [{type: "function", function: {name: "f", arguments: "{oops"}}]}]}), 400, "messages"],
    ["stream_options not an object", "/v1/chat/completions", chat({stream: true, stream_options: 3}), 400, "stream_options"],
    ["prompt longer than the context", "/v1/chat/completions",
        JSON.stringify({messages: [{role: "user", content: "word ".repeat(3000)}]}), 400],
    ["duplicate keys", "/v1/chat/completions", '{"messages": [], "messages": []}', 400],
    ["nested 30000 deep", "/v1/chat/completions", "[".repeat(30000) + "]".repeat(30000), 400],
    ["body over --max-body", "/v1/chat/completions", JSON.stringify({messages: [{role: "user", content: "x".repeat(70000)}]}), 413],
    ["completions: no prompt", "/v1/completions", JSON.stringify({model: "tiny"}), 400, "prompt"],
    ["completions: empty id list", "/v1/completions", JSON.stringify({prompt: []}), 400, "prompt"],
    ["completions: id out of range", "/v1/completions", JSON.stringify({prompt: [999999999]}), 400, "prompt"],
    ["completions: negative id", "/v1/completions", JSON.stringify({prompt: [-1]}), 400, "prompt"],
    ["completions: two prompts", "/v1/completions", JSON.stringify({prompt: ["a", "b"]}), 400, "prompt"],
    ["completions: suffix", "/v1/completions", JSON.stringify({prompt: "a", suffix: "b"}), 400, "suffix"],
    ["completions: echo a string", "/v1/completions", JSON.stringify({prompt: "a", echo: "x"}), 400, "echo"],
    ["completions: logprobs 9", "/v1/completions", JSON.stringify({prompt: "a", logprobs: 9}), 400, "logprobs"],
    ["embeddings: no input", "/v1/embeddings", JSON.stringify({model: "tiny"}), 400, "input"],
    ["embeddings: empty string", "/v1/embeddings", JSON.stringify({input: ""}), 400, "input"],
    ["embeddings: 3000 inputs", "/v1/embeddings", JSON.stringify({input: Array(3000).fill("a")}), 400, "input"],
    ["embeddings: encoding hex", "/v1/embeddings", JSON.stringify({input: "a", encoding_format: "hex"}), 400, "encoding_format"],
    ["embeddings: dimensions 7", "/v1/embeddings", JSON.stringify({input: "a", dimensions: 7}), 400, "dimensions"],
    ["embeddings: number input", "/v1/embeddings", JSON.stringify({input: 42}), 400, "input"],
    ["unknown route", "/v1/unknown", "{}", 404],
];

try {
    for (const [name, path, body, status, param] of cases) {
        const r = await post(path, body);
        check(r.status === status && isErr(r) && (!param || r.json.error.param === param),
            `${name} -> ${status}${param ? " (" + param + ")" : ""}`, `${r.status} ${r.text.slice(0, 200)}`);
    }
    // invalid UTF-8 inside a JSON string
    const bad = Buffer.concat([Buffer.from('{"messages":[{"role":"user","content":"'), Buffer.from([0xff, 0xfe]),
        Buffer.from('"}]}')]);
    const ru = await fetch(B + "/v1/chat/completions", {method: "POST", headers: {"Content-Type": "application/json"}, body: bad});
    check(ru.status === 400 && isErr({json: await ru.json()}), "invalid UTF-8 -> 400");
    // methods
    const g = await fetch(B + "/v1/chat/completions");
    check(g.status === 405, "GET on a POST route -> 405", String(g.status));
    const mm = await fetch(B + "/v1/models/other");
    check(mm.status === 404, "unknown model id -> 404");

    // raw HTTP: garbage request line, header flood
    const raw = (payload) => new Promise(resolve => {
        const s = net.connect(srv.port, "127.0.0.1");
        let out = "";
        s.on("data", d => { out += d; });
        s.on("close", () => resolve(out));
        s.on("error", () => resolve(out));
        s.write(payload);
        setTimeout(() => s.end(), 2000);
    });
    const garbage = await raw("GARBAGE\r\n\r\n");
    check(/^HTTP\/1\.[01] 4\d\d/.test(garbage) || garbage === "", "garbage request line -> 4xx or closed",
        garbage.slice(0, 60));
    let flood = "GET /health HTTP/1.1\r\nHost: x\r\n";
    for (let i = 0; i < 20000; i++) flood += `X-Flood-${i}: ${"v".repeat(20)}\r\n`;
    const fl = await raw(flood + "\r\n");
    check(fl === "" || /^HTTP\/1\.[01] (4\d\d)/.test(fl), "header flood -> 4xx or closed", fl.slice(0, 60));

    // slow clients hold their connections, everyone else is served
    const slow = [];
    for (let i = 0; i < 20; i++) {
        const s = net.connect(srv.port, "127.0.0.1");
        s.on("error", () => {});
        s.write("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n");
        slow.push(s);
    }
    const t0 = Date.now();
    const ok = await post("/v1/chat/completions", chat({temperature: 0}));
    check(ok.status === 200 && Date.now() - t0 < 20000, "served while 20 slow clients hang", `${ok.status} ${Date.now() - t0} ms`);
    slow.forEach(s => s.destroy());

    // a client that disconnects mid-stream frees its slot
    const ac = new AbortController();
    const sr = await fetch(B + "/v1/chat/completions", {method: "POST", signal: ac.signal,
        headers: {"Content-Type": "application/json"},
        body: JSON.stringify({messages: [{role: "user", content: "go"}], stream: true, max_tokens: 900})});
    const reader = sr.body.getReader();
    await reader.read();
    await reader.read();
    ac.abort();
    let freed = false;
    for (let i = 0; i < 40 && !freed; i++) {
        await new Promise(r => setTimeout(r, 100));
        const m = await (await fetch(B + "/metrics")).text();
        freed = /herd_requests_active 0\b/.test(m);
    }
    check(freed, "an aborted stream frees its slot within 4 s");

    const h = await fetch(B + "/health");
    check(h.status === 200, "still healthy after all of the above");
    const fine = await post("/v1/chat/completions", chat({temperature: 0}));
    check(fine.status === 200 && fine.json.choices[0].message, "still serving after all of the above");
} catch (e) {
    check(false, "no exception", e.stack);
}
check((await srv.stop()) === 0, "SIGTERM: clean exit (ASan: no leaks)", srv.stderr().slice(-2000));

// a full queue: 1 slot, no waiting room
const q = await startServer(["-m", model, "--parallel", "1", "--max-queue", "0", "--alias", "tiny"], opts);
const long = () => fetch(q.base + "/v1/chat/completions", {method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({messages: [{role: "user", content: "go"}], max_tokens: 300, temperature: 0})});
const results = await Promise.all([long(), long(), long()]);
const codes = results.map(r => r.status);
const r429 = results.find(r => r.status === 429);
check(codes.includes(200) && r429 && r429.headers.get("retry-after"), "queue full -> 429 with Retry-After", codes.join(","));
for (const r of results) await r.text();
check((await q.stop()) === 0, "SIGTERM: clean exit");

// SIGTERM drains an in-flight request, then exits 0
const d = await startServer(["-m", model, "--parallel", "1", "--alias", "tiny"], opts);
const inflight = fetch(d.base + "/v1/chat/completions", {method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({messages: [{role: "user", content: "go"}], max_tokens: 200, temperature: 0})});
await new Promise(r => setTimeout(r, 300));
const exit = d.stop();
const res = await inflight;
const body = await res.json();
check(res.status === 200 && body.usage.completion_tokens > 0, "SIGTERM: the in-flight request completes",
    `${res.status} ${JSON.stringify(body.usage)}`);
check((await exit) === 0, "SIGTERM: exit 0 after draining");
done("robustness");
