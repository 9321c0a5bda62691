// llama.cpp side of bench/guard (node-llama-cpp 3.22.1 = llama.cpp v0.5.0, CPU): the same prompt ids
// evaluated into an empty sequence in one batch, then GEN single-token evaluations (the verdict's
// length in herd; llama.cpp's sampling is not timed, as if free), one warm-up then REPS timed runs.
//   node bench/guard_llama.mjs MODEL.gguf IDS.json GEN THREADS REPS   -> {"latency_s", "latency_sd"}
import fs from "node:fs";
import {getLlama} from "node-llama-cpp";
const [modelPath, idsPath, genArg, threadsArg, repsArg] = process.argv.slice(2);
const ids = JSON.parse(fs.readFileSync(idsPath, "utf8"));
const nGen = Number(genArg), threads = Number(threadsArg), reps = Number(repsArg);
const llama = await getLlama({build: "never", gpu: false, logLevel: "error", maxThreads: threads});
const model = await llama.loadModel({modelPath});
const ctx = await model.createContext({contextSize: 1024, batchSize: 512, threads: {ideal: threads, min: threads}});
const seq = ctx.getSequence();
const times = [];
for (let r = -1; r < reps; r++) {
    await seq.clearHistory();
    const t0 = performance.now();
    await seq.evaluateWithoutGeneratingNewTokens(ids);
    for (let i = 0; i < nGen; i++) await seq.evaluateWithoutGeneratingNewTokens([19193]);
    if (r >= 0) times.push((performance.now() - t0) / 1000);
}
const m = times.reduce((a, b) => a + b, 0) / times.length;
const sd = times.length > 1 ? Math.sqrt(times.reduce((a, b) => a + (b - m) ** 2, 0) / (times.length - 1)) : 0;
console.log(JSON.stringify({latency_s: m, latency_sd: sd}));
await seq.dispose();
await ctx.dispose();
await model.dispose();
