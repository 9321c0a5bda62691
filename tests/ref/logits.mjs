// llama.cpp reference logits: node tests/ref/logits.mjs MODEL.gguf IDS_JSON OUT.bin [--kv f32|f16] [--threads N]
//   [--generate N] [--lora FILE[:SCALE]]... [--kv-k TYPE] [--kv-v TYPE] [--flash]
// Writes float32 logits of every position, row-major [n][n_vocab], computed by llama.cpp (node-llama-cpp,
// CPU, flash attention off, KV cache f32 unless --kv f16). With --generate N, greedily extends the
// sequence by N tokens first (llama.cpp's own argmax) and prints the full id list as JSON on stdout,
// so a caller can check both the prompt and the generated positions. --lora (repeatable) applies llama.cpp
// LoRA adapter GGUFs to the context with their scales (default 1). --kv-k/--kv-v set the K and V cache types
// apart (q8_0, q4_0, bf16...; default --kv's); --flash turns flash attention on (llama.cpp needs it for a
// quantized V cache).
import {getLlama} from "node-llama-cpp";
import fs from "node:fs";

const args = process.argv.slice(2);
const opt = (name, def) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : def; };
const [modelPath, idsJson, outPath] = args;
const kv = opt("--kv", "f32").toUpperCase();
const kvK = opt("--kv-k", kv).toUpperCase(), kvV = opt("--kv-v", kv).toUpperCase();
const flash = args.includes("--flash");
const threads = Number(opt("--threads", "2"));
const nGen = Number(opt("--generate", "0"));
const adapters = [];
args.forEach((a, i) => {
    if (a !== "--lora") return;
    const spec = args[i + 1], c = spec.lastIndexOf(":");
    const hasScale = c > 0 && spec.slice(c + 1) !== "" && !Number.isNaN(Number(spec.slice(c + 1)));
    adapters.push({filePath: hasScale ? spec.slice(0, c) : spec, scale: hasScale ? Number(spec.slice(c + 1)) : 1});
});

const llama = await getLlama({build: "never", gpu: false, logLevel: "error"});
const model = await llama.loadModel({modelPath});
let ids = JSON.parse(idsJson);
const ctx = await model.createContext({contextSize: Math.max(64, ids.length + nGen + 8), batchSize: 512,
    flashAttention: flash, threads, experimentalKvCacheKeyType: kvK, experimentalKvCacheValueType: kvV,
    ...(adapters.length ? {lora: {adapters}} : {})});

if (nGen > 0) {
    const seq = ctx.getSequence();
    const all = [...ids];
    const res = await seq.controlledEvaluate(all.map((t, i) => i === all.length - 1 ? [t, {generateNext: {token: true}}] : t));
    let next = res[all.length - 1].next.token;
    for (let g = 0; g < nGen; g++) {
        all.push(next);
        if (g === nGen - 1) break;
        const r = await seq.controlledEvaluate([[next, {generateNext: {token: true}}]]);
        next = r[0].next.token;
    }
    await seq.dispose();
    ids = all;
    process.stdout.write(JSON.stringify(ids) + "\n");
}

const seq = ctx.getSequence();
const res = await seq.controlledEvaluate(ids.map(t => [t, {generateNext: {logits: true}}]));
const nVocab = res[0].next.logits.size; // logits: true returns every token of the vocabulary
const out = new Float32Array(ids.length * nVocab);
res.forEach((r, i) => {
    for (const [tok, v] of r.next.logits) out[i * nVocab + tok] = v;
});
fs.writeFileSync(outPath, Buffer.from(out.buffer));
await seq.dispose();
await ctx.dispose();
await model.dispose();
