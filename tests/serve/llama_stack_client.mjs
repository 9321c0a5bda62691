// herd serve with the official Llama Stack TypeScript client (npm llama-stack-client 0.7.3):
// models list and retrieve, chat completion streaming and not, completions, embeddings; API key.
import LlamaStackClient from "llama-stack-client";
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
done("llama_stack_client");
