// Serving throughput: aggregate generated tokens/s and time to first token with C concurrent
// clients, herd serve vs llama.cpp (node-llama-cpp with C context sequences, which it batches
// together), same GGUF, same threads. Run by bench/serve; never part of make test.
//   node bench/serve.mjs MODEL.gguf THREADS "1 4 8 16" GEN_TOKENS
import {spawn} from "node:child_process";
import {getLlama} from "node-llama-cpp";

const [modelPath, threadsArg, clientsArg, genArg] = process.argv.slice(2);
const threads = Number(threadsArg || 2), levels = (clientsArg || "1 4 8 16").split(/\s+/).map(Number);
const GEN = Number(genArg || 64);
const prompt = i => `Client ${i} asks: please write a short paragraph about the number ${i * 7 + 3} and why it matters.`;

async function herd(C) {
    const p = spawn("build/herd", ["serve", "-m", modelPath, "--port", "0", "--parallel", String(C), "-c", String(C * 512),
        "-t", String(threads), "--alias", "m"], {stdio: ["ignore", "pipe", "inherit"]});
    const port = await new Promise(r => p.stdout.on("data", d => r(Number(String(d).trim().split("\n")[0]))));
    const base = `http://127.0.0.1:${port}`;
    // warm-up (pages the weights in)
    await fetch(base + "/v1/completions", {method: "POST", body: JSON.stringify({prompt: "warm", max_tokens: 4})});
    const t0 = performance.now();
    const ttft = [];
    let tokens = 0;
    await Promise.all(Array.from({length: C}, async (_, i) => {
        const s = performance.now();
        const r = await fetch(base + "/v1/completions", {method: "POST", headers: {"Content-Type": "application/json"},
            body: JSON.stringify({prompt: prompt(i), max_tokens: GEN, temperature: 0, stream: true,
                stream_options: {include_usage: true}})});
        const rd = r.body.getReader(), dec = new TextDecoder();
        let buf = "", first = 0;
        for (;;) {
            const {value, done} = await rd.read();
            if (done) break;
            buf += dec.decode(value, {stream: true});
            if (!first && buf.includes('"text":"') && !/"text":""/.test(buf)) first = performance.now();
            let k;
            while ((k = buf.indexOf("\n\n")) >= 0) {
                const ev = buf.slice(0, k);
                buf = buf.slice(k + 2);
                if (ev.startsWith("data: {")) {
                    const j = JSON.parse(ev.slice(6));
                    if (j.usage) tokens += j.usage.completion_tokens;
                    if (!first && j.choices?.[0]?.text) first = performance.now();
                }
            }
        }
        ttft.push((first || performance.now()) - s);
    }));
    const secs = (performance.now() - t0) / 1000;
    p.kill("SIGTERM");
    await new Promise(r => p.on("exit", r));
    return {tps: tokens / secs, ttft: ttft.reduce((a, b) => a + b, 0) / ttft.length / 1000};
}

const llama = await getLlama({build: "never", gpu: false, logLevel: "error", maxThreads: threads});
const model = await llama.loadModel({modelPath});

async function llamacpp(C) {
    const ctx = await model.createContext({sequences: C, contextSize: C * 512, threads: {ideal: threads, min: threads},
        batchSize: 512});
    const seqs = Array.from({length: C}, () => ctx.getSequence());
    { // warm-up
        const it = seqs[0].evaluate(model.tokenize("warm"), {temperature: 0});
        let n = 0;
        for await (const _ of it) if (++n >= 4) break;
        await seqs[0].clearHistory();
    }
    const t0 = performance.now();
    const ttft = [];
    let tokens = 0;
    await Promise.all(seqs.map(async (seq, i) => {
        const s = performance.now();
        let n = 0;
        for await (const _ of seq.evaluate(model.tokenize(prompt(i), false), {temperature: 0})) {
            if (n === 0) ttft.push(performance.now() - s);
            if (++n >= GEN) break;
        }
        tokens += n;
    }));
    const secs = (performance.now() - t0) / 1000;
    await ctx.dispose();
    return {tps: tokens / secs, ttft: ttft.reduce((a, b) => a + b, 0) / ttft.length / 1000};
}

console.log(`| clients | herd tokens/s | llama.cpp tokens/s | ratio | herd TTFT s | llama.cpp TTFT s |`);
console.log(`|---|---|---|---|---|---|`);
const base = {};
for (const C of levels) {
    const h = await herd(C);
    const l = await llamacpp(C);
    if (C === 1) base.h = h.tps;
    console.log(`| ${C} | ${h.tps.toFixed(1)}${base.h && C > 1 ? ` (${(h.tps / base.h).toFixed(2)}x)` : ""} | ` +
        `${l.tps.toFixed(1)} | ${(h.tps / l.tps).toFixed(2)} | ${h.ttft.toFixed(2)} | ${l.ttft.toFixed(2)} |`);
}
await model.dispose();
