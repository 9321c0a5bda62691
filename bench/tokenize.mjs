// Tokenizer throughput: herd vs llama.cpp (node-llama-cpp 3.22.1) on the same ~10 MB multilingual
// text, for the Llama 3 (llama-bpe) and Llama 2 (llama-spm) vocabularies. Run via bench/tokenize.
//
// The text is generated with a seeded generator from the words and sentences of
// tests/data/tokenizer/samples.txt (English, German, French, Italian, Portuguese, Spanish, Hindi,
// Thai, CJK, Arabic, Cyrillic, emoji, code): sentences of random words per language, so pieces
// repeat with a natural skew but the text is not one passage repeated.
// herd is timed in-process (build/tests/test_tokenizer --bench: best of 3 tokenize calls on the
// whole file, vocabulary already loaded); llama.cpp likewise (best of 3 model.tokenize calls).
import fs from "node:fs";
import path from "node:path";
import { execFileSync } from "node:child_process";

const root = process.cwd();
const MB = Number(process.env.BENCH_MB ?? 10);
const samples = fs.readFileSync(path.join(root, "tests/data/tokenizer/samples.txt"), "utf8").split("%%%%\n").slice(1);

let seed = 12345;
const rnd = () => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed / 4294967296;
};
const pick = (a) => a[Math.floor(rnd() * a.length)];

// word pools per sample (a sample is mostly one language or one kind of text)
const pools = samples.map((s) => s.split(/(\s+)/).filter((w) => w.trim().length > 0)).filter((p) => p.length > 3);
const code = samples.filter((s) => /[{};=]/.test(s) && s.includes("\n"));
const parts = [];
let bytes = 0;
while (bytes < MB * 1e6) {
    let para;
    if (rnd() < 0.1) {
        para = pick(code);
    } else {
        const pool = pick(pools);
        const n = 20 + Math.floor(rnd() * 80);
        const words = [];
        for (let i = 0; i < n; i++) words.push(pick(pool));
        para = words.join(" ") + "\n\n";
    }
    parts.push(para);
    bytes += Buffer.byteLength(para);
}
const text = parts.join("");
const file = path.join(root, "build/bench/tokenize.txt");
fs.mkdirSync(path.dirname(file), { recursive: true });
fs.writeFileSync(file, text);
const size = Buffer.byteLength(text);

const { getLlama } = await import(path.join(root, "build/ref/node_modules/node-llama-cpp/dist/index.js"));
const llama = await getLlama({ build: "never", gpu: false, logLevel: "error" });
const cpus = (await import("node:os")).cpus();
console.log(`text: ${(size / 1e6).toFixed(1)} MB (${file}); CPU: ${cpus[0].model}, ${cpus.length} cores`);
for (const vocab of ["bpe", "spm"]) {
    const modelPath = path.join(root, `build/ref/llama.cpp/models/ggml-vocab-llama-${vocab}.gguf`);
    const model = await llama.loadModel({ modelPath, vocabOnly: true });
    let best = Infinity, n = 0;
    for (let i = 0; i < 3; i++) {
        const t = process.hrtime.bigint();
        n = model.tokenize(text, false).length;
        best = Math.min(best, Number(process.hrtime.bigint() - t) / 1e9);
    }
    await model.dispose();
    const ref = size / best / 1e6;
    const out = execFileSync(path.join(root, "build/tests/test_tokenizer"), ["--bench", modelPath, file], { encoding: "utf8" });
    const herd = JSON.parse(out);
    const same = herd.tokens === n ? "same token count" : `TOKEN COUNTS DIFFER (${herd.tokens} vs ${n})`;
    console.log(`llama-${vocab}: herd ${herd.mb_per_s.toFixed(1)} MB/s, llama.cpp ${ref.toFixed(1)} MB/s, ` +
        `ratio ${(herd.mb_per_s / ref).toFixed(1)}x  (${n} tokens, ${same})`);
}
