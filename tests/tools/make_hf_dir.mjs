// Writes a small Hugging Face Llama directory with seeded random weights, independently of herd:
//   node tests/tools/make_hf_dir.mjs OUT_DIR --tokenizer-json FILE [--tokenizer-config FILE] [options]
// Options: --n-embd N --n-layer N --n-head N --n-head-kv N --head-dim N --n-ff N   (shape)
//          --dtype BF16|F16|F32      2-D weights and norms (default BF16)
//          --tied                    tie_word_embeddings (no lm_head.weight)
//          --rope-scale 0|8|32       rope_scaling llama3 with this factor (0: none)
//          --shards N                split into N files + model.safetensors.index.json (default 1)
//          --fp8                     FFN weights of layers 1..n-2 as F8_E4M3 + per-row weight_scale
//                                    (fbgemm rowwise, as Meta's 405B FP8), quantization_config fbgemm_fp8
//          --tokenizer json|json-array|tiktoken   how to ship the tokenizer (default json):
//                                    json-array rewrites merges as [a, b] pairs; tiktoken writes
//                                    original/tokenizer.model (base64 bytes + rank) from the json's vocab
//          --seed S --scale STD
// Layout is transformers' LlamaForCausalLM: Q/K rows in HF order (half-split rotary pairs). Weights are
// approximately normal (sum of four uniforms), rounded to the dtype; norms are 1 + 0.2 u.
import fs from "node:fs";
import path from "node:path";

const args = process.argv.slice(2);
const out = args[0];
const opt = (name, def) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : def; };
const flag = (name) => args.includes(name);
const E = +opt("--n-embd", 128), L = +opt("--n-layer", 2), H = +opt("--n-head", 4), HKV = +opt("--n-head-kv", 2);
const HD = +opt("--head-dim", E / H), FF = +opt("--n-ff", 256), dtype = opt("--dtype", "BF16");
const tied = flag("--tied"), ropeScale = +opt("--rope-scale", 8), nShards = +opt("--shards", 1), fp8 = flag("--fp8");
const tokMode = opt("--tokenizer", "json"), seed = BigInt(opt("--seed", 1)), scale = +opt("--scale", 0.05);
const tokJson = JSON.parse(fs.readFileSync(opt("--tokenizer-json"), "utf8"));
const tokConfigPath = opt("--tokenizer-config", null);
let nVocab = 0;
for (const id of Object.values(tokJson.model.vocab)) nVocab = Math.max(nVocab, id + 1);
for (const t of tokJson.added_tokens) nVocab = Math.max(nVocab, t.id + 1);

fs.mkdirSync(out, {recursive: true});

// ---- numbers --------------------------------------------------------------------------------------
function rng(name) { // mulberry32 seeded by (seed, FNV-1a of the name)
    let h = 0x811c9dc5 ^ Number(seed & 0xffffffffn);
    for (const c of Buffer.from(name)) h = Math.imul(h ^ c, 0x01000193);
    let a = h >>> 0;
    return () => {
        a = (a + 0x6d2b79f5) | 0;
        let t = Math.imul(a ^ (a >>> 15), 1 | a);
        t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
        return (t ^ (t >>> 14)) >>> 0;
    };
}
function randomValues(name, n, norm) { // approx N(0, scale^2) (sum of four 16-bit uniforms) or 1 + 0.2 u
    const r = rng(name), v = new Float32Array(n);
    for (let i = 0; i < n; i++) {
        const x = r();
        if (norm) { v[i] = 1 + 0.2 * (x / 2147483648 - 1); continue; }
        const y = r();
        v[i] = scale * (((x & 0xffff) + (x >>> 16) + (y & 0xffff) + (y >>> 16)) / 65536 - 2) * 1.7320508;
    }
    return v;
}
const f32 = new Float32Array(1), u32 = new Uint32Array(f32.buffer);
function toBf16(x) { // round to nearest even
    f32[0] = x;
    const u = u32[0];
    return ((u + 0x7fff + ((u >> 16) & 1)) >>> 16) & 0xffff;
}
function toF16(x) { // round to nearest even (finite, normal-range inputs as here)
    f32[0] = x;
    const u = u32[0], sign = (u >>> 16) & 0x8000, a = u & 0x7fffffff;
    if (a < 0x38800000) { // half subnormal
        const m = (a & 0x7fffff) | 0x800000, e = a >>> 23, shift = 126 - e;
        if (shift > 24) return sign;
        let r = m >>> shift; const rem = m & ((1 << shift) - 1), half = 1 << (shift - 1);
        if (rem > half || (rem === half && (r & 1))) r++;
        return sign | r;
    }
    let h = (a - 0x38000000) >>> 13; const rem = a & 0x1fff;
    if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++;
    return sign | h;
}
function roundHalfEven(y) { const f = Math.floor(y), d = y - f; return d > 0.5 ? f + 1 : d < 0.5 ? f : f + (f % 2); }
function toE4m3(x) { // float8_e4m3fn, round to nearest even, saturating at 448
    const sign = x < 0 || Object.is(x, -0) ? 0x80 : 0;
    let a = Math.min(Math.abs(x), 448);
    if (a < 2 ** -6) return sign | roundHalfEven(a / 2 ** -9); // subnormal (8 = the smallest normal)
    let e = Math.floor(Math.log2(a));
    if (2 ** e > a) e--; else if (2 ** (e + 1) <= a) e++;
    let m = roundHalfEven((a / 2 ** e - 1) * 8);
    if (m === 8) { m = 0; e++; }
    return sign | ((e + 7) << 3) | m;
}
// fbgemm's quantize_fp8_per_row: inv = min(448 / max|row|, 448 * 512), q = fp8(x * inv), scale = 1 / inv
function quantizeRows(vals, nOut, nIn) {
    const q = new Uint8Array(nOut * nIn), sc = new Float32Array(nOut);
    for (let r = 0; r < nOut; r++) {
        let amax = 0;
        for (let i = 0; i < nIn; i++) amax = Math.max(amax, Math.abs(vals[r * nIn + i]));
        const inv = Math.fround(Math.min(Math.fround(448 / amax), 448 * 512));
        for (let i = 0; i < nIn; i++) {
            const y = Math.fround(vals[r * nIn + i] * inv);
            q[r * nIn + i] = toE4m3(Math.max(-448, Math.min(448, y)));
        }
        sc[r] = Math.fround(1 / inv);
    }
    return [q, sc];
}
function encode(vals, dt) {
    if (dt === "F32") return Buffer.from(new Float32Array(vals).buffer);
    const h = new Uint16Array(vals.length);
    for (let i = 0; i < vals.length; i++) h[i] = dt === "BF16" ? toBf16(vals[i]) : toF16(vals[i]);
    return Buffer.from(h.buffer);
}

// ---- tensors ----------------------------------------------------------------------------------------
const tensors = []; // {name, dtype, shape, data}
function weight(name, nOut, nIn, fp8Layer) {
    const v = randomValues(name, nOut * nIn, false);
    if (fp8Layer) {
        // quantize what the BF16 checkpoint holds: the bf16-rounded weights
        const b = Float32Array.from(v, x => { u32[0] = toBf16(x) << 16; return f32[0]; });
        const [q, sc] = quantizeRows(b, nOut, nIn);
        tensors.push({name, dtype: "F8_E4M3", shape: [nOut, nIn], data: Buffer.from(q.buffer)});
        tensors.push({name: name + "_scale", dtype: "F32", shape: [nOut, 1], data: Buffer.from(sc.buffer)});
        return;
    }
    tensors.push({name, dtype, shape: [nOut, nIn], data: encode(v, dtype)});
}
function norm(name) { tensors.push({name, dtype, shape: [E], data: encode(randomValues(name, E, true), dtype)}); }

weight("model.embed_tokens.weight", nVocab, E, false);
for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}.`, f8 = fp8 && l > 0 && l < L - 1;
    norm(p + "input_layernorm.weight");
    weight(p + "self_attn.q_proj.weight", H * HD, E, false);
    weight(p + "self_attn.k_proj.weight", HKV * HD, E, false);
    weight(p + "self_attn.v_proj.weight", HKV * HD, E, false);
    weight(p + "self_attn.o_proj.weight", E, H * HD, false);
    norm(p + "post_attention_layernorm.weight");
    weight(p + "mlp.gate_proj.weight", FF, E, f8);
    weight(p + "mlp.up_proj.weight", FF, E, f8);
    weight(p + "mlp.down_proj.weight", E, FF, f8);
}
norm("model.norm.weight");
if (!tied) weight("lm_head.weight", nVocab, E, false);

function writeSafetensors(file, list) {
    const header = {__metadata__: {format: "pt"}};
    let off = 0;
    for (const t of list) {
        header[t.name] = {dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.data.length]};
        off += t.data.length;
    }
    let json = JSON.stringify(header);
    json += " ".repeat((8 - (json.length % 8)) % 8);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
    const fd = fs.openSync(file, "w");
    fs.writeSync(fd, len);
    fs.writeSync(fd, json);
    for (const t of list) fs.writeSync(fd, t.data);
    fs.closeSync(fd);
}
if (nShards <= 1) {
    writeSafetensors(path.join(out, "model.safetensors"), tensors);
} else {
    const per = Math.ceil(tensors.length / nShards), weightMap = {};
    for (let s = 0; s < nShards; s++) {
        const name = `model-${String(s + 1).padStart(5, "0")}-of-${String(nShards).padStart(5, "0")}.safetensors`;
        const part = tensors.slice(s * per, (s + 1) * per);
        writeSafetensors(path.join(out, name), part);
        for (const t of part) weightMap[t.name] = name;
    }
    const total = tensors.reduce((a, t) => a + t.data.length, 0);
    fs.writeFileSync(path.join(out, "model.safetensors.index.json"),
        JSON.stringify({metadata: {total_size: total}, weight_map: weightMap}, null, 2));
}

// ---- config and tokenizer -------------------------------------------------------------------------
const config = {
    architectures: ["LlamaForCausalLM"], model_type: "llama", attention_bias: false, mlp_bias: false,
    hidden_act: "silu", hidden_size: E, intermediate_size: FF, num_hidden_layers: L, num_attention_heads: H,
    num_key_value_heads: HKV, head_dim: HD, max_position_embeddings: 131072, rms_norm_eps: 1e-5,
    rope_theta: 500000.0, tie_word_embeddings: tied, vocab_size: nVocab, bos_token_id: 128000,
    eos_token_id: [128001, 128008, 128009], torch_dtype: dtype === "F32" ? "float32" : dtype === "F16" ? "float16" : "bfloat16",
    rope_scaling: ropeScale > 0 ? {factor: ropeScale, low_freq_factor: 1.0, high_freq_factor: 4.0,
                                   original_max_position_embeddings: 8192, rope_type: "llama3"} : null,
};
if (fp8) {
    const skip = ["lm_head"];
    for (let l = 0; l < L; l++) {
        for (const m of ["q_proj", "k_proj", "v_proj", "o_proj"]) skip.push(`model.layers.${l}.self_attn.${m}`);
        if (l === 0 || l === L - 1) for (const m of ["gate_proj", "up_proj", "down_proj"]) skip.push(`model.layers.${l}.mlp.${m}`);
    }
    config.quantization_config = {quant_method: "fbgemm_fp8", activation_scale_ub: 1200.0, modules_to_not_convert: skip};
}
fs.writeFileSync(path.join(out, "config.json"), JSON.stringify(config, null, 2));
if (tokConfigPath) fs.copyFileSync(tokConfigPath, path.join(out, "tokenizer_config.json"));
if (tokMode === "json") {
    fs.copyFileSync(opt("--tokenizer-json"), path.join(out, "tokenizer.json"));
} else if (tokMode === "json-array") {
    tokJson.model.merges = tokJson.model.merges.map(m => typeof m === "string" ? m.split(" ") : m);
    fs.writeFileSync(path.join(out, "tokenizer.json"), JSON.stringify(tokJson));
} else if (tokMode === "tiktoken") { // byte-level chars back to bytes, one "base64 rank" line per ranked token
    const b2u = [];
    let n = 0;
    for (let b = 0; b < 256; b++) {
        const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        b2u[b] = printable ? b : 256 + n++;
    }
    const u2b = new Map(b2u.map((u, b) => [String.fromCodePoint(u), b]));
    const lines = [];
    for (const [tok, id] of Object.entries(tokJson.model.vocab)) {
        if (id >= 128000) continue;
        lines[id] = Buffer.from([...tok].map(c => u2b.get(c))).toString("base64") + " " + id;
    }
    fs.mkdirSync(path.join(out, "original"), {recursive: true});
    fs.writeFileSync(path.join(out, "original", "tokenizer.model"), lines.join("\n") + "\n");
}
