// herd serve with the official Llama Stack TypeScript client (npm llama-stack-client 0.7.3):
// models list and retrieve, chat completion streaming and not, completions, embeddings; API key; tool
// calls (on a scripted model) as Llama Stack's client receives them, streaming and not, and a tool
// result sent back.
import LlamaStackClient from "llama-stack-client";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {startServer, testModel, check, done, herdChatIds, herdRunGreedy} from "./lib.mjs";

const model = testModel();
const srv = await startServer(["-m", model, "--parallel", "2", "--alias", "llama3-tiny", "--api-key", "s3cret"]);
const client = new LlamaStackClient({baseURL: srv.base, apiKey: "s3cret", maxRetries: 0});

try {
    const list = await client.models.list();
    check(Array.isArray(list) && list.length === 1 && list[0].id === "llama3-tiny", "models.list", JSON.stringify(list));
    const m = await client.models.retrieve("llama3-tiny");
    check(m.identifier === "llama3-tiny" && m.provider_id === "herd" && m.model_type === "llm",
        "models.retrieve (Llama Stack fields)", JSON.stringify(m));

    const messages = [{role: "system", content: "Answer briefly."}, {role: "user", content: "What is 2 + 2?"}];
    const r = await client.chat.completions.create({model: "llama3-tiny", messages, temperature: 0, max_tokens: 16});
    const solo = herdRunGreedy(model, herdChatIds(messages), 16);
    check(r.choices[0].message.content === solo.text, "chat.completions.create (non-stream) == herd run greedy",
        JSON.stringify([r.choices[0].message.content, solo.text]));
    check(r.usage.completion_tokens === solo.ids.length, "usage");

    const stream = await client.chat.completions.create({model: "llama3-tiny", messages, temperature: 0, max_tokens: 16,
        stream: true});
    let text = "", finish = null;
    for await (const c of stream) {
        const ch = c.choices[0];
        if (ch?.delta?.content) text += ch.delta.content;
        if (ch?.finish_reason) finish = ch.finish_reason;
    }
    check(text === solo.text && finish !== null, "chat.completions.create (stream)", JSON.stringify([text, finish]));

    const comp = await client.completions.create({model: "llama3-tiny", prompt: "The sky is", max_tokens: 8, temperature: 0});
    check(typeof comp.choices[0].text === "string" && comp.choices[0].finish_reason, "completions.create");

    const e = await client.embeddings.create({model: "llama3-tiny", input: ["a cat", "a dog"]});
    check(e.data.length === 2 && e.data[0].embedding.length === 256, "embeddings.create",
        JSON.stringify(e.data.map(d => d.embedding.length)));

    // the key is required
    const anon = new LlamaStackClient({baseURL: srv.base, apiKey: "wrong", maxRetries: 0});
    try {
        await anon.models.list();
        check(false, "a wrong API key is rejected");
    } catch (err) { check(err.status === 401, "wrong API key -> 401", String(err.status)); }
    check((await fetch(srv.base + "/health")).status === 200, "/health needs no key");
} catch (e) {
    check(false, "no exception", e.stack);
}
check((await srv.stop()) === 0, "SIGTERM: clean exit");

// tool calls through the Llama Stack client (scripted outputs: a built-in call, a custom call, an answer)
const sf = path.join(os.tmpdir(), `herd-ls-script-${process.pid}.json`);
fs.writeFileSync(sf, JSON.stringify([
    '<|python_tag|>brave_search.call(query="weather in Paris")<|eom_id|>',
    '{"name": "get_weather", "parameters": {"city": "Paris"}}<|eot_id|>',
    "It is sunny in Paris.<|eot_id|>"]));
const ts = await startServer(["-m", model, "--alias", "llama3-tiny", "--test-script", sf]);
const tc = new LlamaStackClient({baseURL: ts.base, maxRetries: 0});
const tools = [{type: "function", function: {name: "brave_search", parameters: {type: "object",
        properties: {query: {type: "string"}}}}},
    {type: "function", function: {name: "get_weather", parameters: {type: "object", properties: {city: {type: "string"}},
        required: ["city"]}}}];
const ask = [{role: "user", content: "Weather in Paris?"}];
try {
    const a = await tc.chat.completions.create({model: "llama3-tiny", messages: ask, tools, max_tokens: 32});
    const call = a.choices[0].message.tool_calls?.[0];
    check(a.choices[0].finish_reason === "tool_calls" && call?.function.name === "brave_search" &&
        JSON.parse(call.function.arguments).query === "weather in Paris", "tools: a built-in call as tool_calls",
        JSON.stringify(a.choices[0]));
    const st = await tc.chat.completions.create({model: "llama3-tiny", messages: ask, tools, max_tokens: 32, stream: true});
    let args = "", name = "", content = "", finish = null;
    for await (const c of st) {
        const d = c.choices[0]?.delta;
        for (const t of d?.tool_calls ?? []) { name += t.function?.name ?? ""; args += t.function?.arguments ?? ""; }
        content += d?.content ?? "";
        if (c.choices[0]?.finish_reason) finish = c.choices[0].finish_reason;
    }
    check(name === "get_weather" && JSON.parse(args).city === "Paris" && content === "" && finish === "tool_calls",
        "tools: a custom call streamed as tool_call deltas", JSON.stringify([name, args, content, finish]));
    const back = await tc.chat.completions.create({model: "llama3-tiny", tools, max_tokens: 32, messages: [...ask,
        {role: "assistant", content: "", tool_calls: [{id: "c1", type: "function",
            function: {name: "get_weather", arguments: '{"city": "Paris"}'}}]},
        {role: "tool", tool_call_id: "c1", content: '{"sky": "sunny"}'}]});
    check(back.choices[0].message.content === "It is sunny in Paris." && back.choices[0].finish_reason === "stop",
        "tools: the result sent back, the answer", JSON.stringify(back.choices[0]));
} catch (e) {
    check(false, "tools: no exception", e.stack);
}
check((await ts.stop()) === 0, "tools server: clean exit");
fs.rmSync(sf, {force: true});
done("llama_stack_client");
