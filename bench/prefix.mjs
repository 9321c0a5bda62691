// bench/prefix: TTFT (max_tokens 1, not streamed: the request's latency) of alternating 2K-token system
// prompts on one slot, prefix cache on vs off. Prints each and the median ratio.
import {spawn} from "node:child_process";

const [model, threads, reps] = process.argv.slice(2);
const S = [
    {role: "system", content: "You are a careful assistant. " + "Always answer in full sentences. ".repeat(340)},
    {role: "system", content: "You are a terse pirate. " + "Keep every reply short, matey. ".repeat(300)},
];

async function start(cacheRam) {
    const p = spawn("build/herd", ["serve", "-m", model, "--port", "0", "--parallel", "1", "-c", "4096", "-t", threads,
        "--cache-ram", String(cacheRam)], {stdio: ["ignore", "pipe", "inherit"]});
    const port = await new Promise(res => { let o = ""; p.stdout.on("data", d => { o += d; const x = o.match(/^(\d+)\n/); if (x) res(+x[1]); }); });
    return {p, base: `http://127.0.0.1:${port}`};
}
async function ask(srv, i) {
    const t0 = performance.now();
    const r = await fetch(srv.base + "/v1/chat/completions", {method: "POST", headers: {"Content-Type": "application/json"},
        body: JSON.stringify({messages: [S[i % 2], {role: "user", content: `Question number ${i}?`}], max_tokens: 1, temperature: 0})});
    const j = await r.json();
    return {ms: performance.now() - t0, prompt: j.usage.prompt_tokens, cached: j.usage.prompt_tokens_details?.cached_tokens ?? 0};
}
const median = a => [...a].sort((x, y) => x - y)[a.length >> 1];
const res = {};
for (const ram of [0, 1024]) {
    const srv = await start(ram);
    await ask(srv, 0), await ask(srv, 1); // warm: both prompts computed once
    const t = [];
    for (let i = 2; i < 2 + 2 * +reps; i++) {
        const x = await ask(srv, i);
        t.push(x.ms);
        console.log(`cache-ram ${ram}: request ${i}: ${x.prompt} prompt tokens, ${x.cached} cached, ${x.ms.toFixed(0)} ms`);
    }
    res[ram] = median(t);
    srv.p.kill("SIGTERM");
    await new Promise(r => srv.p.on("exit", r));
}
console.log(`median TTFT: uncached ${res[0].toFixed(0)} ms, cached ${res[1024].toFixed(0)} ms, ratio ${(res[0] / res[1024]).toFixed(1)}x`);
