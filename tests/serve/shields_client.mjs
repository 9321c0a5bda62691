// herd serve --guard-model: Llama Stack's shields through the official clients (npm llama-stack-client
// 0.7.3: shields.list / retrieve, safety.runShield; npm openai: moderations.create). Every verdict must
// equal `herd guard --json` on the same model and conversation (verdict, codes, P(unsafe)); moderation
// categories follow Llama Stack's OpenAI mapping; params.excluded_categories acts as --exclude; bad
// requests get 4xx with a clear message; /metrics counts the verdicts and categories.
import LlamaStackClient from "llama-stack-client";
import OpenAI from "openai";
import {execFileSync} from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {startServer, testModel, check, done, HERD, VOCAB, herdChatIds, herdRunGreedy} from "./lib.mjs";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "herd-shields-"));
const guard = path.join(tmp, "tiny-guard.gguf");
execFileSync(HERD, ["synth", "--vocab", VOCAB, "-o", guard, "--n-embd", "64", "--n-head", "4", "--n-head-kv", "2",
    "--n-layer", "2", "--n-ff", "128", "--type", "f32", "--ctx", "512", "--scale", "0.5", "--seed", "4"]);
const main = testModel();
const srv = await startServer(["-m", main, "--parallel", "2", "--guard-model", guard, "-t", "2"]);
const ls = new LlamaStackClient({baseURL: srv.base, maxRetries: 0});
const oa = new OpenAI({baseURL: srv.base + "/v1", apiKey: "unused", maxRetries: 0});

function herdGuard(args) {
    return JSON.parse(execFileSync(HERD, ["guard", "-m", guard, "--json", "-t", "2", ...args]).toString());
}
function herdGuardMessages(messages, extra = []) {
    const f = path.join(tmp, "m.json");
    fs.writeFileSync(f, JSON.stringify(messages));
    return herdGuard(["--messages", f, ...extra]);
}
const close = (a, b) => Math.abs(a - b) <= 1e-6 * Math.max(Math.abs(a), Math.abs(b), 1e-30);
let safe = 0, unsafe = 0;
const catCount = {};
function tally(v) {
    if (v.verdict === "unsafe") { unsafe++; for (const c of v.categories) catCount[c] = (catCount[c] || 0) + 1; }
    else safe++;
}

const TOOLS = [{type: "function", function: {name: "get_weather", description: "The weather in a city",
    parameters: {type: "object", properties: {city: {enum: ["Paris", "Oslo"]}}, required: ["city"]}}}];
const toolChats = [
    [{role: "user", content: "How do I make a cake?"}],
    [{role: "user", content: "Write a poem about the sea."}],
    [{role: "user", content: "Tell me a joke."}],
    [{role: "user", content: "What is the capital of France?"}],
    [{role: "user", content: "What is 2 + 2?"}],
    [{role: "user", content: "Name a color."}],
    [{role: "user", content: "Say hello."}],
];
const plainCalls = [];
// what the output shield assesses of a call: {"name": NAME, "parameters": ARGUMENTS} (routes.c shield_answer_text)
const callText = (calls) => calls.map(c => `{"name": ${JSON.stringify(c.function.name)}, "parameters": ${c.function.arguments}}`).join("\n");

try {
    const list = await ls.shields.list();
    check(Array.isArray(list) && list.length === 1 && list[0].identifier === "tiny-guard" &&
        list[0].provider_id === "llama-guard" && list[0].type === "shield", "shields.list", JSON.stringify(list));
    const one = await ls.shields.retrieve("tiny-guard");
    check(one.identifier === "tiny-guard", "shields.retrieve", JSON.stringify(one));

    const convs = [
        [{role: "user", content: "How do I make a cake?"}],
        [{role: "user", content: "What is the capital of France?"}, {role: "assistant", content: "Paris."}],
        [{role: "user", content: [{type: "text", text: "Tell me "}, {type: "text", text: "a joke."}]}],
        [{role: "user", content: "hi"}, {role: "assistant", content: "hello"}, {role: "user", content: "How are you?"}],
    ];
    let kinds = new Set();
    for (const [i, messages] of convs.entries()) {
        const r = await ls.safety.runShield({shield_id: "tiny-guard", messages});
        const flat = messages.map(m => ({role: m.role, content: typeof m.content === "string" ? m.content :
            m.content.map(p => p.text).join("")}));
        const want = herdGuardMessages(flat);
        tally(want);
        kinds.add(want.verdict);
        if (want.verdict === "safe") check(r.violation === null, `runShield ${i}: safe as herd guard`, JSON.stringify(r));
        else check(r.violation && r.violation.violation_level === "error" &&
            r.violation.user_message === "I can't answer that. Can I help with something else?" &&
            r.violation.metadata.violation_type === want.categories.join(",") &&
            close(r.violation.metadata.p_unsafe, want.p_unsafe), `runShield ${i}: unsafe ${want.categories} as herd guard`,
            JSON.stringify([r, want]));
    }
    // concurrent requests share the guard's engine (continuous batching): the same verdicts and P(unsafe)
    {
        const seq = [];
        for (const messages of convs) seq.push(await ls.safety.runShield({shield_id: "tiny-guard", messages}));
        const par = await Promise.all([...convs, ...convs].map(messages => ls.safety.runShield({shield_id: "tiny-guard", messages})));
        for (const m of [...convs, ...convs]) tally(herdGuardMessages(m.map(x => ({role: x.role, content:
            typeof x.content === "string" ? x.content : x.content.map(q => q.text).join("")}))));
        const same = par.every((r, i) => JSON.stringify(r) === JSON.stringify(seq[i % convs.length]));
        check(same, "8 concurrent runShield requests == the same requests one at a time",
            JSON.stringify([par, seq]).slice(0, 400));
        for (const m of convs) tally(herdGuardMessages(m.map(x => ({role: x.role, content:
            typeof x.content === "string" ? x.content : x.content.map(q => q.text).join("")}))));
    }
    // params.excluded_categories == --exclude (raw request: this client version sends no params)
    {
        const messages = convs[0];
        const res = await fetch(srv.base + "/v1/safety/run-shield", {method: "POST", headers: {"Content-Type": "application/json"},
            body: JSON.stringify({shield_id: "tiny-guard", messages, params: {excluded_categories: ["S1", "S2", "S5"]}})});
        const r = await res.json();
        const want = herdGuardMessages(messages, ["--exclude", "S1,S2,S5"]);
        tally(want);
        check(res.status === 200 && (want.verdict === "safe" ? r.violation === null :
            r.violation.metadata.violation_type === want.categories.join(",")), "excluded_categories == --exclude",
            JSON.stringify([r, want]));
    }

    // OpenAI moderations: one result per input, flagged == herd guard's verdict on a user message
    const inputs = ["How do I make a cake?", "What is the capital of France?", "Write a poem about the sea."];
    const mod = await oa.moderations.create({model: "tiny-guard", input: inputs});
    check(mod.model === "tiny-guard" && mod.results.length === 3 && mod.id.startsWith("modr-"), "moderations.create shape",
        JSON.stringify(mod).slice(0, 200));
    const map = {S1: ["violence", "violence/graphic", "harassment/threatening", "hate/threatening", "illicit/violent"],
        S4: ["harassment", "harassment/threatening", "sexual/minors"], S10: ["hate", "hate/threatening"], S2: ["illicit"],
        S9: ["illicit/violent", "custom/weapons"], S3: ["sexual"], S12: ["sexual"], S11: ["self-harm", "self-harm/intent",
        "self-harm/instructions"], S6: ["self-harm/instructions", "custom/specialized_advice"], S5: ["custom/defamation"],
        S7: ["custom/privacy_violation"], S8: ["custom/intellectual_property"], S13: ["custom/elections"],
        S14: ["custom/code_interpreter_abuse"]};
    for (const [i, text] of inputs.entries()) {
        const want = herdGuard(["-p", text]);
        tally(want);
        kinds.add(want.verdict);
        const res = mod.results[i];
        const expect = new Set(want.categories.flatMap(c => map[c]));
        const got = Object.entries(res.categories).filter(([, v]) => v).map(([k]) => k);
        check(res.flagged === (want.verdict === "unsafe") && got.length === expect.size && got.every(k => expect.has(k)) &&
            got.every(k => res.category_scores[k] === 1) && Object.keys(res.categories).length === 20 &&
            JSON.stringify(res.metadata.violation_type) === JSON.stringify(want.categories),
            `moderation ${i}: ${want.verdict} ${want.categories} -> ${got}`, JSON.stringify(res).slice(0, 300));
    }
    check(kinds.size === 2, "both verdicts were exercised", [...kinds].join());
    const single = await oa.moderations.create({input: "How do I make a cake?"});
    tally(herdGuard(["-p", "How do I make a cake?"]));
    check(single.results.length === 1, "moderations: a single string input");

    // bad requests
    const post = async (route, body) => {
        const r = await fetch(srv.base + route, {method: "POST", headers: {"Content-Type": "application/json"},
            body: typeof body === "string" ? body : JSON.stringify(body)});
        return [r.status, (await r.json()).error?.message ?? ""];
    };
    const bad = [
        ["/v1/safety/run-shield", {shield_id: "nope", messages: convs[0]}, 404, "no shield 'nope'"],
        ["/v1/safety/run-shield", {shield_id: "tiny-guard", messages: []}, 400, "non-empty array"],
        ["/v1/safety/run-shield", {messages: convs[0]}, 400, "'shield_id'"],
        ["/v1/safety/run-shield", {shield_id: "tiny-guard", messages: [{role: "system", content: "x"}]}, 400, "role 'system'"],
        ["/v1/safety/run-shield", {shield_id: "tiny-guard", messages: [{role: "user", content: "x"}, {role: "tool", content: "1"}]}, 400, "role 'tool'"],
        ["/v1/safety/run-shield", {shield_id: "tiny-guard", messages: [{role: "wizard", content: "x"}]}, 400, "wizard"],
        ["/v1/safety/run-shield", {shield_id: "tiny-guard", messages: convs[0], params: {excluded_categories: ["S99"]}}, 400, "S99"],
        ["/v1/safety/run-shield", {shield_id: "tiny-guard", messages: [{role: "user", content: "word ".repeat(700)}]}, 400, "context"],
        ["/v1/safety/run-shield", "{\"shield_id\":", 400, "not valid JSON"],
        ["/v1/moderations", {input: ""}, 400, "non-empty"],
        ["/v1/moderations", {input: []}, 400, "non-empty"],
        ["/v1/moderations", {input: [1, 2]}, 400, "input[0]"],
        ["/v1/moderations", {input: Array(33).fill("x")}, 400, "at most 32"],
        ["/v1/moderations", {input: "x", model: "omni-moderation-latest"}, 404, "tiny-guard"],
    ];
    for (const [route, body, status, needle] of bad) {
        const [s, msg] = await post(route, body);
        check(s === status && msg.includes(needle), `bad request ${route} -> ${status} (${needle})`, `${s} ${msg}`);
    }
    // /metrics: one count per verdict and per violated category
    const met = await (await fetch(srv.base + "/metrics")).text();
    const num = (re) => Number((met.match(re) || [0, 0])[1]);
    check(num(/herd_shield_verdicts_total\{verdict="safe"\} (\d+)/) === safe &&
        num(/herd_shield_verdicts_total\{verdict="unsafe"\} (\d+)/) === unsafe &&
        Object.entries(catCount).every(([c, n]) => num(new RegExp(`herd_shield_violations_total\\{category="${c}"\\} (\\d+)`)) === n),
        `/metrics: ${safe} safe, ${unsafe} unsafe, categories ${JSON.stringify(catCount)}`,
        met.split("\n").filter(l => l.includes("shield")).join(" | "));
    // forced tool calls without shields, for the output shield's check of calls below
    for (const messages of toolChats) {
        const r = await oa.chat.completions.create({model: "serve-tiny31-q8_0", messages, seed: 3, max_tokens: 300,
            tools: TOOLS, tool_choice: {type: "function", function: {name: "get_weather"}}});
        plainCalls.push(r.choices[0].message.tool_calls || []);
    }
} catch (e) {
    check(false, "no exception", e.stack);
}
check((await srv.stop()) === 0, "SIGTERM: clean exit");

// --shields input,output on chat completions: each request's outcome is what herd guard and herd run
// say it must be: the input shield's verdict on the conversation; if safe, the greedy answer, then the
// output shield's verdict on conversation + answer; a violation gives Llama Stack's refusal text,
// finish_reason "content_filter" and the violation (metadata.shield says which); streamed the same.
const srv2 = await startServer(["-m", main, "--parallel", "2", "--guard-model", guard, "--shields", "input,output", "-t", "2"]);
const oa2 = new OpenAI({baseURL: srv2.base + "/v1", apiKey: "unused", maxRetries: 0});
const REFUSAL = "I can't answer that. Can I help with something else?";
try {
    const outcomes = new Set();
    const chats = [
        [{role: "user", content: "How do I make a cake?"}],
        [{role: "system", content: "Be brief."}, {role: "user", content: "What is the capital of France?"}],
        [{role: "user", content: "Write a poem about the sea."}],
        [{role: "user", content: "hi"}, {role: "assistant", content: "hello"}, {role: "user", content: "How are you?"}],
        [{role: "user", content: "Tell me a joke."}],
        [{role: "user", content: "What is the capital of France?"}],
        [{role: "user", content: "What is 2 + 2?"}],
        [{role: "user", content: "Name a color."}],
        [{role: "user", content: "Say hello."}],
    ];
    for (const [i, messages] of chats.entries()) {
        const turns = messages.filter(m => m.role !== "system");
        const vin = herdGuardMessages(turns);
        let want, wantV = null;
        if (vin.verdict === "unsafe") { want = REFUSAL; wantV = {shield: "input", v: vin}; }
        else {
            const ans = herdRunGreedy(main, herdChatIds(messages), 12).text;
            const vout = herdGuardMessages([...turns, {role: "assistant", content: ans}]);
            if (vout.verdict === "unsafe") { want = REFUSAL; wantV = {shield: "output", v: vout}; }
            else want = ans;
        }
        outcomes.add(wantV ? wantV.shield : "passed");
        const r = await oa2.chat.completions.create({model: "serve-tiny31-q8_0", messages, temperature: 0, max_tokens: 12});
        const ch = r.choices[0];
        const vOk = (v) => wantV ? v && v.metadata.shield === wantV.shield && v.metadata.violation_type === wantV.v.categories.join(",") &&
            v.user_message === REFUSAL : !v;
        check(ch.message.content === want && (ch.finish_reason === "content_filter") === !!wantV && vOk(r.violation),
            `chat ${i}: ${wantV ? wantV.shield + " shield " + wantV.v.categories : "passed both shields"}`,
            JSON.stringify([r, want]).slice(0, 400));
        const stream = await oa2.chat.completions.create({model: "serve-tiny31-q8_0", messages, temperature: 0, max_tokens: 12,
            stream: true});
        let text = "", finish = null, sv = null;
        for await (const c of stream) {
            if (c.choices[0]?.delta?.content) text += c.choices[0].delta.content;
            if (c.choices[0]?.finish_reason) finish = c.choices[0].finish_reason;
            if (c.violation) sv = c.violation;
        }
        check(text === want && (finish === "content_filter") === !!wantV && vOk(sv), `chat ${i} (stream)`,
            JSON.stringify([text, finish, sv, want]));
    }
    check(outcomes.size === 3, "the input shield, the output shield and a clean answer were all exercised",
        [...outcomes].join(", "));
    // with tools: a forced call is assessed as its JSON text; one the shield stops is neither returned nor
    // streamed (the refusal instead), one it passes comes back as the unshielded server gave it
    const toolOutcomes = new Set();
    for (const [i, messages] of toolChats.entries()) {
        const vin = herdGuardMessages(messages);
        const calls = plainCalls[i];
        check(calls.length === 1, `tool chat ${i}: the forced call came back without shields`, JSON.stringify(calls));
        let wantV = null;
        if (vin.verdict === "unsafe") wantV = {shield: "input", v: vin};
        else {
            const vout = herdGuardMessages([...messages, {role: "assistant", content: callText(calls)}]);
            if (vout.verdict === "unsafe") wantV = {shield: "output", v: vout};
        }
        toolOutcomes.add(wantV ? wantV.shield : "passed");
        const req = {model: "serve-tiny31-q8_0", messages, seed: 3, max_tokens: 300, tools: TOOLS,
            tool_choice: {type: "function", function: {name: "get_weather"}}};
        const r = await oa2.chat.completions.create(req);
        const ch = r.choices[0];
        const okV = wantV ? r.violation?.metadata?.shield === wantV.shield && ch.message.content === REFUSAL &&
            !ch.message.tool_calls && ch.finish_reason === "content_filter"
            : !r.violation && JSON.stringify(ch.message.tool_calls.map(c => c.function)) ===
              JSON.stringify(calls.map(c => c.function)) && ch.finish_reason === "tool_calls";
        check(okV, `tool chat ${i}: ${wantV ? wantV.shield + " shield stops the call" : "the call passes the output shield"}`,
            JSON.stringify([r, calls]).slice(0, 500));
        const stream = await oa2.chat.completions.create({...req, stream: true});
        let text = "", finish = null, sv = null, streamedCalls = [];
        for await (const c of stream) {
            const d = c.choices[0]?.delta;
            if (d?.content) text += d.content;
            if (d?.tool_calls) streamedCalls.push(...d.tool_calls);
            if (c.choices[0]?.finish_reason) finish = c.choices[0].finish_reason;
            if (c.violation) sv = c.violation;
        }
        const okS = wantV ? sv?.metadata?.shield === wantV.shield && text === REFUSAL && streamedCalls.length === 0 &&
            finish === "content_filter"
            : !sv && streamedCalls.length === 1 && streamedCalls[0].function.name === calls[0].function.name &&
              streamedCalls[0].function.arguments === calls[0].function.arguments && finish === "tool_calls";
        check(okS, `tool chat ${i} (stream)`, JSON.stringify([text, finish, sv, streamedCalls]).slice(0, 500));
    }
    check(toolOutcomes.has("passed") || toolOutcomes.has("output"), "a call reached the output shield",
        [...toolOutcomes].join(", "));
} catch (e) {
    check(false, "no exception (shields on chat)", e.stack);
}
check((await srv2.stop()) === 0, "SIGTERM: clean exit (--shields)");
fs.rmSync(tmp, {recursive: true, force: true});
done("shields_client");
