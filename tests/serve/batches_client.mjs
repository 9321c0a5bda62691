// herd serve --data-dir with the official OpenAI client (npm `openai`): /v1/files (upload, list, retrieve,
// content, delete) and /v1/batches (create, retrieve, list, cancel). A batch's output file holds, for every
// request answered 2xx, exactly the body the server gives the same request directly (greedy); the error
// file holds the refused ones; kill -9 mid-batch and a restart on the same --data-dir resume it with every
// custom_id once; files and batches survive the restart. Bad input: wrong purpose, oversized upload,
// malformed JSONL, unknown file id, a non-batch file, an endpoint mismatch: 4xx with a clear message.
import OpenAI, {toFile} from "openai";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {startServer, testModel, check, done} from "./lib.mjs";

const model = testModel();
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "herd-batches-"));
const args = ["-m", model, "--parallel", "2", "-c", "4096", "--alias", "tiny", "-t", "2", "--data-dir", dataDir,
    "--max-file-size", "65536", "--api-key", "k123"];
let srv = await startServer(args);
let client = new OpenAI({baseURL: srv.base + "/v1", apiKey: "k123", maxRetries: 0});
const sleep = ms => new Promise(r => setTimeout(r, ms));
const jsonl = rows => rows.map(r => JSON.stringify(r)).join("\n") + "\n";
const line = (cid, body, url = "/v1/completions") => ({custom_id: cid, method: "POST", url, body});
async function status(e) { try { await e(); return 0; } catch (x) { return [x.status, x.message]; } }
async function waitFor(id, done, ms = 120000) {
    const t0 = Date.now();
    for (;;) {
        const b = await client.batches.retrieve(id);
        if (done(b) || Date.now() - t0 > ms) return b;
        await sleep(50);
    }
}
const text = async id => (await (await client.files.content(id)).text());
const rows = s => s.split("\n").filter(l => l).map(l => JSON.parse(l));

try {
    // ---- files ----
    const words = ["cat", "river", "moon", "bread", "storm", "violin"];
    const reqs = words.map((w, i) => line(`c-${i}`, {prompt: `Once upon a time a ${w}`, max_tokens: 6 + i,
        temperature: 0}));
    reqs.push(line("bad", {prompt: "x", max_tokens: -5}));
    const input = jsonl(reqs);
    const f = await client.files.create({file: await toFile(Buffer.from(input), "in.jsonl"), purpose: "batch"});
    check(/^file-[0-9a-f]{24}$/.test(f.id) && f.object === "file" && f.bytes === input.length &&
        f.filename === "in.jsonl" && f.purpose === "batch" && Number.isInteger(f.created_at), "files.create", JSON.stringify(f));
    const got = await client.files.retrieve(f.id);
    check(JSON.stringify(got) === JSON.stringify(f), "files.retrieve gives the same object");
    check(await text(f.id) === input, "files.content gives the uploaded bytes");
    const other = await client.files.create({file: await toFile(Buffer.from("hello\n"), "notes.txt"),
        purpose: "user_data"});
    const list = [];
    for await (const x of client.files.list()) list.push(x.id);
    check(list.includes(f.id) && list.includes(other.id), "files.list lists both", JSON.stringify(list));
    const onlyBatch = [];
    for await (const x of client.files.list({purpose: "batch"})) onlyBatch.push(x.id);
    check(onlyBatch.length === 1 && onlyBatch[0] === f.id, "files.list filters by purpose");

    // ---- bad uploads ----
    let e = await status(async () => client.files.create({file: await toFile(Buffer.from(input), "x.jsonl"), purpose: "bogus"}));
    check(e[0] === 400 && /purpose 'bogus'/.test(e[1]), "a wrong purpose: 400", JSON.stringify(e));
    e = await status(async () => client.files.create({file: await toFile(Buffer.alloc(70000, 97), "big.txt"),
        purpose: "user_data"}));
    check(e[0] === 413 && /exceeds the limit of 65536/.test(e[1]), "an oversized upload: 413", JSON.stringify(e));
    e = await status(async () => client.files.create({file: await toFile(Buffer.from(input + "{not json\n"), "m.jsonl"),
        purpose: "batch"}));
    check(e[0] === 400 && /line 8 of the batch file/.test(e[1]), "a malformed JSONL line: 400 naming the line", JSON.stringify(e));
    e = await status(async () => client.files.create({file: await toFile(Buffer.from(jsonl([reqs[0], reqs[0]])), "d.jsonl"),
        purpose: "batch"}));
    check(e[0] === 400 && /repeats custom_id 'c-0'/.test(e[1]), "a repeated custom_id: 400", JSON.stringify(e));
    e = await status(() => client.files.retrieve("file-000000000000000000000000"));
    check(e[0] === 404, "an unknown file id: 404", JSON.stringify(e));
    e = await status(() => client.files.retrieve("..%2F..%2Fetc"));
    check(e[0] === 404, "a path as file id: 404", JSON.stringify(e));

    // ---- bad batches ----
    const mk = (o = {}) => client.batches.create({input_file_id: f.id, endpoint: "/v1/completions",
        completion_window: "24h", ...o});
    e = await status(() => mk({input_file_id: "file-000000000000000000000000"}));
    check(e[0] === 404 && /no file with id/.test(e[1]), "batches.create, unknown file: 404", JSON.stringify(e));
    e = await status(() => mk({input_file_id: other.id}));
    check(e[0] === 400 && /purpose 'user_data'/.test(e[1]), "batches.create, a non-batch file: 400", JSON.stringify(e));
    e = await status(() => mk({endpoint: "/v1/chat/completions"}));
    check(e[0] === 400 && /line 1 .* not the batch's endpoint/.test(e[1]), "batches.create, endpoint mismatch: 400", JSON.stringify(e));
    e = await status(() => mk({endpoint: "/v1/images"}));
    check(e[0] === 400, "batches.create, unsupported endpoint: 400", JSON.stringify(e));
    e = await status(() => client.batches.retrieve("batch_000000000000000000000000"));
    check(e[0] === 404, "batches.retrieve, unknown id: 404", JSON.stringify(e));

    // ---- a batch: output equals direct answers ----
    const b = await mk({metadata: {job: "t1"}});
    check(/^batch_[0-9a-f]{24}$/.test(b.id) && b.object === "batch" && b.input_file_id === f.id &&
        ["validating", "in_progress"].includes(b.status) && b.request_counts.total === 7 && b.metadata.job === "t1",
        "batches.create", JSON.stringify(b));
    const fin = await waitFor(b.id, x => ["completed", "failed", "cancelled"].includes(x.status));
    check(fin.status === "completed" && fin.request_counts.completed === 6 && fin.request_counts.failed === 1 &&
        fin.output_file_id && fin.error_file_id && fin.completed_at >= fin.in_progress_at, "the batch completes",
        JSON.stringify(fin));
    const out = rows(await text(fin.output_file_id)), err = rows(await text(fin.error_file_id));
    check(out.length === 6 && err.length === 1 && err[0].custom_id === "bad" &&
        err[0].response.status_code === 400, "output file: the 6 answers; error file: the refused one");
    let same = true;
    for (const r of reqs.slice(0, 6)) {
        const o = out.find(x => x.custom_id === r.custom_id);
        const direct = await client.completions.create({...r.body, model: "tiny"});
        same &&= o && /^batch_req_/.test(o.id) && o.response.status_code === 200 &&
            o.response.body.choices[0].text === direct.choices[0].text &&
            o.response.body.usage.completion_tokens === direct.usage.completion_tokens;
    }
    check(same, "every batch answer equals the direct greedy answer");
    const bl = [];
    for await (const x of client.batches.list()) bl.push(x.id);
    check(bl[0] === b.id, "batches.list");
    e = await status(() => client.batches.cancel(b.id));
    check(e[0] === 409, "cancelling a completed batch: 409", JSON.stringify(e));

    // ---- cancel ----
    const long = Array.from({length: 24}, (_, i) => line(`l-${i}`, {prompt: `Story ${i}:`, max_tokens: 60,
        temperature: 0}));
    const lf = await client.files.create({file: await toFile(Buffer.from(jsonl(long)), "long.jsonl"), purpose: "batch"});
    const cb = await client.batches.create({input_file_id: lf.id, endpoint: "/v1/completions", completion_window: "24h"});
    await waitFor(cb.id, x => x.request_counts.completed >= 1);
    const c1 = await client.batches.cancel(cb.id);
    check(["cancelling", "cancelled"].includes(c1.status), "batches.cancel: cancelling", c1.status);
    const c2 = await waitFor(cb.id, x => x.status === "cancelled");
    const partial = c2.output_file_id ? rows(await text(c2.output_file_id)) : [];
    check(c2.status === "cancelled" && c2.cancelled_at && c2.request_counts.completed < 24 &&
        partial.length === c2.request_counts.completed, "the batch is cancelled with its partial output",
        JSON.stringify(c2.request_counts));

    // ---- kill -9 mid-batch, restart, resume ----
    const rb = await client.batches.create({input_file_id: lf.id, endpoint: "/v1/completions", completion_window: "24h"});
    const mid = await waitFor(rb.id, x => x.request_counts.completed >= 3);
    const killedAt = mid.request_counts.completed;
    await srv.stop("SIGKILL");
    srv = await startServer(args);
    client = new OpenAI({baseURL: srv.base + "/v1", apiKey: "k123", maxRetries: 0});
    const rfin = await waitFor(rb.id, x => ["completed", "failed", "cancelled"].includes(x.status));
    const rout = rfin.output_file_id ? rows(await text(rfin.output_file_id)) : [];
    const ids = rout.map(x => x.custom_id).sort();
    const want = long.map(x => x.custom_id).sort();
    check(rfin.status === "completed" && killedAt < 24 && JSON.stringify(ids) === JSON.stringify(want),
        `after kill -9 (at ${killedAt}/24) and a restart the batch resumes: every custom_id once`,
        JSON.stringify([rfin.status, ids.length]));
    // the resumed answers equal an uninterrupted run (greedy)
    let same2 = true;
    for (const x of rout.slice(0, 4)) {
        const r = long.find(l => l.custom_id === x.custom_id);
        const d = await client.completions.create({...r.body, model: "tiny"});
        same2 &&= x.response.body.choices[0].text === d.choices[0].text;
    }
    check(same2, "resumed answers equal direct answers");
    check(JSON.stringify(await client.files.retrieve(f.id)) === JSON.stringify(f) &&
        (await client.batches.retrieve(b.id)).status === "completed", "files and batches survive the restart");

    // ---- delete ----
    const del = await client.files.delete(other.id);
    check(del.deleted === true && del.id === other.id, "files.delete", JSON.stringify(del));
    e = await status(() => client.files.retrieve(other.id));
    check(e[0] === 404, "a deleted file is gone: 404");
    e = await status(() => client.files.delete(other.id));
    check(e[0] === 404, "deleting it again: 404");
    const noauth = await fetch(srv.base + "/v1/files");
    check(noauth.status === 401, "the file routes need the API key");
} catch (x) {
    check(false, "no exception", x.stack || String(x));
} finally {
    const code = await srv.stop();
    check(code === 0, "the server exits 0 on SIGTERM", String(code));
    fs.rmSync(dataDir, {recursive: true, force: true});
}
done("batches_client");
