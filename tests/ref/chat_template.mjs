// The Llama 3.1 chat format against the official template: every case of tests/data/chat_cases.json
// is rendered by @huggingface/jinja from llama.cpp's meta-llama-Llama-3.1-8B-Instruct.jinja (with tool
// call arguments as objects, as the template expects) and by `herd format` (with arguments as JSON
// text, as OpenAI clients send them): the texts must be byte-identical, llama.cpp's and herd's token
// ids of that text identical, and herd's own prompt tokenization (`herd format --tokens`) equal too —
// except that special-token text typed inside a message must stay plain text there.
//   node tests/ref/chat_template.mjs HERD VOCAB.gguf TEMPLATE.jinja CASES.json TMPDIR
import {Template} from "@huggingface/jinja";
import {getLlama} from "node-llama-cpp";
import {execFileSync} from "node:child_process";
import fs from "node:fs";
import path from "node:path";

const [herd, vocab, tmplPath, casesPath, tmp] = process.argv.slice(2);
// @huggingface/jinja 0.5.11 (the latest) has no `reject` filter, which the official template uses
// once, to drop code_interpreter from the "Tools:" line. That one expression is replaced by an
// equivalent filtered loop; the rest of the template is used verbatim.
const REJECT = `{{- "Tools: " + builtin_tools | reject('equalto', 'code_interpreter') | join(", ") + "\\n\\n"}}`;
const EQUIV = `{{- "Tools: " }}{%- for t in builtin_tools if t != 'code_interpreter' %}{{- t }}` +
    `{%- if not loop.last %}{{- ", " }}{%- endif %}{%- endfor %}{{- "\\n\\n" }}`;
const src = fs.readFileSync(tmplPath, "utf8");
if (!src.includes(REJECT)) { console.log("the template's reject expression was not found"); process.exit(1); }
const tmpl = new Template(src.replace(REJECT, EQUIV));
const cases = JSON.parse(fs.readFileSync(casesPath, "utf8"));
const llama = await getLlama({build: "never", gpu: false, logLevel: "error"});
const model = await llama.loadModel({modelPath: vocab, vocabOnly: true});
let fails = 0;
cases.forEach((c, i) => {
    const want = tmpl.render({bos_token: "<|begin_of_text|>", ...c});
    // OpenAI shape for herd: arguments as JSON text
    const msgs = c.messages.map(m => m.tool_calls ? {...m, tool_calls: m.tool_calls.map(t =>
        ({...t, function: {...t.function, arguments: JSON.stringify(t.function.arguments)}}))} : m);
    const mf = path.join(tmp, "m.json"), tf = path.join(tmp, "t.json");
    fs.writeFileSync(mf, JSON.stringify(msgs));
    const args = ["format", "--messages", mf];
    if (c.tools) { fs.writeFileSync(tf, JSON.stringify(c.tools)); args.push("--tools", tf); }
    if (c.builtin_tools) args.push("--builtin-tools", c.builtin_tools.join(","));
    if (c.date_string) args.push("--date", c.date_string);
    if (c.tools_in_user_message === false) args.push("--tools-in-system");
    if (!c.add_generation_prompt) args.push("--no-generation-prompt");
    let got;
    try { got = execFileSync(herd, args).toString(); } catch (e) { console.log(`case ${i}: herd format failed`); fails++; return; }
    if (got !== want) {
        let k = 0;
        while (k < got.length && got[k] === want[k]) k++;
        console.log(`case ${i}: text differs at ${k}:\n  want ${JSON.stringify(want.slice(k, k + 80))}\n  got  ${JSON.stringify(got.slice(k, k + 80))}`);
        fails++;
        return;
    }
    const ref = Array.from(model.tokenize(want, true));
    const mine = JSON.parse(execFileSync(herd, ["tokenize", "-m", vocab, "--special", "--no-bos", "-f", "-"], {input: want}).toString());
    if (JSON.stringify(ref) !== JSON.stringify(mine)) { console.log(`case ${i}: token ids differ`); fails++; return; }
    const chatIds = JSON.parse(execFileSync(herd, [...args, "-m", vocab, "--tokens"]).toString());
    const typedSpecial = JSON.stringify(c.messages).includes("<|");
    if (!typedSpecial && JSON.stringify(chatIds) !== JSON.stringify(ref)) {
        console.log(`case ${i}: herd format --tokens differs from tokenizing the text`); fails++; return;
    }
    if (typedSpecial) { // the typed <|eot_id|> must not become a special token
        const eots = (want.match(/<\|eot_id\|>/g) || []).length, ids = chatIds.filter(t => t === 128009).length;
        if (ids !== eots - 1) { console.log(`case ${i}: typed special-token text became a special token`); fails++; return; }
    }
    console.log(`case ${i}: identical (${Buffer.byteLength(want)} bytes, ${ref.length} ids)` +
        `${c.tools ? " tools" : ""}${c.builtin_tools ? " builtin" : ""}${c.messages.some(m => m.tool_calls) ? " calls" : ""}`);
});
await model.dispose();
console.log(fails ? `${fails} of ${cases.length} conversations differ` : `all ${cases.length} conversations identical`);
process.exit(fails ? 1 : 0);
