// herd serve --exec-builtin-tools with the OpenAI SDK, on a scripted model (--test-script forces the
// generated tokens, one scripted output per generation, in turn): the model calls brave_search
// (answered by a loopback fake of Brave's API), then python (run in the real sandbox), then answers;
// the server runs both calls itself and the client gets only the answer, with the runs listed in
// executed_tool_calls (a herd extension) and, streaming, as executed_tool_call deltas. Every step's
// prompt is the official template's with the exact ipython turns: the summed usage.prompt_tokens
// equals `herd format --tokens` of the three conversations. Also: custom functions still go back to
// the client, the step limit, and a server without the flag returns the built-in call as tool_calls.
import OpenAI from "openai";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import {execFileSync} from "node:child_process";
import {startServer, testModel, check, done, HERD, VOCAB} from "./lib.mjs";

// ---- a fake of Brave's search API ----
const searches = [];
const fake = http.createServer((req, res) => {
    const u = new URL(req.url, "http://x");
    searches.push({path: u.pathname, q: u.searchParams.get("q"), token: req.headers["x-subscription-token"]});
    const body = JSON.stringify({type: "search", web: {results: [
        {title: "Paris - Wikipedia", url: "https://en.wikipedia.org/wiki/Paris", description: "Paris has 2,102,650 inhabitants."},
        {title: "INSEE", url: "https://insee.fr/paris", description: "Official statistics."}]}});
    res.writeHead(200, {"Content-Type": "application/json", "Content-Length": Buffer.byteLength(body)});
    res.end(body);
});
await new Promise(r => fake.listen(0, "127.0.0.1", r));
const env = {BRAVE_API_KEY: "key-42", HERD_BRAVE_URL: `http://127.0.0.1:${fake.address().port}/res/v1/web/search`};

const CALL_SEARCH = '<|python_tag|>brave_search.call(query="population of Paris")<|eom_id|>';
const CALL_PY = "<|python_tag|>print(6 * 7)<|eom_id|>";
const ANSWER = "About 2.1 million people live in Paris; 6 * 7 = 42.<|eot_id|>";
const CALL_FN = '{"name": "get_weather", "parameters": {"city": "Paris"}}<|eot_id|>';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "herd-exec-"));
const scriptFile = (name, outs) => {
    const f = path.join(tmp, name + ".json");
    fs.writeFileSync(f, JSON.stringify(outs));
    return f;
};
const model = testModel();
const tools = [
    {type: "function", function: {name: "brave_search", description: "Web search.",
        parameters: {type: "object", properties: {query: {type: "string"}}, required: ["query"]}}},
    {type: "function", function: {name: "code_interpreter", description: "Runs python.",
        parameters: {type: "object", properties: {code: {type: "string"}}, required: ["code"]}}},
    {type: "function", function: {name: "get_weather", description: "Weather in a city.",
        parameters: {type: "object", properties: {city: {type: "string"}}, required: ["city"]}}},
];
const custom = [tools[2]];
const messages = [{role: "system", content: "Use tools when they help."},
                  {role: "user", content: "How many people live in Paris, and what is 6 * 7?"}];

// token count of a conversation as the official template renders it (built-ins in the system block,
// the custom function in the first user message)
function promptTokens(msgs) {
    const mf = path.join(tmp, "m.json"), tf = path.join(tmp, "t.json");
    fs.writeFileSync(mf, JSON.stringify(msgs));
    fs.writeFileSync(tf, JSON.stringify(custom));
    return JSON.parse(execFileSync(HERD, ["format", "-m", VOCAB, "--messages", mf, "--tools", tf, "--builtin-tools",
        "brave_search,code_interpreter", "--tokens"]).toString()).length;
}
// the conversation after the executed calls, as the server must have rendered it
function withSteps(steps) {
    const out = [...messages];
    for (const s of steps) {
        out.push({role: "assistant", content: null, tool_calls: [{id: "c", type: "function",
            function: {name: s.name, arguments: s.arguments}}]});
        out.push({role: "tool", tool_call_id: "c", content: s.result});
    }
    return out;
}
const pyOk = r => /^completed\n\[stdout\]\n42\n/.test(r) || r.startsWith("error: sandbox unavailable");

// ---- 1. the server runs brave_search and python, the client sees the answer ----
let srv = await startServer(["-m", model, "--parallel", "2", "--alias", "tiny", "--exec-builtin-tools", "all",
    "--test-script", scriptFile("a", [CALL_SEARCH, CALL_PY, ANSWER, CALL_SEARCH, CALL_PY, ANSWER, CALL_FN])], {env});
let client = new OpenAI({baseURL: srv.base + "/v1", apiKey: "x", maxRetries: 0});
try {
    const r = await client.chat.completions.create({model: "tiny", messages, tools, temperature: 0, max_tokens: 64});
    const m = r.choices[0].message, ex = r.executed_tool_calls || [];
    check(m.content === ANSWER.replace("<|eot_id|>", "") && !m.tool_calls && r.choices[0].finish_reason === "stop",
        "non-streaming: the answer after both tool runs", JSON.stringify(r.choices[0]));
    check(ex.length === 2 && ex[0].name === "brave_search" && JSON.parse(ex[0].arguments).query === "population of Paris" &&
        ex[1].name === "code_interpreter" && JSON.parse(ex[1].arguments).code === "print(6 * 7)",
        "executed_tool_calls lists the two runs", JSON.stringify(ex));
    check(ex.length === 2 && ex[0].result.includes("Paris has 2,102,650 inhabitants.") && pyOk(ex[1].result),
        "the runs' results: the fake's search results, python's stdout", JSON.stringify(ex.map(e => e.result)));
    check(searches.length === 1 && searches[0].q === "population of Paris" && searches[0].token === "key-42",
        "the search reached the fake with the query and the key header", JSON.stringify(searches));
    const want = promptTokens(messages) + promptTokens(withSteps(ex.slice(0, 1))) + promptTokens(withSteps(ex));
    check(r.usage.prompt_tokens === want, "each step's prompt is the official template with the exact ipython turns",
        `${r.usage.prompt_tokens} vs ${want}`);
    check(r.usage.completion_tokens > 0, "usage counts the tokens of all steps");

    // streaming: the same, as deltas
    const st = await client.chat.completions.create({model: "tiny", messages, tools, temperature: 0, max_tokens: 64,
        stream: true, stream_options: {include_usage: true}});
    let text = "", finish = null, executed = [], toolDeltas = 0, usage = null;
    for await (const c of st) {
        if (c.usage) usage = c.usage;
        const ch = c.choices[0];
        if (!ch) continue;
        text += ch.delta?.content ?? "";
        if (ch.delta?.executed_tool_call) executed.push(ch.delta.executed_tool_call);
        if (ch.delta?.tool_calls) toolDeltas++;
        if (ch.finish_reason) finish = ch.finish_reason;
    }
    check(text === ANSWER.replace("<|eot_id|>", "") && finish === "stop" && toolDeltas === 0,
        "streaming: only the answer as content, no tool_call deltas", JSON.stringify([text, finish, toolDeltas]));
    check(executed.length === 2 && executed[0].name === "brave_search" && pyOk(executed[1].result),
        "streaming: an executed_tool_call delta per run", JSON.stringify(executed));
    check(usage && usage.prompt_tokens === want, "streaming: usage summed over the steps", JSON.stringify(usage));

    // a custom function is not the server's to run: it goes back to the client
    const f = await client.chat.completions.create({model: "tiny", messages, tools, temperature: 0, max_tokens: 64});
    check(f.choices[0].finish_reason === "tool_calls" && f.choices[0].message.tool_calls[0].function.name === "get_weather" &&
        !f.executed_tool_calls, "a custom function call comes back as tool_calls", JSON.stringify(f.choices[0]));
} finally {
    check(await srv.stop() === 0, "server exits cleanly");
}

// ---- 2. the step limit, and tools the request did not declare ----
srv = await startServer(["-m", model, "--alias", "tiny", "--exec-builtin-tools", "brave_search,code_interpreter",
    "--max-tool-steps", "1", "--test-script", scriptFile("b", [CALL_SEARCH, CALL_PY, CALL_PY])], {env});
client = new OpenAI({baseURL: srv.base + "/v1", apiKey: "x", maxRetries: 0});
try {
    const r = await client.chat.completions.create({model: "tiny", messages, tools, temperature: 0, max_tokens: 64});
    const c = r.choices[0];
    check(r.executed_tool_calls?.length === 1 && c.finish_reason === "tool_calls" &&
        c.message.tool_calls[0].function.name === "code_interpreter" &&
        JSON.parse(c.message.tool_calls[0].function.arguments).code === "print(6 * 7)",
        "--max-tool-steps 1: the second call goes back to the client", JSON.stringify(r));
    const noBuiltin = await client.chat.completions.create({model: "tiny", messages, tools: custom, temperature: 0,
        max_tokens: 64});
    check(!noBuiltin.executed_tool_calls && noBuiltin.choices[0].message.tool_calls?.[0].function.name === "code_interpreter",
        "a built-in tool the request did not declare is not run", JSON.stringify(noBuiltin.choices[0]));
} finally {
    check(await srv.stop() === 0, "server exits cleanly");
}

// ---- 3. without --exec-builtin-tools the built-in call is the client's ----
srv = await startServer(["-m", model, "--alias", "tiny", "--test-script", scriptFile("c", [CALL_SEARCH])], {env});
client = new OpenAI({baseURL: srv.base + "/v1", apiKey: "x", maxRetries: 0});
try {
    const n0 = searches.length;
    const r = await client.chat.completions.create({model: "tiny", messages, tools, temperature: 0, max_tokens: 64});
    const tc = r.choices[0].message.tool_calls?.[0];
    check(r.choices[0].finish_reason === "tool_calls" && tc?.function.name === "brave_search" &&
        JSON.parse(tc.function.arguments).query === "population of Paris" && searches.length === n0 &&
        r.usage.prompt_tokens === promptTokens(messages),
        "no flag: brave_search comes back as tool_calls, rendered as a built-in tool", JSON.stringify(r));
} finally {
    check(await srv.stop() === 0, "server exits cleanly");
}
fake.close();
fs.rmSync(tmp, {recursive: true, force: true});
done("exec_tools_client");
