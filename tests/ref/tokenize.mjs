// Tokenizer reference: llama.cpp (node-llama-cpp 3.22.1, llama.cpp v0.5.0).
//
//   node tests/ref/tokenize.mjs [--special] MODEL.gguf < TEXT
//       prints the ids of stdin (UTF-8, no BOS) as herd tokenize does: [1, 2, 3]
//
//   node tests/ref/tokenize.mjs OUTDIR HERD_CMD...
//       the conformance run of tests/conformance/tokenizer_llama_cpp.sh:
//
// Builds the corpus (tests/data/tokenizer/samples.txt plus seeded generated texts plus a sweep of
// every code point 0..0x10FFFF except surrogates), tokenizes each text with llama.cpp for both
// vocabularies, with and without special-token parsing, and runs each HERD_CMD (a command that
// reads JSON strings per line on stdin and prints a JSON id array per line; "{model}" and
// "{special}" in it are replaced) on the same input. Every id must match. Prints a summary and
// exits 0 (all equal), 1 (differences, the first ones shown), 2 (setup problem).
import fs from "node:fs";
import path from "node:path";
import { spawnSync } from "node:child_process";

const root = process.cwd();
const argv = process.argv.slice(2);

if (argv[0] === "--special" || (argv[0] ?? "").endsWith(".gguf")) {
    const special = argv[0] === "--special";
    const modelPath = special ? argv[1] : argv[0];
    const text = fs.readFileSync(0, "utf8");
    const { getLlama } = await import(path.join(root, "build/ref/node_modules/node-llama-cpp/dist/index.js"));
    const llama = await getLlama({ build: "never", gpu: false, logLevel: "error" });
    const model = await llama.loadModel({ modelPath, vocabOnly: true });
    process.stdout.write("[" + Array.from(model.tokenize(text, special)).join(", ") + "]\n");
    process.exit(0);
}

const [outDir, ...herdCmds] = argv;
if (!outDir || herdCmds.length === 0) {
    console.error("usage: node tests/ref/tokenize.mjs OUTDIR HERD_CMD...");
    process.exit(2);
}
fs.mkdirSync(outDir, { recursive: true });
const models = {
    bpe: path.join(root, "build/ref/llama.cpp/models/ggml-vocab-llama-bpe.gguf"),
    spm: path.join(root, "build/ref/llama.cpp/models/ggml-vocab-llama-spm.gguf"),
};

// ---- seeded generator (xorshift-style, so the corpus is the same on every machine) -------------
let seed = 0x9e3779b9;
function rnd() {
    seed ^= seed << 13; seed >>>= 0;
    seed ^= seed >>> 17;
    seed ^= seed << 5; seed >>>= 0;
    return seed / 4294967296;
}
const pick = (a) => a[Math.floor(rnd() * a.length)];
const randInt = (lo, hi) => lo + Math.floor(rnd() * (hi - lo + 1));
const isSurrogate = (cp) => cp >= 0xd800 && cp <= 0xdfff;

// ---- corpus ------------------------------------------------------------------------------------
const samplesRaw = fs.readFileSync(path.join(root, "tests/data/tokenizer/samples.txt"), "utf8");
const samples = samplesRaw.split("%%%%\n").slice(1).map((s) => s.slice(0, -1));

const WS = [0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004,
    0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000]
    .map((c) => String.fromCodePoint(c));
const words = samples.join(" ").split(/\s+/).filter((w) => w.length > 0 && w.length < 30);
const apostrophes = ["'", "\u2019", "\u02bc", "`"];
const contractions = ["s", "t", "re", "ve", "m", "ll", "d", "S", "T", "RE", "Re", "rE", "VE", "vE", "M", "LL", "Ll",
    "lL", "D", "r", "v", "l", "x"];
const emoji = ["🦙", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇩🇪", "1️⃣", "❤️", "🧑🏿‍🚀", "😀"];
const digits = ["0123456789", "٠١٢٣٤٥٦٧٨٩", "०१२३४५६७८९", "０１２３４５６７８９", "๐๑๒๓๔๕๖๗๘๙", "²³¹¼½¾"];
const specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|eom_id|>", "<|start_header_id|>",
    "<|end_header_id|>", "<|python_tag|>", "<|reserved_special_token_42|>", "<s>", "</s>", "<unk>", "<|", "|>", "<"];
const punct = [".", ",", "!", "?", ";", ":", "-", "—", "(", ")", "[", "]", "{", "}", "\"", "«", "»", "…", "/",
    "\\", "@", "#", "$", "%", "^", "&", "*", "_", "+", "=", "~", "|", "<", ">", "¿", "¡", "。", "、", "！"];

function randomCp() {
    // mostly assigned planes, sometimes anywhere
    for (;;) {
        const r = rnd();
        const cp = r < 0.4 ? randInt(0, 0x7ff) : r < 0.8 ? randInt(0x800, 0xffff) : randInt(0x10000, 0x10ffff);
        if (!isSurrogate(cp)) return String.fromCodePoint(cp);
    }
}

const gen = [];
// 1. mixed "sentences"
for (let i = 0; i < 300; i++) {
    let s = "";
    const n = randInt(1, 25);
    for (let k = 0; k < n; k++) {
        const r = rnd();
        if (r < 0.35) s += pick(words);
        else if (r < 0.45) s += pick(apostrophes) + pick(contractions);
        else if (r < 0.6) s += pick(WS).repeat(randInt(1, 4));
        else if (r < 0.67) s += pick(digits).slice(0, randInt(1, 10));
        else if (r < 0.77) s += pick(punct).repeat(randInt(1, 3));
        else if (r < 0.82) s += pick(emoji);
        else if (r < 0.87) s += pick(specials);
        else if (r < 0.92) s += "\r\n".repeat(randInt(1, 2));
        else s += randomCp();
        if (rnd() < 0.5) s += " ";
    }
    gen.push(s);
}
// 2. random code point soup
for (let i = 0; i < 150; i++) {
    let s = "";
    const n = randInt(1, 60);
    for (let k = 0; k < n; k++) s += randomCp();
    gen.push(s);
}
// 3. every pair of whitespace characters between and after other classes
for (const a of WS) for (const b of WS) gen.push(`x${a}${b}y${a}${b}1${b}${a}.${a}${a}${b}`);
// 4. contractions in every case after letters, spaces, digits, punctuation and at the start
for (const ap of apostrophes) for (const c of contractions) {
    gen.push(`${ap}${c}`);
    gen.push(`word${ap}${c} x${ap}${c}y 1${ap}${c} .${ap}${c} ${ap}${c}${ap}${c}`);
}
// 5. digit runs of every length and script
for (const d of digits) for (let n = 1; n <= 13; n++) {
    let s = "";
    for (let k = 0; k < n; k++) s += [...d][k % [...d].length];
    gen.push(s);
    gen.push(`a${s}b ${s}.${s}`);
}
// 6. long runs
gen.push(" ".repeat(5000));
gen.push("\n".repeat(3000) + "x");
gen.push("7".repeat(10000));
gen.push("a".repeat(10000));
gen.push("ab ".repeat(3000));
gen.push("\t \r\n".repeat(2000));

const corpus = [...samples, ...gen];

// 7. the full Unicode sweep: each code point in several contexts, many code points per text so the
//    whole range costs about a thousand lines per context. Byte-level BPE rarely merges a code
//    point's bytes with ASCII neighbours, so a class difference only shows in the ids where ASCII
//    tokens around it change; each context makes one class visible:
//      "1" cp "23"    number: digits group by three across it ("1c2","3" instead of "1",c,"23")
//      cp "'s"        other: the apostrophe joins its punctuation run instead of forming 's
//      "  " cp "'s"   space: "  " becomes one piece (token 256) only when cp is whitespace too
//      "a" cp "1", " " cp cp   letter runs and the optional leading space
const contexts = [
    (c) => `1${c}23\n`,
    (c) => `${c}'s`,
    (c) => `  ${c}'s`,
    (c) => `a${c}1`,
    (c) => ` ${c}${c}`,
];
const sweep = [];
const BATCH = 4096;
for (let ci = 0; ci < contexts.length; ci++) {
    for (let start = 0; start <= 0x10ffff; start += BATCH) {
        let s = "";
        for (let cp = start; cp < start + BATCH && cp <= 0x10ffff; cp++) {
            if (isSurrogate(cp)) continue;
            s += contexts[ci](String.fromCodePoint(cp));
        }
        if (s) sweep.push({ text: s, label: `context ${ci}, U+${start.toString(16)}..U+${(start + BATCH - 1).toString(16)}` });
    }
}

// ---- llama.cpp -----------------------------------------------------------------------------------
const { getLlama } = await import(path.join(root, "build/ref/node_modules/node-llama-cpp/dist/index.js"));
const llama = await getLlama({ build: "never", gpu: false, logLevel: "error" });

const runs = [];   // { name, model, special, texts, labels }
const mk = (name, model, special, texts, labels) => runs.push({ name, model, special, texts, labels });
mk("corpus-bpe", "bpe", false, corpus);
mk("corpus-bpe-special", "bpe", true, corpus);
mk("corpus-spm", "spm", false, corpus);
mk("corpus-spm-special", "spm", true, corpus);
mk("sweep-bpe", "bpe", false, sweep.map((s) => s.text), sweep.map((s) => s.label));
const spmSweep = sweep.filter((s) => s.label.startsWith("context 0"));
mk("sweep-spm", "spm", false, spmSweep.map((s) => s.text), spmSweep.map((s) => s.label));

const t0 = Date.now();
const loaded = {};
for (const [k, p] of Object.entries(models)) loaded[k] = await llama.loadModel({ modelPath: p, vocabOnly: true });
const refTime = {};
for (const r of runs) {
    const t = Date.now();
    r.ref = r.texts.map((s) => Array.from(loaded[r.model].tokenize(s, r.special)));
    refTime[r.name] = Date.now() - t;
}
const llamaMs = Date.now() - t0;

// ---- herd ----------------------------------------------------------------------------------------
let failures = 0, compared = 0;
const cps = (0x110000 - 0x800) * contexts.length;
const report = [];
for (const cmd of herdCmds) {
    for (const r of runs) {
        const input = r.texts.map((s) => JSON.stringify(s)).join("\n") + "\n";
        const inFile = path.join(outDir, `${r.name}.jsonl`);
        fs.writeFileSync(inFile, input);
        const c = cmd.replaceAll("{model}", models[r.model]).replaceAll("{special}", r.special ? "--special" : "");
        const t = Date.now();
        const res = spawnSync("bash", ["-c", `${c} < '${inFile}'`], { maxBuffer: 1 << 30, encoding: "utf8" });
        const ms = Date.now() - t;
        if (res.status !== 0) {
            console.log(`FAIL ${r.name}: \`${c}\` exited ${res.status}: ${(res.stderr || "").split("\n").slice(-5).join(" | ")}`);
            failures++;
            continue;
        }
        const lines = res.stdout.split("\n").filter((l) => l.length > 0);
        if (lines.length !== r.texts.length) {
            console.log(`FAIL ${r.name}: ${lines.length} output lines for ${r.texts.length} texts`);
            failures++;
            continue;
        }
        let bad = 0;
        for (let i = 0; i < lines.length; i++) {
            const got = JSON.parse(lines[i]);
            const want = r.ref[i];
            compared++;
            if (got.length === want.length && got.every((x, k) => x === want[k])) continue;
            bad++;
            if (bad <= 5) {
                let k = 0;
                while (k < got.length && k < want.length && got[k] === want[k]) k++;
                const what = r.labels ? r.labels[i] : JSON.stringify(r.texts[i].slice(0, 120));
                console.log(`  ${r.name} #${i} (${what}): first difference at id ${k}: llama.cpp ${JSON.stringify(want.slice(k, k + 8))} herd ${JSON.stringify(got.slice(k, k + 8))}`);
            }
        }
        failures += bad;
        report.push(`${bad ? "FAIL" : "ok  "} ${r.name.padEnd(20)} ${String(r.texts.length).padStart(5)} texts, ${bad} differ   llama.cpp ${refTime[r.name]} ms, herd ${ms} ms  [${c.split(" ")[0]}]`);
    }
}
for (const l of report) console.log(l);
console.log(`${corpus.length} corpus texts (${samples.length} hand-written, ${gen.length} generated) and every code point but surrogates in ${contexts.length} contexts (${cps} placements, ${sweep.length} sweep texts); ${compared} comparisons, ${failures} differ (llama.cpp total ${llamaMs} ms)`);
process.exit(failures ? 1 : 0);
