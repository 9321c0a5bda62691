// Load: 32 concurrent streaming clients for 60 s against one server (the ASan build when
// HERD_SERVE_BIN points to it), loopback only, bounded in count and time. Every response must be
// complete: SSE ending with [DONE], one finish_reason, and as many content tokens as usage says.
// Zero crashes, zero lost or truncated responses, and a clean exit (ASan: no leaks or errors).
import {startServer, testModel, check, done} from "../serve/lib.mjs";

const CLIENTS = Number(process.env.LOAD_CLIENTS || 32), SECONDS = Number(process.env.LOAD_SECONDS || 60);
const bin = process.env.HERD_SERVE_BIN;
const srv = await startServer(["-m", testModel(), "--parallel", "8", "-c", "8192", "--max-queue", "64", "--alias", "tiny"],
    bin ? {bin} : {});
const deadline = Date.now() + SECONDS * 1000;
let requests = 0, complete = 0, failures = [], tokens = 0;

async function one(i, k) {
    const maxTokens = 8 + ((i * 7 + k * 13) % 40);
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), 120000);
    try {
        const r = await fetch(srv.base + "/v1/chat/completions", {method: "POST", signal: ctl.signal,
            headers: {"Content-Type": "application/json"},
            body: JSON.stringify({model: "tiny", stream: true, max_tokens: maxTokens, temperature: 0.8, seed: i * 1000 + k,
                stream_options: {include_usage: true},
                messages: [{role: "system", content: "You are a load test."},
                           {role: "user", content: `client ${i} request ${k}: ${"lorem ipsum ".repeat(k % 7)}`}]})});
        if (r.status !== 200) throw new Error(`status ${r.status}: ${await r.text()}`);
        const body = await r.text();
        if (!body.endsWith("data: [DONE]\n\n")) throw new Error("stream did not end with [DONE]");
        const chunks = body.split("\n\n").filter(e => e.startsWith("data: {")).map(e => JSON.parse(e.slice(6)));
        const fin = chunks.filter(c => c.choices[0]?.finish_reason);
        const usage = chunks.find(c => c.usage)?.usage;
        const contentChunks = chunks.filter(c => c.choices[0]?.delta?.content !== undefined && !c.choices[0]?.delta?.role);
        if (fin.length !== 1 || !usage) throw new Error("missing finish_reason or usage");
        if (usage.completion_tokens > maxTokens) throw new Error(`more tokens than max_tokens: ${usage.completion_tokens}`);
        if (contentChunks.length > usage.completion_tokens + 1) throw new Error("more content chunks than tokens");
        tokens += usage.completion_tokens;
        complete++;
    } catch (e) {
        failures.push(`client ${i} request ${k}: ${e.message}`);
    } finally {
        clearTimeout(timer);
    }
}

const t0 = Date.now();
await Promise.all(Array.from({length: CLIENTS}, async (_, i) => {
    for (let k = 0; Date.now() < deadline; k++) {
        requests++;
        await one(i, k);
    }
}));
const secs = (Date.now() - t0) / 1000;
console.log(`${requests} requests from ${CLIENTS} clients in ${secs.toFixed(1)} s, ${tokens} tokens ` +
    `(${(tokens / secs).toFixed(1)} tokens/s aggregate)`);
check(secs >= SECONDS, `ran for at least ${SECONDS} s`);
check(requests >= CLIENTS && failures.length === 0, "every response complete", failures.slice(0, 5).join("\n"));
const m = await (await fetch(srv.base + "/metrics")).text();
check(/herd_requests_active 0\b/.test(m) && /herd_requests_queued 0\b/.test(m), "all slots free afterwards");
const code = await srv.stop();
check(code === 0, "SIGTERM: clean exit" + (bin ? " (ASan: no leaks or errors)" : ""), `${code}\n${srv.stderr().slice(-3000)}`);
done("serve_load");
