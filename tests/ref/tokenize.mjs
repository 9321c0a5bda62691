// Tokenizer reference: llama.cpp (node-llama-cpp 3.22.1, llama.cpp v0.5.0).
//
//   node tests/ref/tokenize.mjs [--special] MODEL.gguf < TEXT
//       prints the ids of stdin (UTF-8, no BOS) as herd tokenize does: [1, 2, 3]
//
//   node tests/ref/tokenize.mjs OUTDIR [--vocab-cmd CMD] HERD_CMD...
//       the conformance run of tests/conformance/tokenizer_llama_cpp.sh:
//
// Builds the corpus (tests/data/tokenizer/samples.txt plus seeded generated texts plus a sweep of
// every code point 0..0x10FFFF except surrogates), tokenizes each text with llama.cpp for both
// vocabularies, with and without special-token parsing, and runs each HERD_CMD (a command that
// reads JSON strings per line on stdin and prints a JSON id array per line; "{model}" and
// "{special}" in it are replaced) on the same input. Every id must match. Prints a summary and
// exits 0 (all equal), 1 (differences, the first ones shown), 2 (setup problem).
// --vocab-cmd CMD ("{model}" replaced) prints one JSON line per token [id, eog, control, piece with
// special rendering (base64), piece without]; every token's EOG flag, control attribute and
// detokenized text are compared with llama.cpp's (after applying llama.cpp's own post-processing
// of a one-token detokenize: clean_up_tokenization_spaces for llama-bpe, the dropped prefix space
// for SPM, which herd's vocab_detokenize does not do on purpose).
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

let [outDir, ...herdCmds] = argv;
let vocabCmd = null;
if (herdCmds[0] === "--vocab-cmd") {
    vocabCmd = herdCmds[1];
    herdCmds = herdCmds.slice(2);
}
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
// ---- per-token attributes and pieces --------------------------------------------------------------
// llama.cpp's detokenize post-processing, as a test reference (see llama_vocab::impl::detokenize)
function cleanSpaces(t) {
    let total = t.length;
    const total1 = total;
    total = total ? 1 : 0;
    for (let i = 1; i < total1; i++) {
        const x = t[i];
        if (t[i - 1] === 0x20 && (x === 0x3f || x === 0x21 || x === 0x2e || x === 0x2c)) total--;
        t[total++] = x;
    }
    const total2 = total;
    total = total ? 1 : 0;
    for (let i = 1; i < total2; i++) {
        const x = t[i];
        if (x === 0x27 && i + 1 < total2 && t[i - 1] === 0x20 && t[i + 1] === 0x20) {
            total--;
            t[++i] = 0;
        }
        t[total++] = x;
    }
    const total3 = total;
    total = total ? 1 : 0;
    for (let i = 1; i < total3; i++) {
        const x = t[i];
        if (t[i - 1] === 0x20 && x === 0x27 && i + 1 < total3) {
            const x1 = t[i + 1];
            if (x1 === 0x73 || x1 === 0x6d) total--;
            else if (i + 2 < total3) {
                const x2 = t[i + 2];
                if ((x1 === 0x72 && x2 === 0x65) || (x1 === 0x76 && x2 === 0x65)) total--;
            }
        }
        t[total++] = x;
    }
    return t.subarray(0, total);
}
if (vocabCmd) {
    for (const [name, model] of Object.entries(loaded)) {
        const c = vocabCmd.replaceAll("{model}", models[name]);
        const res = spawnSync("bash", ["-c", c], { maxBuffer: 1 << 30, encoding: "utf8" });
        if (res.status !== 0) {
            console.log(`FAIL vocab-${name}: \`${c}\` exited ${res.status}`);
            failures++;
            continue;
        }
        const lines = res.stdout.split("\n").filter((l) => l.length > 0);
        let bad = 0, eog = 0;
        const complain = (msg) => { if (++bad <= 5) console.log(`  vocab-${name}: ${msg}`); };
        for (const line of lines) {
            const [id, isEog, isControl, withSpecial, plain] = JSON.parse(line);
            eog += isEog;
            if (Boolean(isEog) !== model.isEogToken(id)) complain(`token ${id}: eog ${isEog}, llama.cpp ${model.isEogToken(id)}`);
            if (Boolean(isControl) !== model.getTokenAttributes(id).control) complain(`token ${id}: control ${isControl}`);
            for (const [b64, special] of [[withSpecial, true], [plain, false]]) {
                let bytes = Uint8Array.from(Buffer.from(b64, "base64"));
                if (name === "bpe") bytes = cleanSpaces(bytes);
                else if (bytes[0] === 0x20) bytes = bytes.subarray(1);
                const mine = Buffer.from(bytes).toString("utf8"), ref = model.detokenize([id], special);
                if (mine !== ref) complain(`token ${id} (special ${special}): ${JSON.stringify(mine)} vs llama.cpp ${JSON.stringify(ref)}`);
            }
        }
        failures += bad;
        compared += lines.length;
        report.push(`${bad ? "FAIL" : "ok  "} vocab-${name.padEnd(14)} ${String(lines.length).padStart(6)} tokens: EOG (${eog}), control attribute and pieces, ${bad} differ`);
    }
}
for (const l of report) console.log(l);
console.log(`${corpus.length} corpus texts (${samples.length} hand-written, ${gen.length} generated) and every code point but surrogates in ${contexts.length} contexts (${cps} placements, ${sweep.length} sweep texts); ${compared} comparisons, ${failures} differ (llama.cpp total ${llamaMs} ms)`);
process.exit(failures ? 1 : 0);
