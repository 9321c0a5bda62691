// llama.cpp side of bench/compare (node-llama-cpp 3.22.1 = llama.cpp v0.5.0, CPU):
//   node bench/llama_bench.mjs MODEL.gguf THREADS PP TG REPS [ROOFLINE_BYTES]
// Measures like llama-bench and `herd bench`: pp = one evaluation of PP tokens into an empty
// sequence, tg = TG single-token evaluations into an empty sequence, fixed pseudo-random ids.
// Prints {"pp": tokens/s mean, "pp_sd", "tg", "tg_sd"} as JSON. Run with UV_THREADPOOL_SIZE=1.
// ROOFLINE_BYTES (herd's decode_bytes): as herd bench --roofline does, each repetition then decodes
// the TG tokens again, each followed by one read of that many bytes by build/bench_readsrv (herd's
// read loop and thread pool, in its own process, on THREADS threads); adds "roofline": sum(read
// times) / sum(token times) (mean over repetitions) and "read_gb_per_s".
import {spawn} from "node:child_process";
import {createInterface} from "node:readline";
import {getLlama} from "node-llama-cpp";
const [modelPath, threadsArg, ppArg, tgArg, repsArg, roofArg] = process.argv.slice(2);
const roofBytes = Number(roofArg || 0);
const threads = Number(threadsArg), nPP = Number(ppArg), nTG = Number(tgArg), reps = Number(repsArg);
const llama = await getLlama({build: "never", gpu: false, logLevel: "error", maxThreads: threads});
const model = await llama.loadModel({modelPath});
const ctx = await model.createContext({contextSize: Math.max(nPP, nTG) + 16, batchSize: Math.max(nPP, 1),
    threads: {ideal: threads, min: threads}});
const seq = ctx.getSequence();
let st = 12345n;
const vocab = model.fileInfo.metadata.tokenizer.ggml.tokens.length;
const toks = [];
for (let i = 0; i < Math.max(nPP, nTG); i++) {
    st = (st * 6364136223846793005n + 1442695040888963407n) & ((1n << 64n) - 1n);
    toks.push(Number((st >> 33n) % BigInt(vocab)));
}
let reader = null, lines = null;
if (roofBytes > 0 && nTG > 0) {
    reader = spawn("build/bench_readsrv", [String(threads), String(roofBytes)], {stdio: ["pipe", "pipe", "inherit"]});
    lines = createInterface({input: reader.stdout})[Symbol.asyncIterator]();
    if ((await lines.next()).value !== "ready") throw new Error("bench_readsrv did not start");
}
const readOnce = async () => {
    reader.stdin.write("r\n");
    return Number((await lines.next()).value);
};
const pp = [], tg = [], rf = [];
let readTotal = 0, readCount = 0;
for (let r = -1; r < reps; r++) {
    if (nPP > 0) {
        await seq.clearHistory();
        const t0 = performance.now();
        await seq.evaluateWithoutGeneratingNewTokens(toks.slice(0, nPP));
        if (r >= 0) pp.push(nPP / ((performance.now() - t0) / 1000));
    }
    if (nTG > 0) {
        await seq.clearHistory();
        const t0 = performance.now();
        for (let i = 0; i < nTG; i++) await seq.evaluateWithoutGeneratingNewTokens([toks[i]]);
        if (r >= 0) tg.push(nTG / ((performance.now() - t0) / 1000));
    }
    if (reader && r >= 0) {
        await seq.clearHistory();
        let tTok = 0, tRead = 0;
        for (let i = 0; i < nTG; i++) {
            const t0 = performance.now();
            await seq.evaluateWithoutGeneratingNewTokens([toks[i]]);
            tTok += (performance.now() - t0) / 1000;
            tRead += await readOnce();
        }
        rf.push(tRead / tTok);
        readTotal += tRead;
        readCount += nTG;
    }
}
if (reader) reader.stdin.end();
const stat = a => {
    if (a.length === 0) return [0, 0];
    const m = a.reduce((x, y) => x + y, 0) / a.length;
    const sd = a.length > 1 ? Math.sqrt(a.reduce((x, y) => x + (y - m) ** 2, 0) / (a.length - 1)) : 0;
    return [m, sd];
};
const [ppm, pps] = stat(pp), [tgm, tgs] = stat(tg);
const out = {pp: ppm, pp_sd: pps, tg: tgm, tg_sd: tgs, kv_type: ctx.kvCacheKeyType};
if (reader) [out.roofline, out.roofline_sd, out.read_gb_per_s] = [...stat(rf), roofBytes * readCount / readTotal / 1e9];
console.log(JSON.stringify(out));
await seq.dispose();
await ctx.dispose();
await model.dispose();
