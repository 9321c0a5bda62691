// herd serve --store DIR --data-dir DIR with the official OpenAI client (npm `openai`; content and retrieve
// with llama-stack-client too): vector store files (upload through /v1/files, attach, list, retrieve,
// content, update, search finds the file's own text, delete, gone), file
// batches, vectorStores.create with file_ids, bad input (unknown file or store, empty file, unsupported
// type, a second attach, bad chunking) -> 4xx with a message; then the file_search tool in chat completions:
// the answer names what it retrieved, and the prompt the model saw is the user's message rewritten with
// those results (its token count equals herd format's count of that exact message), streamed and not.
import OpenAI, {toFile} from "openai";
import LlamaStackClient from "llama-stack-client";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {startServer, testModel, check, done, herdChatIds} from "./lib.mjs";

const model = testModel();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "herd-vsf-"));
const srv = await startServer(["-m", model, "--parallel", "2", "-c", "4096", "--alias", "tiny", "-t", "2",
    "--store", path.join(dir, "store"), "--data-dir", path.join(dir, "data")]);
const openai = new OpenAI({baseURL: srv.base + "/v1", apiKey: "unused", maxRetries: 0});
const status = async (f) => { try { await f(); return [200, ""]; } catch (e) { return [e.status ?? -1, e.error?.message ?? String(e)]; } };
const upload = async (name, text) => openai.files.create({file: await toFile(Buffer.from(text), name), purpose: "assistants"});

const texts = {
    "lighthouse.txt": "The lighthouse keeper counted ships every night and wrote their names in a blue notebook.",
    "kettles.md": "# Kettles\n\nCopper kettles whistle louder than iron ones because the thin metal rings higher.",
    "goats.html": "<html><head><style>p{}</style></head><body><p>In the high meadow the goats followed the old " +
        "shepherd, who sang to them about the winter.</p></body></html>",
};
const goatsText = "In the high meadow the goats followed the old shepherd, who sang to them about the winter.";
const small = {type: "static", static: {max_chunk_size_tokens: 100, chunk_overlap_tokens: 20}};
try {
    const up = {};
    for (const [n, t] of Object.entries(texts)) up[n] = await upload(n, t);
    const empty = await upload("empty.txt", "");
    const csv = await upload("table.csv", "a,b\n1,2\n");

    const vs = await openai.vectorStores.create({name: "files"});
    // attach: synchronous, so the SDK's poll returns at once
    const a = await openai.vectorStores.files.createAndPoll(vs.id, {file_id: up["lighthouse.txt"].id,
        attributes: {lang: "en", year: 2024}, chunking_strategy: small});
    check(a.id === up["lighthouse.txt"].id && a.object === "vector_store.file" && a.status === "completed" &&
        a.vector_store_id === vs.id && a.last_error === null && a.usage_bytes > 0 && a.attributes.lang === "en" &&
        a.chunking_strategy.static.max_chunk_size_tokens === 100 && a.chunking_strategy.static.chunk_overlap_tokens === 20,
        "vectorStores.files.createAndPoll", JSON.stringify(a));
    const b = await openai.vectorStores.files.create(vs.id, {file_id: up["kettles.md"].id});
    check(b.status === "completed" && b.chunking_strategy.static.max_chunk_size_tokens === 512, "files.create (auto chunking)",
        JSON.stringify(b));
    const c = await openai.vectorStores.files.create(vs.id, {file_id: up["goats.html"].id, chunking_strategy: small});
    check(c.status === "completed", "files.create (HTML)");

    const list = [];
    for await (const f of openai.vectorStores.files.list(vs.id, {limit: 2})) list.push(f.id);
    check(list.length === 3 && list[0] === c.id && list.includes(a.id) && list.includes(b.id),
        "files.list (newest first, paged by 2)", JSON.stringify(list));
    const r = await openai.vectorStores.files.retrieve(a.id, {vector_store_id: vs.id});
    check(r.id === a.id && r.attributes.year === 2024, "files.retrieve", JSON.stringify(r));
    const st = await openai.vectorStores.retrieve(vs.id);
    check(st.file_counts.completed === 3 && st.file_counts.total === 3 && st.usage_bytes === a.usage_bytes + b.usage_bytes +
        c.usage_bytes, "file_counts and usage_bytes", JSON.stringify(st));

    // search: each file's text is its own top hit, named by file id and filename
    const want = {"lighthouse.txt": texts["lighthouse.txt"], "goats.html": goatsText};
    for (const [n, t] of Object.entries(want)) {
        const res = await openai.vectorStores.search(vs.id, {query: t, max_num_results: 3});
        const top = res.data[0];
        check(top && top.file_id === up[n].id && top.filename === n && top.content[0].text.trim() === t && top.score > 0.99,
            `search finds ${n}`, JSON.stringify(top));
    }
    const fl = await openai.vectorStores.search(vs.id, {query: goatsText, filters: {type: "eq", key: "lang", value: "en"}});
    check(fl.data.length === 1 && fl.data[0].file_id === a.id, "search with an attribute filter", JSON.stringify(fl.data));

    // content: the parsed text, chunk by chunk (kettles.md: one chunk of 512 holds it all)
    const cont = [];
    for await (const x of openai.vectorStores.files.content(b.id, {vector_store_id: vs.id})) cont.push(x);
    check(cont.length === 1 && cont[0].type === "text" && cont[0].text === texts["kettles.md"], "files.content",
        JSON.stringify(cont));
    const ls = new LlamaStackClient({baseURL: srv.base, maxRetries: 0});
    const lc = await ls.vectorStores.files.content(vs.id, c.id);
    check(lc.object === "vector_store.file_content.page" && lc.data.length === 1 && lc.data[0].text.trim() === goatsText &&
        lc.data[0].chunk_metadata.document_id === c.id && lc.data[0].chunk_metadata.source === "goats.html",
        "llama-stack-client vectorStores.files.content", JSON.stringify(lc));
    const lf = await ls.vectorStores.files.retrieve(vs.id, c.id);
    check(lf.id === c.id && lf.status === "completed", "llama-stack-client vectorStores.files.retrieve");

    // update: new attributes on the file and its chunks (filters see them)
    const u = await openai.vectorStores.files.update(c.id, {vector_store_id: vs.id, attributes: {lang: "en", kind: "html"}});
    check(u.id === c.id && u.attributes.kind === "html", "files.update (attributes)", JSON.stringify(u));
    const fu = await openai.vectorStores.search(vs.id, {query: goatsText, filters: {type: "eq", key: "kind", value: "html"}});
    check(fu.data.length === 1 && fu.data[0].file_id === c.id && fu.data[0].attributes.kind === "html",
        "search filters on the updated attributes", JSON.stringify(fu.data));
    await openai.vectorStores.files.update(c.id, {vector_store_id: vs.id, attributes: {}});

    // bad input
    const bads = [
        [() => openai.vectorStores.files.update(c.id, {vector_store_id: vs.id, attributes: {x: [1]}}), 400, /attributes\.x/],
        [() => openai.vectorStores.files.update("file-000000000000000000000000", {vector_store_id: vs.id,
            attributes: {}}), 404, /no file/],
        [() => openai.vectorStores.files.create(vs.id, {file_id: "file-000000000000000000000000"}), 404, /no file/],
        [() => openai.vectorStores.files.create("vs_nope", {file_id: a.id}), 404, /no vector store/],
        [() => openai.vectorStores.files.create(vs.id, {file_id: empty.id}), 400, /no text/],
        [() => openai.vectorStores.files.create(vs.id, {file_id: csv.id}), 400, /unsupported file type/],
        [() => openai.vectorStores.files.create(vs.id, {file_id: a.id}), 400, /already in/],
        [() => openai.vectorStores.files.create(vs.id, {file_id: b.id, chunking_strategy: {type: "static",
            static: {max_chunk_size_tokens: 50, chunk_overlap_tokens: 0}}}), 400, /max_chunk_size_tokens/],
        [() => openai.vectorStores.files.retrieve("file-000000000000000000000000", {vector_store_id: vs.id}), 404, /no file/],
        [() => openai.vectorStores.files.delete("file-000000000000000000000000", {vector_store_id: vs.id}), 404, /no file/],
    ];
    for (const [f, code, re] of bads) {
        const [s, msg] = await status(f);
        check(s === code && re.test(msg), `bad input -> ${code} ${re}`, JSON.stringify([s, msg]));
    }

    // delete: gone from the list and from search; the upload itself stays
    const del = await openai.vectorStores.files.delete(a.id, {vector_store_id: vs.id});
    check(del.deleted === true && del.id === a.id && del.object === "vector_store.file.deleted", "files.delete",
        JSON.stringify(del));
    const after = (await openai.vectorStores.files.list(vs.id)).data.map(f => f.id);
    check(after.length === 2 && !after.includes(a.id), "deleted file not listed", JSON.stringify(after));
    const gone = await openai.vectorStores.search(vs.id, {query: texts["lighthouse.txt"], max_num_results: 10});
    check(gone.data.every(d => d.file_id !== a.id), "deleted file not found by search");
    check((await status(() => openai.vectorStores.files.retrieve(a.id, {vector_store_id: vs.id})))[0] === 404,
        "deleted file: retrieve 404");
    check((await openai.files.retrieve(a.id)).id === a.id, "the uploaded file itself remains");

    // file batches: the good ones attached, the bad one counted failed
    const vs2 = await openai.vectorStores.create({name: "batch"});
    const fb = await openai.vectorStores.fileBatches.createAndPoll(vs2.id, {file_ids: [a.id, csv.id, up["goats.html"].id]});
    check(fb.status === "completed" && fb.object === "vector_store.files_batch" && fb.file_counts.completed === 2 &&
        fb.file_counts.failed === 1 && fb.file_counts.total === 3, "fileBatches.createAndPoll", JSON.stringify(fb));
    const bf = (await openai.vectorStores.fileBatches.listFiles(fb.id, {vector_store_id: vs2.id})).data.map(f => f.id);
    check(bf.length === 2 && bf.includes(a.id) && bf.includes(up["goats.html"].id), "fileBatches.listFiles", JSON.stringify(bf));
    const fbr = await openai.vectorStores.fileBatches.retrieve(fb.id, {vector_store_id: vs2.id});
    check(fbr.id === fb.id && fbr.file_counts.completed === 2, "fileBatches.retrieve");

    // vectorStores.create with file_ids; with one bad file nothing is left behind
    const vs3 = await openai.vectorStores.create({name: "with files", file_ids: [up["kettles.md"].id, up["goats.html"].id]});
    check(vs3.file_counts.completed === 2, "vectorStores.create with file_ids", JSON.stringify(vs3.file_counts));
    const n0 = (await openai.vectorStores.list()).data.length;
    const [s3, m3] = await status(() => openai.vectorStores.create({name: "bad", file_ids: [a.id, empty.id]}));
    check(s3 === 400 && /no text/.test(m3) && (await openai.vectorStores.list()).data.length === n0,
        "vectorStores.create with an empty file: 400, no store left", JSON.stringify([s3, m3]));

    // file_search in chat completions
    // (the model's weights are random: the query is a file's own text, so that it is surely the top hit)
    const q = texts["lighthouse.txt"];
    const tool = {type: "file_search", vector_store_ids: [vs3.id, vs2.id], max_num_results: 2};
    const resp = await openai.chat.completions.create({model: "tiny", max_tokens: 4, temperature: 0,
        messages: [{role: "user", content: q}], tools: [tool]});
    const fsc = resp.file_search_call;
    const res = fsc?.results ?? [];
    check(fsc && fsc.type === "file_search_call" && fsc.status === "completed" && fsc.queries[0] === q &&
        res.length === 2 && res[0].filename === "lighthouse.txt" && res[0].file_id === a.id && res[0].score > 0.999 &&
        res[0].score >= res[1].score && res[0].vector_store_id === vs2.id && res[0].text === q,
        "file_search: the answer's file_search_call names the retrieved chunks", JSON.stringify(fsc));
    // the message the model saw: the results numbered with their sources, then the question
    let msg = "Answer the question using the documents below. Cite the documents you use by their number " +
        "in brackets, like [1], and say so if they do not contain the answer.\n\n";
    res.forEach((x, i) => { msg += `[${i + 1}] (source: ${x.filename})\n${x.text}\n\n`; });
    msg += "Question: " + q;
    const ids = herdChatIds([{role: "user", content: msg}]);
    check(resp.usage.prompt_tokens === ids.length, "file_search: the prompt is the message with the results inserted",
        `${resp.usage.prompt_tokens} vs ${ids.length}`);
    const plain = await openai.chat.completions.create({model: "tiny", max_tokens: 1, messages: [{role: "user", content: q}]});
    check(plain.file_search_call === undefined && plain.usage.prompt_tokens < resp.usage.prompt_tokens,
        "without the tool: no retrieval");
    const stream = await openai.chat.completions.create({model: "tiny", max_tokens: 2, stream: true,
        messages: [{role: "user", content: [{type: "text", text: q}]}], tools: [{...tool, max_num_results: 1}]});
    const chunks = [];
    for await (const ch of stream) chunks.push(ch);
    check(chunks[0].file_search_call?.results?.length === 1 && chunks[0].file_search_call.results[0].file_id === a.id,
        "file_search streamed: on the first chunk", JSON.stringify(chunks[0]));
    const fbad = [
        [{...tool, vector_store_ids: ["vs_nope"]}, 404, /no vector store/],
        [{...tool, vector_store_ids: []}, 400, /vector_store_ids/],
        [{...tool, max_num_results: 0}, 400, /max_num_results/],
    ];
    for (const [t, code, re] of fbad) {
        const [s, m] = await status(() => openai.chat.completions.create({model: "tiny", max_tokens: 1,
            messages: [{role: "user", content: q}], tools: [t]}));
        check(s === code && re.test(m), `file_search bad input -> ${code}`, JSON.stringify([s, m]));
    }
} catch (e) {
    check(false, "unexpected error", String(e?.stack || e));
} finally {
    await srv.stop();
    fs.rmSync(dir, {recursive: true, force: true});
}
done("vector_store_files_client");
