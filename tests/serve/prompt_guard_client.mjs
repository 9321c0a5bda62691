// herd serve --prompt-guard DIR --shields prompt-guard through the official clients (npm llama-stack-client:
// shields.list / retrieve, safety.runShield; npm openai: chat.completions). The scores of every text come
// from `herd classify --json` on the same directory (PG_SCORES, one line per text of PG_TEXTS); from them
// follows each expected verdict under Llama Stack's rules (injection: p1 + p2 > 0.9; jailbreak: p2 > 0.9;
// the last message only), the violation string Llama Stack prints, the chat refusal, and the /metrics
// counts. Bad requests get 4xx with a clear message.
import LlamaStackClient from "llama-stack-client";
import OpenAI from "openai";
import {spawnSync} from "node:child_process";
import fs from "node:fs";
import {startServer, testModel, check, done, herdChatIds, herdRunGreedy, HERD} from "./lib.mjs";

const dir = process.env.PG_DIR;
const texts = fs.readFileSync(process.env.PG_TEXTS, "utf8").trim().split("\n").map(l => JSON.parse(l));
const scores = fs.readFileSync(process.env.PG_SCORES, "utf8").trim().split("\n").map(l => JSON.parse(l));
const ID = "Prompt-Guard-86M", REFUSAL = "Sorry, I cannot do this.";
const f32 = Math.fround;
const sc = texts.map((t, i) => {
    const p = scores[i].labels; // softmax of the (single) window, float32 printed with 9 digits
    return {text: t, emb: f32(p.INJECTION), mal: f32(p.JAILBREAK), inj: scores[i].injection_score, jb: scores[i].jailbreak_score};
});
// Python's repr of a double: shortest round-trip digits, positional for 1e-4 <= |x| < 1e16
function pyRepr(x) {
    if (x === 0) return "0.0";
    const [m, e] = x.toExponential().split("e");
    const exp = Number(e);
    if (exp < -4 || exp >= 16) return m + "e" + (exp < 0 ? "-" : "+") + String(Math.abs(exp)).padStart(2, "0");
    const s = x.toString();
    return s.includes(".") ? s : s + ".0";
}
const injV = s => s.emb + s.mal > 0.9, jbV = s => f32(s.jb) > 0.9;
// texts clearly on one side (no rounding question): margins of 0.03 around 0.9
const HI = sc.find(s => s.inj > 0.93 && s.jb < 0.87), LO = sc.find(s => s.inj < 0.87), JB = sc.find(s => s.jb > 0.93);
check(HI && LO && JB, "the candidates include an injection violation, a safe text and a jailbreak violation",
    JSON.stringify(sc.map(s => [s.inj, s.jb])));
if (!(HI && LO && JB)) done("prompt_guard_client");

const main = testModel();
const srv = await startServer(["-m", main, "--parallel", "2", "--prompt-guard", dir, "--shields", "prompt-guard", "-t", "2"]);
const ls = new LlamaStackClient({baseURL: srv.base, maxRetries: 0});
const oa = new OpenAI({baseURL: srv.base + "/v1", apiKey: "unused", maxRetries: 0});
const tally = {injection: [0, 0], jailbreak: [0, 0]};
function wantViolation(s, type = "injection") {
    const v = type === "injection" ? injV(s) : jbV(s);
    tally[type][v ? 1 : 0]++;
    if (!v) return null;
    return type === "injection" ? `prompt_injection:embedded=${pyRepr(s.emb)},malicious=${pyRepr(s.mal)}`
        : `prompt_injection:malicious=${pyRepr(f32(s.jb))}`;
}
function sameViolation(got, want) {
    if (want === null) return got === null;
    return got && got.violation_level === "error" && got.user_message === REFUSAL && got.metadata.violation_type === want;
}
async function raw(route, body) {
    const r = await fetch(srv.base + route, {method: "POST", headers: {"Content-Type": "application/json"},
        body: typeof body === "string" ? body : JSON.stringify(body)});
    const j = await r.json();
    return [r.status, j, j.error?.message ?? ""];
}

try {
    const list = await ls.shields.list();
    check(Array.isArray(list) && list.length === 1 && list[0].identifier === ID && list[0].provider_id === "prompt-guard" &&
        list[0].type === "shield", "shields.list names Prompt-Guard-86M (provider prompt-guard)", JSON.stringify(list));
    check((await ls.shields.retrieve(ID)).identifier === ID, "shields.retrieve");

    // every candidate as the last user message: verdict and violation string from herd classify's scores
    let nOk = 0;
    for (const s of sc) {
        const r = await ls.safety.runShield({shield_id: ID, messages: [{role: "user", content: s.text}]});
        const want = wantViolation(s);
        if (sameViolation(r.violation, want)) nOk++;
        else check(false, `runShield "${s.text}"`, JSON.stringify([r, want]));
    }
    check(nOk === sc.length, `runShield on ${sc.length} texts: violations (${sc.filter(injV).length}) and strings as herd classify's scores give`);
    // only the last message counts (Llama Stack's provider); any role; text parts are joined
    {
        const r1 = await ls.safety.runShield({shield_id: ID, messages: [{role: "user", content: HI.text},
            {role: "assistant", content: "ok"}, {role: "user", content: LO.text}]});
        check(sameViolation(r1.violation, wantViolation(LO)), "runShield: an injection before the last message is not assessed", JSON.stringify(r1));
        const half = Math.floor(HI.text.length / 2);
        const r2 = await ls.safety.runShield({shield_id: ID, messages: [{role: "user", content: LO.text},
            {role: "tool", tool_call_id: "c1", content: [{type: "text", text: HI.text.slice(0, half)}, {type: "text", text: HI.text.slice(half)}]}]});
        check(sameViolation(r2.violation, wantViolation(HI)), "runShield: a tool result in text parts is assessed", JSON.stringify(r2));
    }
    // params.guard_type "jailbreak" (raw request: this client version sends no params)
    for (const s of [JB, LO, HI]) {
        const [st, j] = await raw("/v1/safety/run-shield", {shield_id: ID, messages: [{role: "user", content: s.text}],
            params: {guard_type: "jailbreak"}});
        check(st === 200 && sameViolation(j.violation, wantViolation(s, "jailbreak")),
            `run-shield guard_type jailbreak (p2 ${s.jb.toFixed(3)})`, JSON.stringify(j));
    }
    // concurrent requests (one classification at a time under the lock): the same answers
    {
        const seq = [];
        for (const s of sc.slice(0, 6)) seq.push(await ls.safety.runShield({shield_id: ID, messages: [{role: "user", content: s.text}]}));
        const par = await Promise.all(sc.slice(0, 6).map(s => ls.safety.runShield({shield_id: ID, messages: [{role: "user", content: s.text}]})));
        for (const s of [...sc.slice(0, 6), ...sc.slice(0, 6)]) wantViolation(s);
        check(JSON.stringify(par) === JSON.stringify(seq), "6 concurrent runShield requests == one at a time");
    }

    // the input shield on chat completions: refused with Prompt Guard's words, or the greedy answer
    for (const [i, s] of [HI, LO].entries()) {
        const messages = [{role: "user", content: s.text}];
        const want = wantViolation(s);
        const answer = want ? REFUSAL : herdRunGreedy(main, herdChatIds(messages), 6).text;
        const r = await oa.chat.completions.create({model: "serve-tiny31-q8_0", messages, temperature: 0, max_tokens: 6});
        const ch = r.choices[0];
        check(ch.message.content === answer && (ch.finish_reason === "content_filter") === !!want &&
            (want ? sameViolation(r.violation, want) && r.violation.metadata.shield === "input" &&
                r.violation.metadata.shield_id === ID : !r.violation),
            `chat ${i}: ${want ? "refused by the Prompt Guard input shield" : "passed, the greedy answer"}`, JSON.stringify([r, answer]));
        wantViolation(s);
        const stream = await oa.chat.completions.create({model: "serve-tiny31-q8_0", messages, temperature: 0, max_tokens: 6, stream: true});
        let text = "", finish = null, sv = null;
        for await (const c of stream) {
            if (c.choices[0]?.delta?.content) text += c.choices[0].delta.content;
            if (c.choices[0]?.finish_reason) finish = c.choices[0].finish_reason;
            if (c.violation) sv = c.violation;
        }
        check(text === answer && (finish === "content_filter") === !!want && (want ? sameViolation(sv, want) : !sv),
            `chat ${i} (stream)`, JSON.stringify([text, finish, sv]));
    }
    // an assistant turn last is not assessed by the input shield
    {
        const messages = [{role: "user", content: LO.text}, {role: "assistant", content: HI.text}];
        const r = await oa.chat.completions.create({model: "serve-tiny31-q8_0", messages, temperature: 0, max_tokens: 2});
        check(r.choices[0].finish_reason !== "content_filter", "chat ending with an assistant turn: not assessed", JSON.stringify(r));
    }

    // bad requests: 4xx and a clear message
    const bad = [
        [{shield_id: "Prompt-Guard-22M", messages: [{role: "user", content: "x"}]}, 404, "no shield 'Prompt-Guard-22M'"],
        [{shield_id: ID, messages: []}, 400, "'messages' must be a non-empty array"],
        [{shield_id: ID, messages: [{role: "wizard", content: "x"}]}, 400, "messages[0]"],
        [{shield_id: ID}, 400, "'messages' must be a non-empty array"],
        [{shield_id: 7, messages: [{role: "user", content: "x"}]}, 400, "'shield_id' must be a string"],
        [{shield_id: ID, messages: [{role: "user", content: "x"}], params: {guard_type: "toxicity"}}, 400, "guard_type"],
        [{shield_id: ID, messages: [{role: "user", content: "x"}], params: 3}, 400, "'params' must be an object"],
        [{shield_id: ID, messages: [{role: "user", content: "a".repeat(20000)}]}, 400, "at most 16384"],
        ["{\"shield_id\": ", 400, ""],
    ];
    for (const [body, status, needle] of bad) {
        const [st, , msg] = await raw("/v1/safety/run-shield", body);
        check(st === status && msg.includes(needle), `bad run-shield -> ${status} (${needle || "malformed JSON"})`, `${st} ${msg}`);
    }
    {
        const [st, , msg] = await raw("/v1/chat/completions", {messages: [{role: "user", content: "b".repeat(20000)}], max_tokens: 1});
        check(st === 400 && msg.includes("input shield") && msg.includes("at most 16384"), "oversized chat input -> 400", `${st} ${msg}`);
    }
    // /metrics: one count per verdict under its guard type
    const met = await (await fetch(srv.base + "/metrics")).text();
    const count = (t, v) => Number((met.match(new RegExp(`herd_prompt_guard_verdicts_total\\{guard_type="${t}",verdict="${v}"\\} (\\d+)`)) || [])[1]);
    check(count("injection", "safe") === tally.injection[0] && count("injection", "violation") === tally.injection[1] &&
        count("jailbreak", "safe") === tally.jailbreak[0] && count("jailbreak", "violation") === tally.jailbreak[1],
        `/metrics: injection ${tally.injection}, jailbreak ${tally.jailbreak} (safe, violation)`,
        met.split("\n").filter(l => l.includes("prompt_guard")).join(" | "));
} catch (e) {
    check(false, "no exception", e.stack);
}
check((await srv.stop()) === 0, "SIGTERM: clean exit");

// --shields prompt-guard without --prompt-guard, a bad directory, a bad guard type: one error line, exit 1
for (const [args, needle] of [[["--shields", "prompt-guard"], "--shields prompt-guard needs --prompt-guard"],
    [["--prompt-guard", dir + "-missing"], "--prompt-guard"], [["--prompt-guard", dir, "--prompt-guard-type", "x"], "not injection or jailbreak"]]) {
    const p = spawnSync(HERD, ["serve", "-m", main, "--port", "0", ...args], {timeout: 60000});
    const err = p.stderr.toString().trim();
    check(p.status === 1 && err.split("\n").length === 1 && err.includes(needle), `herd serve ${args.join(" ")}: one error line`, err);
}
done("prompt_guard_client");
