// herd serve with the official OpenAI client (npm `openai`): models, chat (plain and streaming),
// usage counts, stop sequences, seeds, logprobs, max_tokens, completions (text and ids), embeddings
// (float and base64), concurrency, greedy == `herd run --temp 0`, and batch invariance: 16 concurrent
// greedy requests with different prompts each give exactly their solo output.
import OpenAI from "openai";
import {execFileSync} from "node:child_process";
import {startServer, testModel, check, done, herdChatIds, herdRunGreedy, HERD} from "./lib.mjs";

const model = testModel();
const user = t => [{role: "user", content: t}];
// the batch-invariance prompts' solo runs come first, before the server has any connection: 16
// synchronous herd runs block Node's event loop, on a loaded machine longer than the server's 30 s idle
// timeout, and the client would then reuse a keep-alive socket that the server had closed meanwhile
const prompts = Array.from({length: 16}, (_, i) => user(`Prompt number ${i}: ${"abc ".repeat(i % 5)}go`));
const solos = prompts.map(m => herdRunGreedy(model, herdChatIds(m), 20).text);
const srv = await startServer(["-m", model, "--parallel", "4", "-c", "4096", "--alias", "tiny"]);
const client = new OpenAI({baseURL: srv.base + "/v1", apiKey: "unused", maxRetries: 0});

try {
    // models
    const models = await client.models.list();
    check(models.data.length === 1 && models.data[0].id === "tiny", "models.list returns the served model");
    const one = await client.models.retrieve("tiny");
    check(one.id === "tiny" && one.object === "model", "models.retrieve");
    const version = execFileSync(HERD, ["--version"]).toString().trim(); // "herd 0.9.0 (git 8d8a447)"
    const md = one.metadata || {};
    check(`herd ${md.herd_version}${md.herd_git ? ` (git ${md.herd_git})` : ""}` === version,
        "models: metadata.herd_version (and herd_git) as herd --version says", JSON.stringify([md, version]));

    // plain chat, greedy: equals herd run --temp 0 on the same prompt ids
    const msgs = [{role: "system", content: "You are terse."}, {role: "user", content: "Name three colors."}];
    const r1 = await client.chat.completions.create({model: "tiny", messages: msgs, temperature: 0, max_tokens: 24});
    const ids = herdChatIds(msgs);
    const solo = herdRunGreedy(model, ids, 24);
    check(r1.choices[0].message.role === "assistant", "chat: assistant message");
    check(r1.choices[0].message.content === solo.text, "chat greedy == herd run --temp 0",
        JSON.stringify([r1.choices[0].message.content, solo.text]));
    check(r1.usage.prompt_tokens === ids.length, "usage.prompt_tokens counts the template's tokens",
        `${r1.usage.prompt_tokens} vs ${ids.length}`);
    check(r1.usage.completion_tokens === solo.ids.length && r1.usage.total_tokens === ids.length + solo.ids.length,
        "usage.completion_tokens and total_tokens", JSON.stringify(r1.usage));
    check(["length", "stop"].includes(r1.choices[0].finish_reason), "finish_reason");
    check(r1.id.startsWith("chatcmpl-") && r1.object === "chat.completion", "id and object");

    // streaming: deltas add up to the non-streamed text; usage chunk when asked
    const stream = await client.chat.completions.create({model: "tiny", messages: msgs, temperature: 0, max_tokens: 24,
        stream: true, stream_options: {include_usage: true}});
    let text = "", finish = null, usage = null, chunks = 0, role = null;
    for await (const c of stream) {
        chunks++;
        if (c.usage) usage = c.usage;
        const ch = c.choices[0];
        if (!ch) continue;
        if (ch.delta.role) role = ch.delta.role;
        if (ch.delta.content) text += ch.delta.content;
        if (ch.finish_reason) finish = ch.finish_reason;
    }
    check(text === r1.choices[0].message.content, "stream: deltas == non-streamed text", JSON.stringify([text]));
    check(role === "assistant" && finish === r1.choices[0].finish_reason, "stream: role and finish_reason");
    check(usage && usage.prompt_tokens === ids.length && usage.completion_tokens === solo.ids.length,
        "stream: include_usage chunk", JSON.stringify(usage));

    // max_tokens -> finish_reason length
    const r2 = await client.chat.completions.create({model: "tiny", messages: user("Count."), temperature: 0,
        max_completion_tokens: 5});
    check(r2.usage.completion_tokens <= 5, "max_completion_tokens bounds the reply");
    if (r2.usage.completion_tokens === 5) check(r2.choices[0].finish_reason === "length", "finish_reason length");

    // stop: cut the greedy text at a string taken from its middle
    const full = r1.choices[0].message.content;
    if (full.length > 8) {
        const stop = full.slice(Math.floor(full.length / 2), Math.floor(full.length / 2) + 3);
        const r3 = await client.chat.completions.create({model: "tiny", messages: msgs, temperature: 0, max_tokens: 24,
            stop: [stop, "\u0001never"]});
        check(r3.choices[0].message.content === full.slice(0, full.indexOf(stop)) && r3.choices[0].finish_reason === "stop",
            "stop sequence cuts the text before it", JSON.stringify([r3.choices[0].message.content, stop]));
    } else check(false, "greedy text long enough to test stop sequences", JSON.stringify(full));

    // seeds: same seed same text; other seed (very likely) other text
    const sampled = s => client.chat.completions.create({model: "tiny", messages: user("Tell a story."), temperature: 1,
        max_tokens: 16, seed: s}).then(r => r.choices[0].message.content);
    const [a, b, c2] = await Promise.all([sampled(1234), sampled(1234), sampled(99)]);
    check(a === b, "seed reproduces the sample", JSON.stringify([a, b]));
    check(a !== c2, "another seed gives another sample");

    // logprobs
    const r4 = await client.chat.completions.create({model: "tiny", messages: user("Hi"), temperature: 0, max_tokens: 4,
        logprobs: true, top_logprobs: 3});
    const lp = r4.choices[0].logprobs.content;
    check(lp.length === r4.usage.completion_tokens && lp.every(e => e.top_logprobs.length === 3 && e.logprob <= 0),
        "logprobs: one entry per token, 3 alternatives");
    check(lp.every(e => Math.abs(e.logprob - e.top_logprobs[0].logprob) < 1e-5),
        "greedy token is the top alternative");

    // completions: text prompt and token ids give the same greedy text
    const p1 = await client.completions.create({model: "tiny", prompt: "Once upon a time", max_tokens: 12, temperature: 0});
    check(p1.object === "text_completion" && typeof p1.choices[0].text === "string", "completions: text prompt");
    const pids = JSON.parse((await import("node:child_process")).execFileSync(process.env.HERD || "build/herd",
        ["tokenize", "-m", model, "-p", "Once upon a time"]).toString());
    const p2 = await client.completions.create({model: "tiny", prompt: pids, max_tokens: 12, temperature: 0});
    check(p1.choices[0].text === p2.choices[0].text && p2.usage.prompt_tokens === pids.length,
        "completions: token-id prompt == text prompt");
    const p3 = await client.completions.create({model: "tiny", prompt: "Hello", max_tokens: 6, temperature: 0, stream: true});
    let ptext = "";
    for await (const ch of p3) ptext += ch.choices[0]?.text ?? "";
    const p4 = await client.completions.create({model: "tiny", prompt: "Hello", max_tokens: 6, temperature: 0});
    check(ptext === p4.choices[0].text, "completions: stream == non-stream");

    // embeddings: the SDK asks for base64 by default and decodes it; floats when asked
    const e1 = await client.embeddings.create({model: "tiny", input: ["hello world", "bonjour"]});
    const v = e1.data[0].embedding;
    const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
    check(e1.data.length === 2 && v.length === 256 && Math.abs(norm - 1) < 1e-4, "embeddings: 2 unit vectors of n_embd",
        `${e1.data.length} ${v.length} ${norm}`);
    const e2 = await client.embeddings.create({model: "tiny", input: "hello world", encoding_format: "float"});
    check(e2.data[0].embedding.every((x, i) => Math.abs(x - v[i]) < 1e-6), "embeddings: float == base64, same input");
    check(e1.usage.prompt_tokens > 0, "embeddings: usage");

    // batch invariance: 16 different greedy prompts at once == each alone
    // (prompts and solos: computed at the top)
    const together = await Promise.all(prompts.map(m => client.chat.completions.create({model: "tiny", messages: m,
        temperature: 0, max_tokens: 20}).then(r => r.choices[0].message.content)));
    const same = together.filter((t, i) => t === solos[i]).length;
    check(same === 16, "batch invariance: 16 concurrent greedy requests == their solo runs", `${same}/16 identical`);

    // prefix cache: a second request sharing a long system prompt starts from the cached prefix and
    // still gives exactly its solo greedy output
    const sys = {role: "system", content: "You are a careful assistant. " + "Always answer in full sentences. ".repeat(20)};
    const q1 = [sys, {role: "user", content: "First question?"}], q2 = [sys, {role: "user", content: "Second one?"}];
    await client.chat.completions.create({model: "tiny", messages: q1, temperature: 0, max_tokens: 4});
    const r5 = await client.chat.completions.create({model: "tiny", messages: q2, temperature: 0, max_tokens: 12});
    const cached = r5.usage.prompt_tokens_details?.cached_tokens ?? 0;
    const sysLen = herdChatIds([sys]).length - 4; /* the system block, without the generation prompt */
    check(cached >= sysLen, "prefix cache: the shared system prompt is reused", `${cached} cached, system ${sysLen}`);
    check(r5.choices[0].message.content === herdRunGreedy(model, herdChatIds(q2), 12).text,
        "prefix cache: the output equals the uncached solo run");

    // errors come back as OpenAI errors through the SDK
    try {
        await client.chat.completions.create({model: "nope", messages: user("x")});
        check(false, "unknown model rejected");
    } catch (e) { check(e.status === 404, "unknown model -> 404 via the SDK", String(e.status)); }
} catch (e) {
    check(false, "no exception", e.stack);
}
const code = await srv.stop();
check(code === 0, "SIGTERM: clean exit", String(code));
done("openai_client");
