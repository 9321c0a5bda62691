// herd serve --store DIR with the official clients: OpenAI's vectorStores (create, list, retrieve, search
// with filters, delete), Llama Stack's vectorIo (insert, query) and the rag-tool routes (insert, query,
// by fetch: the 0.7 client no longer has them); bad input gives 4xx with a message.
import OpenAI from "openai";
import LlamaStackClient from "llama-stack-client";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {execFileSync} from "node:child_process";
import {startServer, testModel, check, done, HERD} from "./lib.mjs";

const model = testModel();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "herd-vs-"));
const srv = await startServer(["-m", model, "--parallel", "2", "--alias", "tiny", "--store", dir]);
const openai = new OpenAI({baseURL: srv.base + "/v1", apiKey: "unused", maxRetries: 0});
const ls = new LlamaStackClient({baseURL: srv.base, maxRetries: 0});
const post = async (p, body) => {
    const r = await fetch(srv.base + p, {method: "POST", headers: {"content-type": "application/json"},
        body: typeof body === "string" ? body : JSON.stringify(body)});
    return {status: r.status, body: await r.json()};
};
const status = async (f) => { try { await f(); return 200; } catch (e) { return e.status ?? -1; } };

const docs = [
    "The lighthouse keeper counted ships every night and wrote their names in a blue notebook.",
    "Copper kettles whistle louder than iron ones because the thin metal rings at a higher pitch.",
    "In the high meadow the goats followed the old shepherd, who sang to them about the winter.",
    "A binary heap keeps its smallest element at the root, so popping the minimum costs log n.",
];
try {
    // /v1/embeddings and herd embed share herd_embed_pooled: a batch of a string and token ids
    const ids = JSON.parse(execFileSync(HERD, ["tokenize", "-m", model, "-p", "bonjour le monde"]).toString());
    const e = await openai.embeddings.create({model: "tiny", input: [ids, ids.slice(0, 2)], encoding_format: "float"});
    const want = [ids, ids.slice(0, 2)].map(x =>
        JSON.parse(execFileSync(HERD, ["embed", "-m", model, "--prompt-ids", JSON.stringify(x)]).toString()));
    const md = (a, b) => a.length === b.length ? Math.max(...a.map((x, i) => Math.abs(x - b[i]))) : Infinity;
    check(e.data.length === 2 && md(e.data[0].embedding, want[0]) < 1e-6 && md(e.data[1].embedding, want[1]) < 1e-6,
        "/v1/embeddings (token-id batch) == herd embed", JSON.stringify(e.data.map((d, i) => md(d.embedding, want[i]))));
    const dr = await post("/v1/embeddings", {input: "a", dimensions: 64});
    check(dr.status === 400 && /not supported/.test(dr.body.error.message), "dimensions refused clearly",
        JSON.stringify(dr.body));

    const vs = await openai.vectorStores.create({name: "notes", metadata: {team: "a"}});
    check(vs.id.startsWith("vs_") && vs.object === "vector_store" && vs.name === "notes" && vs.metadata.team === "a",
        "vectorStores.create", JSON.stringify(vs));
    const list = await openai.vectorStores.list();
    check(list.data.some(v => v.id === vs.id) && list.data.some(v => v.id === "default"), "vectorStores.list",
        JSON.stringify(list.data.map(v => v.id)));
    const got = await openai.vectorStores.retrieve(vs.id);
    check(got.id === vs.id && got.name === "notes", "vectorStores.retrieve");

    // rag-tool insert: documents chunked by tokens and embedded by the engine
    const ins = await post("/v1/tool-runtime/rag-tool/insert", {vector_db_id: vs.id, chunk_size_in_tokens: 64,
        documents: docs.map((d, i) => ({document_id: `doc-${i}`, content: d, mime_type: "text/plain",
            metadata: {topic: i === 3 ? "cs" : "prose", n: i}}))});
    check(ins.status === 200, "rag-tool/insert", JSON.stringify(ins));
    const after = await openai.vectorStores.retrieve(vs.id);
    check(after.file_counts.completed === 4, "file_counts after insert", JSON.stringify(after.file_counts));

    // search: each document's own text is its top hit
    for (let i = 0; i < docs.length; i++) {
        const res = await openai.vectorStores.search(vs.id, {query: docs[i], max_num_results: 3});
        const top = res.data[0];
        check(top && top.content[0].text === docs[i] && top.score > 0.999 && top.attributes.document_id === `doc-${i}`,
            `search: document ${i}'s text is its own top hit`, JSON.stringify(top));
    }
    const f = await openai.vectorStores.search(vs.id, {query: docs[0], max_num_results: 10,
        filters: {type: "eq", key: "topic", value: "cs"}});
    check(f.data.length === 1 && f.data[0].content[0].text === docs[3], "search with a comparison filter",
        JSON.stringify(f.data.map(d => d.attributes)));

    // Llama Stack vector-io
    await ls.vectorIo.insert({vector_store_id: vs.id, chunks: [{content: "Zebras sleep standing up in open grassland.",
        chunk_id: "z1", metadata: {document_id: "zebra"}}]});
    const q = await ls.vectorIo.query({vector_store_id: vs.id, query: "Zebras sleep standing up in open grassland.",
        params: {max_chunks: 2}});
    check(q.chunks.length === 2 && q.chunks[0].content === "Zebras sleep standing up in open grassland." &&
        q.chunks[0].metadata.document_id === "zebra" && q.scores[0] > 0.999 && q.scores[0] >= q.scores[1],
        "vectorIo.insert + query", JSON.stringify(q));
    const rq = await post("/v1/tool-runtime/rag-tool/query", {content: docs[2], vector_db_ids: [vs.id],
        query_config: {max_chunks: 2}});
    const txt = rq.body.content?.map(c => c.text).join("") ?? "";
    check(rq.status === 200 && txt.startsWith("knowledge_search tool found 2 chunks:") && txt.includes(docs[2]) &&
        rq.body.metadata.document_ids[0] === "doc-2" && rq.body.metadata.scores.length === 2, "rag-tool/query",
        JSON.stringify(rq.body).slice(0, 400));

    // bad input -> 4xx with a message
    check(await status(() => openai.vectorStores.retrieve("vs_nope")) === 404, "retrieve an unknown store: 404");
    check(await status(() => openai.vectorStores.search("vs_nope", {query: "x"})) === 404, "search an unknown store: 404");
    check(await status(() => openai.vectorStores.search(vs.id, {query: ""})) === 400, "empty query: 400");
    check(await status(() => openai.vectorStores.search(vs.id, {query: "x", max_num_results: 500})) === 400,
        "max_num_results 500: 400");
    const bads = [
        ["/v1/vector-io/insert", {vector_store_id: vs.id, chunks: []}, 400],
        ["/v1/vector-io/insert", {vector_store_id: "vs_nope", chunks: [{content: "a"}]}, 404],
        ["/v1/tool-runtime/rag-tool/insert", {vector_db_id: vs.id, documents: [{document_id: "e", content: ""}]}, 400],
        ["/v1/tool-runtime/rag-tool/insert", {vector_db_id: vs.id, documents: [{document_id: "p", content: "x",
            mime_type: "application/pdf"}]}, 400],
        ["/v1/vector-io/query", "{not json", 400],
        ["/v1/vector_stores/" + vs.id + "/search", {query: "x", filters: {type: "between"}}, 400],
    ];
    for (const [p, b, want] of bads) {
        const r = await post(p, b);
        check(r.status === want && r.body.error && r.body.error.message, `${p} bad input -> ${want}`,
            JSON.stringify([r.status, r.body]));
    }

    // delete
    const del = await openai.vectorStores.delete(vs.id);
    check(del.deleted === true && del.id === vs.id, "vectorStores.delete");
    check(await status(() => openai.vectorStores.retrieve(vs.id)) === 404, "deleted store is gone");
} catch (e) {
    check(false, "unexpected error", String(e?.stack || e));
} finally {
    await srv.stop();
    fs.rmSync(dir, {recursive: true, force: true});
}
done("vector_stores_client");
