// Renders a chat template with @huggingface/jinja (as transformers does):
//   node tests/ref/render_template.mjs TEMPLATE.jinja CASES.json OUT_DIR
// CASES.json: [{"messages": [...], "add_generation_prompt": true, "date_string"?: "...", ...extra vars}, ...]
// Writes OUT_DIR/<i>.txt with the rendering of case i (bos_token = <|begin_of_text|>).
import {Template} from "@huggingface/jinja";
import fs from "node:fs";
const [tmplPath, casesPath, outDir] = process.argv.slice(2);
const tmpl = new Template(fs.readFileSync(tmplPath, "utf8"));
const cases = JSON.parse(fs.readFileSync(casesPath, "utf8"));
fs.mkdirSync(outDir, {recursive: true});
cases.forEach((c, i) => {
    const vars = {bos_token: "<|begin_of_text|>", eos_token: "<|eot_id|>", ...c};
    fs.writeFileSync(`${outDir}/${i}.txt`, tmpl.render(vars));
});
