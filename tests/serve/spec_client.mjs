// Speculative decoding in the server (herd serve --draft / --lookup, src/engine/engine.c): the same
// requests — greedy chat and text completions, seeded sampling, a JSON-constrained reply, a stream, and
// three at once so several slots verify drafts in one batch — give exactly the responses of the server
// without a draft, for --draft-max 1, 4 and 16 with a draft that agrees often (the same model quantized
// to q8_0), one that never agrees (another random model) and prompt lookup; /metrics counts the drafts
// (the twin's are accepted, the unrelated model's hardly ever). A draft with another vocabulary, or --draft with --lookup: one line.
// usage: node spec_client.mjs TARGET TWIN OTHER SPM_MODEL
import {spawnSync} from "node:child_process";
import {startServer, check, done, HERD} from "./lib.mjs";

const [target, twin, other, spm] = process.argv.slice(2);
const P = "Once upon a time, the cat sat on the mat. Once upon a time, the dog sat on the";
const reqs = [
    ["/v1/completions", {prompt: P, max_tokens: 40, temperature: 0, repeat_penalty: 1.1}],
    ["/v1/chat/completions", {messages: [{role: "user", content: "Tell me a story about a cat and a dog."}], max_tokens: 32, temperature: 0}],
    ["/v1/chat/completions", {messages: [{role: "user", content: "Count: one two three one two three one two"}], max_tokens: 32,
        temperature: 0.9, top_p: 0.95, seed: 7}],
    ["/v1/completions", {prompt: P, max_tokens: 24, temperature: 1.0, seed: 11}],
    ["/v1/chat/completions", {messages: [{role: "user", content: "Give me JSON."}], max_tokens: 24, temperature: 0,
        response_format: {type: "json_object"}}],
    ["/v1/completions", {prompt: "a b c d a b c d a b c d a b c", max_tokens: 160, temperature: 0}], // loops: lookup drafts
];
const text = j => j?.choices?.[0]?.message?.content ?? j?.choices?.[0]?.text ?? `ERROR ${JSON.stringify(j)}`;
async function post(srv, p, b) {
    const r = await fetch(srv.base + p, {method: "POST", headers: {"Content-Type": "application/json"},
        body: JSON.stringify({model: "t", ...b})});
    return r.json();
}
async function streamText(srv, p, b) {
    const r = await fetch(srv.base + p, {method: "POST", headers: {"Content-Type": "application/json"},
        body: JSON.stringify({model: "t", stream: true, ...b})});
    return (await r.text()).split("\n\n").filter(l => l.startsWith("data: {")).map(l => JSON.parse(l.slice(6)))
        .map(c => c.choices?.[0]?.delta?.content ?? c.choices?.[0]?.text ?? "").join("");
}
async function metric(srv, name) {
    const t = await (await fetch(srv.base + "/metrics")).text();
    const m = t.match(new RegExp(`^${name} (\\d+)$`, "m"));
    return m ? Number(m[1]) : -1;
}
async function runAll(args) {
    const srv = await startServer(["-m", target, "--alias", "t", "--parallel", "3", "-c", "3072", "-t", "2", ...args]);
    const out = [];
    for (const [p, b] of reqs) out.push(text(await post(srv, p, b)));
    out.push(await streamText(srv, reqs[0][0], reqs[0][1]));
    const together = await Promise.all(reqs.slice(0, 3).map(([p, b]) => post(srv, p, b)));
    out.push(...together.map(text));
    const drafted = await metric(srv, "herd_spec_drafted_tokens_total"), accepted = await metric(srv, "herd_spec_accepted_tokens_total");
    const rc = await srv.stop();
    return {out, drafted, accepted, rc};
}

const plain = await runAll([]);
check(plain.rc === 0 && plain.out.every(t => !t.startsWith("ERROR")) && plain.drafted === 0, "plain server: every request answered, nothing drafted",
    JSON.stringify(plain));
check(plain.out[0].length > 40, "plain greedy completion is long enough to speculate on", plain.out[0]);
const runs = [["twin, --draft-max 1", ["--draft", twin, "--draft-max", "1"]],
              ["twin, --draft-max 4", ["--draft", twin, "--draft-max", "4"]],
              ["twin, --draft-max 16", ["--draft", twin]],
              ["unrelated draft, --draft-max 5", ["--draft", other, "--draft-max", "5"]],
              ["--lookup 3", ["--lookup", "3"]],
              ["--lookup 2 --draft-max 16", ["--lookup", "2", "--draft-max", "16"]]];
for (const [name, args] of runs) {
    const r = await runAll(args);
    const same = r.out.map((t, i) => t === plain.out[i]);
    check(r.rc === 0 && same.every(Boolean), `${name}: every response identical to the plain server's`,
        JSON.stringify(r.out.map((t, i) => same[i] ? "=" : [t, plain.out[i]])));
    console.log(`     ${name}: drafted ${r.drafted}, accepted ${r.accepted}`);
    // a draft model always drafts: the twin's are accepted, the unrelated model's hardly ever; lookup drafts
    // once a greedy reply starts repeating itself (the long one does)
    if (name.startsWith("--lookup")) check(r.drafted > 0, `${name}: drafts from repeated n-grams`);
    if (name.startsWith("twin")) check(r.drafted > 0 && r.accepted >= 50, `${name}: the q8_0 twin's drafts are accepted`);
    if (name.startsWith("unrelated")) check(r.drafted > 0 && r.accepted < r.drafted / 10, `${name}: drafted, hardly accepted`);
}
let bad = spawnSync(HERD, ["serve", "-m", target, "--draft", spm, "--port", "0"]);
check(bad.status === 1 && /--draft .*vocabulary|token/.test(bad.stderr.toString()) && bad.stderr.toString().trim().split("\n").length === 1,
    "a draft with another vocabulary: refused with one line", bad.stderr.toString());
bad = spawnSync(HERD, ["serve", "-m", target, "--draft", twin, "--lookup", "2", "--port", "0"]);
check(bad.status === 1 && /not both/.test(bad.stderr.toString()), "--draft with --lookup: refused", bad.stderr.toString());
done("serve spec");
