// Tool calling through herd serve with the OpenAI SDK, on a scripted model (--test-script: the
// server forces the generated tokens from a list while the model runs, so the replies are known):
// calls in each format come back as tool_calls (finish_reason tool_calls), streamed as tool_call
// deltas with no call text leaked as content; the client sends the call and its result back and the
// prompt is the official template's (its token count equals `herd format --tokens`).
import OpenAI from "openai";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {execFileSync} from "node:child_process";
import {startServer, testModel, check, done, HERD, VOCAB} from "./lib.mjs";

const script = [
    '{"name": "get_weather", "parameters": {"city": "Paris", "unit": "celsius"}}<|eot_id|>',
    '{"name": "get_weather", "parameters": {"city": "Paris", "unit": "celsius"}}<|eot_id|>',
    "It is 21 degrees and sunny in Paris.<|eot_id|>",
    "It is 21 degrees and sunny in Paris.<|eot_id|>",
    '<function=get_weather>{"city": "Rome"}</function><|eot_id|>',
    '<|python_tag|>{"type": "function", "name": "get_weather", "parameters": {"city": "Oslo"}}<|eom_id|>',
    "Hello there, no tool needed.<|eot_id|>",
    '{"name": "get_weather", "parameters": {"city": "Oslo"}} trailing words<|eot_id|>',
];
const sf = path.join(os.tmpdir(), `herd-script-${process.pid}.json`);
fs.writeFileSync(sf, JSON.stringify(script));
const model = testModel();
const srv = await startServer(["-m", model, "--parallel", "2", "--alias", "tiny", "--test-script", sf]);
const client = new OpenAI({baseURL: srv.base + "/v1", apiKey: "x", maxRetries: 0});
const tools = [{type: "function", function: {name: "get_weather", description: "Current weather in a city.",
    parameters: {type: "object", properties: {city: {type: "string"}, unit: {type: "string", enum: ["celsius", "fahrenheit"]}},
        required: ["city"]}}}];
const user = {role: "user", content: "What's the weather in Paris?"};

function promptTokens(messages, withTools = true) {
    const mf = path.join(os.tmpdir(), `herd-m-${process.pid}.json`), tf = path.join(os.tmpdir(), `herd-t-${process.pid}.json`);
    fs.writeFileSync(mf, JSON.stringify(messages));
    fs.writeFileSync(tf, JSON.stringify(tools));
    const args = ["format", "-m", VOCAB, "--messages", mf, "--tokens"];
    if (withTools) args.push("--tools", tf);
    return JSON.parse(execFileSync(HERD, args).toString()).length;
}

try {
    // 1. a JSON call, not streamed
    const r1 = await client.chat.completions.create({model: "tiny", messages: [user], tools});
    const c1 = r1.choices[0];
    check(c1.finish_reason === "tool_calls" && c1.message.content === null && c1.message.tool_calls.length === 1,
        "JSON call -> tool_calls, finish_reason tool_calls", JSON.stringify(c1));
    const call = c1.message.tool_calls[0];
    check(call.type === "function" && call.function.name === "get_weather" && call.id.startsWith("call_") &&
        JSON.stringify(JSON.parse(call.function.arguments)) === '{"city":"Paris","unit":"celsius"}', "the call's name and arguments");
    check(r1.usage.prompt_tokens === promptTokens([user]), "prompt = official template with tools (token count)",
        `${r1.usage.prompt_tokens} vs ${promptTokens([user])}`);

    // 2. the same call streamed: tool_call deltas, no content leaked
    const s2 = await client.chat.completions.create({model: "tiny", messages: [user], tools, stream: true});
    let content2 = "", name2 = "", args2 = "", finish2 = null, id2 = null;
    for await (const ch of s2) {
        const d = ch.choices[0]?.delta;
        if (!d) continue;
        if (d.content) content2 += d.content;
        for (const t of d.tool_calls ?? []) {
            if (t.id) id2 = t.id;
            if (t.function?.name) name2 += t.function.name;
            if (t.function?.arguments) args2 += t.function.arguments;
        }
        if (ch.choices[0].finish_reason) finish2 = ch.choices[0].finish_reason;
    }
    check(content2 === "" && name2 === "get_weather" && JSON.parse(args2).city === "Paris" && finish2 === "tool_calls" && id2,
        "streamed: tool_call deltas, no partial JSON as content", JSON.stringify([content2, name2, args2, finish2]));

    // 3. round trip: the call and its result go back; the answer is plain content
    const back = [user, {role: "assistant", content: null, tool_calls: [call]},
                  {role: "tool", tool_call_id: call.id, content: '{"temperature": 21, "sky": "sunny"}'}];
    const r3 = await client.chat.completions.create({model: "tiny", messages: back, tools});
    check(r3.choices[0].message.content === "It is 21 degrees and sunny in Paris." && r3.choices[0].finish_reason === "stop" &&
        !r3.choices[0].message.tool_calls, "tool result round trip -> final answer", JSON.stringify(r3.choices[0]));
    check(r3.usage.prompt_tokens === promptTokens(back.map(m => m.role === "assistant" ?
        {...m, tool_calls: [{...call}]} : m)), "round-trip prompt = official template (token count)",
        `${r3.usage.prompt_tokens} vs ${promptTokens(back)}`);
    const s4 = await client.chat.completions.create({model: "tiny", messages: back, tools, stream: true});
    let content4 = "";
    for await (const ch of s4) content4 += ch.choices[0]?.delta?.content ?? "";
    check(content4 === "It is 21 degrees and sunny in Paris.", "round trip streamed", content4);

    // 5. <function=...> and 6. <|python_tag|>{...}<|eom_id|>
    const r5 = await client.chat.completions.create({model: "tiny", messages: [user], tools});
    check(r5.choices[0].message.tool_calls?.[0]?.function.name === "get_weather" &&
        JSON.parse(r5.choices[0].message.tool_calls[0].function.arguments).city === "Rome", "<function=...> format");
    const r6 = await client.chat.completions.create({model: "tiny", messages: [user], tools});
    check(r6.choices[0].message.tool_calls?.[0]?.function.name === "get_weather" &&
        JSON.parse(r6.choices[0].message.tool_calls[0].function.arguments).city === "Oslo" &&
        r6.choices[0].finish_reason === "tool_calls", "<|python_tag|>{...}<|eom_id|> format");

    // 7. plain text with tools offered: content, finish stop; 8. malformed call: stays content
    const s7 = await client.chat.completions.create({model: "tiny", messages: [user], tools, stream: true});
    let content7 = "", finish7 = null, calls7 = 0;
    for await (const ch of s7) {
        content7 += ch.choices[0]?.delta?.content ?? "";
        calls7 += ch.choices[0]?.delta?.tool_calls?.length ?? 0;
        finish7 = ch.choices[0]?.finish_reason ?? finish7;
    }
    check(content7 === "Hello there, no tool needed." && calls7 === 0 && finish7 === "stop", "plain reply with tools offered");
    const r8 = await client.chat.completions.create({model: "tiny", messages: [user], tools});
    check(!r8.choices[0].message.tool_calls && r8.choices[0].message.content.includes("trailing words"),
        "a malformed call stays content", JSON.stringify(r8.choices[0].message));

    // tool_choice none hides the tools (prompt without them)
    const r9 = await client.chat.completions.create({model: "tiny", messages: [user], tools, tool_choice: "none", max_tokens: 2});
    check(r9.usage.prompt_tokens === promptTokens([user], false), "tool_choice none: no tools in the prompt");
} catch (e) {
    check(false, "no exception", e.stack);
}
check((await srv.stop()) === 0, "SIGTERM: clean exit");
fs.unlinkSync(sf);
done("tools_client");
