// llama.cpp reference logits at chosen positions of a long prompt:
//   node tests/ref/logits_at.mjs MODEL.gguf IDS.json POSITIONS_JSON OUT.bin [--threads N] [--batch N] [--flash]
// IDS.json is a file (a long prompt does not fit a command line). Writes float32 rows [n_positions][n_vocab]
// computed by llama.cpp (node-llama-cpp, CPU, f32 KV cache; flash attention off unless --flash: on, ggml's CPU
// kernel still works in f32 for an f32 cache and never forms the T x T score matrix), the whole prompt
// evaluated once with logits asked only at those positions.
import {getLlama} from "node-llama-cpp";
import fs from "node:fs";

const args = process.argv.slice(2);
const opt = (name, def) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : def; };
const [modelPath, idsPath, posJson, outPath] = args;
const ids = JSON.parse(fs.readFileSync(idsPath, "utf8")), at = JSON.parse(posJson);
const want = new Set(at);
const llama = await getLlama({build: "never", gpu: false, logLevel: "error"});
const model = await llama.loadModel({modelPath});
const ctx = await model.createContext({contextSize: ids.length + 8, batchSize: Number(opt("--batch", "256")),
    flashAttention: args.includes("--flash"), threads: Number(opt("--threads", "2")), experimentalKvCacheKeyType: "F32",
    experimentalKvCacheValueType: "F32"});
const seq = ctx.getSequence();
const res = await seq.controlledEvaluate(ids.map((t, i) => want.has(i) ? [t, {generateNext: {logits: true}}] : t));
let nVocab = 0, out = null;
at.forEach((p, k) => {
    const lg = res[p].next.logits;
    if (!out) { nVocab = lg.size; out = new Float32Array(at.length * nVocab); }
    for (const [tok, v] of lg) out[k * nVocab + tok] = v;
});
fs.writeFileSync(outPath, Buffer.from(out.buffer));
await seq.dispose();
await ctx.dispose();
await model.dispose();
