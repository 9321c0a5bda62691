// The server's prefix cache (src/engine/prefix_cache.h) and slot save/restore, on a random-weight model:
//   - the same requests (two ~2K-token system prompts taking turns on ONE slot, so a slot's own cache
//     never holds the next prompt's prefix; a multi-turn chat; greedy and seeded sampling) give
//     identical responses with the cache off (--cache-ram 0), on, and under a tiny budget that evicts;
//   - with the cache on, a repeated system prompt is reused from the tree (usage cached_tokens, /metrics
//     hit ratio and bytes); with it off it is not; the tiny budget counts evictions and stays within it;
//   - slot save -> restart -> restore -> the same continuation, reusing the restored tokens;
//   - bad filenames, unknown slots or actions, corrupt files, no --slot-save-path: 4xx/501, one message.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {startServer, testModel, check, done} from "./lib.mjs";

const model = testModel();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "herd-slots-"));
const base = ["-m", model, "--parallel", "1", "-c", "4096", "--alias", "tiny"];

const S1 = {role: "system", content: "You are a careful assistant. " + "Always answer in full sentences. ".repeat(340)};
const S2 = {role: "system", content: "You are a terse pirate. " + "Keep every reply short, matey. ".repeat(280)};
const turn1 = [S1, {role: "user", content: "What is the capital of France?"}];
const reqs = [];
for (let i = 0; i < 3; i++) {
    reqs.push({messages: [S1, {role: "user", content: `Question ${i} for the assistant?`}], temperature: 0, max_tokens: 10});
    reqs.push({messages: [S2, {role: "user", content: `Question ${i} for the pirate?`}], temperature: 0.8, seed: 40 + i,
        max_tokens: 10});
}

async function post(srv, p, body) {
    const r = await fetch(srv.base + p, {method: "POST", headers: {"Content-Type": "application/json"},
        body: typeof body === "string" ? body : JSON.stringify(body)});
    let j = null;
    try { j = await r.json(); } catch { /* not JSON */ }
    return {status: r.status, j};
}
const chat = (srv, b) => post(srv, "/v1/chat/completions", {model: "tiny", ...b});
async function metrics(srv) {
    const t = await (await fetch(srv.base + "/metrics")).text();
    const m = {};
    for (const l of t.split("\n")) {
        const x = l.match(/^(herd_[a-z_]+) ([0-9.e+-]+)$/);
        if (x) m[x[1]] = Number(x[2]);
    }
    return m;
}

// Runs the request list plus a two-turn chat; returns texts and cached counts.
async function runAll(srv) {
    const out = [], cached = [], prompt = [];
    for (const b of reqs) {
        const r = await chat(srv, b);
        out.push(r.j?.choices?.[0]?.message?.content ?? `HTTP ${r.status}`);
        cached.push(r.j?.usage?.prompt_tokens_details?.cached_tokens ?? -1);
        prompt.push(r.j?.usage?.prompt_tokens ?? -1);
    }
    const r1 = (await chat(srv, {messages: turn1, temperature: 0, max_tokens: 12})).j, a1 = r1.choices[0].message.content;
    const turn2 = [...turn1, {role: "assistant", content: a1}, {role: "user", content: "And of Spain?"}];
    const r2 = (await chat(srv, {messages: turn2, temperature: 0, max_tokens: 12})).j;
    out.push(a1, r2.choices[0].message.content);
    cached.push(-1, r2.usage.prompt_tokens_details?.cached_tokens ?? -1);
    prompt.push(r1.usage.prompt_tokens, r2.usage.prompt_tokens);
    return {out, cached, prompt, turn2};
}

let srv;
try {
    // cache off
    srv = await startServer([...base, "--cache-ram", "0"]);
    const off = await runAll(srv);
    const mOff = await metrics(srv);
    check(await srv.stop() === 0, "cache off: clean exit");
    // cache on
    srv = await startServer([...base, "--cache-ram", "64", "--slot-save-path", dir]);
    const on = await runAll(srv);
    const mOn = await metrics(srv);
    check(JSON.stringify(on.out) === JSON.stringify(off.out), "cache on: every response identical to cache off",
        JSON.stringify({on: on.out, off: off.out}));
    // the first S1 and S2 requests compute their prompts; from the third on, each starts from the tree
    const hits = on.cached.slice(2, 6), misses = off.cached.slice(2, 6);
    /* all but the user's question (< 16 tokens), the generation prompt and the last partial block */
    check(hits.every((c, i) => c >= on.prompt[i + 2] - 48) && Math.min(...on.prompt.slice(0, 6)) > 2000,
        "cache on: each repeated 2K-token system prompt is reused (cached_tokens)", JSON.stringify([on.cached, on.prompt]));
    check(misses.every(c => c < 100), "cache off: alternating system prompts on one slot are not reused", JSON.stringify(off.cached));
    check(on.cached[7] >= on.prompt[6] - 16, "multi-turn: the second turn reuses the first", JSON.stringify(on.cached));
    check(mOn.herd_prompt_cache_hit_ratio > 0.5 && mOff.herd_prompt_cache_hit_ratio < 0.3,
        "/metrics: hit ratio", `on ${mOn.herd_prompt_cache_hit_ratio}, off ${mOff.herd_prompt_cache_hit_ratio}`);
    check(mOn.herd_prefix_cache_bytes > 0 && mOn.herd_prefix_cache_bytes <= 64 * 2 ** 20 && mOff.herd_prefix_cache_bytes === 0,
        "/metrics: cache bytes", `on ${mOn.herd_prefix_cache_bytes}, off ${mOff.herd_prefix_cache_bytes}`);

    // slot save, then erase, then restore after a restart
    const p1 = [S1, {role: "user", content: "Tell me a story."}];
    await chat(srv, {messages: p1, temperature: 0, max_tokens: 8});
    const sv = await post(srv, "/slots/0?action=save", {filename: "s0.bin"});
    check(sv.status === 200 && sv.j.n_saved > 2000 && sv.j.n_written > sv.j.n_saved * 1000 && sv.j.timings?.save_ms >= 0,
        "save: 200 with n_saved, n_written", JSON.stringify(sv.j));
    check(fs.readdirSync(dir).join() === "s0.bin", "save: one file, no temporary left", fs.readdirSync(dir).join());
    // bad requests
    const bad = [
        ["/slots/0?action=save", {filename: "../escape.bin"}, 400, "filename"],
        ["/slots/0?action=save", {filename: "a/b.bin"}, 400, "filename"],
        ["/slots/0?action=save", {filename: ".hidden"}, 400, "filename"],
        ["/slots/0?action=save", {filename: ""}, 400, "filename"],
        ["/slots/0?action=save", {}, 400, "filename"],
        ["/slots/0?action=save", {filename: 7}, 400, "filename"],
        ["/slots/0?action=restore", {filename: "missing.bin"}, 404, "cannot open"],
        ["/slots/3?action=save", {filename: "x.bin"}, 404, "slot 3 does not exist"],
        ["/slots/abc?action=save", {filename: "x.bin"}, 400, "slot id"],
        ["/slots/-1?action=save", {filename: "x.bin"}, 400, "slot id"],
        ["/slots/0?action=explode", {filename: "x.bin"}, 400, "action"],
        ["/slots/0", {filename: "x.bin"}, 400, "action"],
        ["/slots/0?action=save", "[1,2]", 400, "JSON object"],
        ["/slots/0?action=restore", {filename: "junk.bin"}, 400, "not a herd slot file"],
        ["/slots/0?action=restore", {filename: "short.bin"}, 400, "bytes but its header says"],
    ];
    fs.writeFileSync(path.join(dir, "junk.bin"), "this is not a slot file at all. ".repeat(10));
    const good = fs.readFileSync(path.join(dir, "s0.bin"));
    fs.writeFileSync(path.join(dir, "short.bin"), good.subarray(0, good.length - 100));
    for (const [u, b, st, what] of bad) {
        const r = await post(srv, u, b);
        const msg = r.j?.error?.message ?? "";
        check(r.status === st && msg.includes(what), `${u} ${JSON.stringify(b)}: ${st} naming ${what}`, `${r.status} ${msg}`);
    }
    check(!fs.existsSync(path.join(os.tmpdir(), "escape.bin")) && !fs.existsSync(path.join(dir, "x.bin")), "no file written by a bad request");
    check(await srv.stop() === 0, "cache on: clean exit");

    // restart: restore, then the continuation equals the cache-off server's
    srv = await startServer([...base, "--slot-save-path", dir]);
    const rs = await post(srv, "/slots/0?action=restore", {filename: "s0.bin"});
    check(rs.status === 200 && rs.j.n_restored === sv.j.n_saved && rs.j.n_read === sv.j.n_written,
        "restore: 200, the saved tokens and bytes", JSON.stringify(rs.j));
    const cont = [...p1.slice(0, 1), {role: "user", content: "Tell me a story."}];
    const r3 = (await chat(srv, {messages: cont, temperature: 0, max_tokens: 12})).j;
    check(r3.usage.prompt_tokens_details?.cached_tokens >= sv.j.n_saved - 8 - 1,
        "after restore: the request reuses the restored slot", JSON.stringify(r3.usage));
    check(await srv.stop() === 0, "restored: clean exit");
    srv = await startServer([...base, "--cache-ram", "0"]);
    const r4 = (await chat(srv, {messages: cont, temperature: 0, max_tokens: 12})).j;
    check(r3.choices[0].message.content === r4.choices[0].message.content, "after restore: the same continuation as uncached",
        JSON.stringify([r3.choices[0].message.content, r4.choices[0].message.content]));
    const no = await post(srv, "/slots/0?action=save", {filename: "x.bin"});
    check(no.status === 501, "no --slot-save-path: 501", `${no.status}`);
    const er = await post(srv, "/slots/0?action=erase", {});
    check(er.status === 200 && er.j.n_erased > 0, "erase: 200 with n_erased", JSON.stringify(er.j));
    check(await srv.stop() === 0, "uncached: clean exit");

    // a tiny budget (1 MiB = 64 blocks of this model's 16 KiB): both system prompts do not fit together
    srv = await startServer([...base, "--cache-ram", "1"]);
    const tiny = await runAll(srv);
    const mT = await metrics(srv);
    check(JSON.stringify(tiny.out) === JSON.stringify(off.out), "tiny budget: every response identical to cache off",
        JSON.stringify(tiny.out));
    check(mT.herd_prefix_cache_evictions_total > 0 && mT.herd_prefix_cache_bytes <= 2 ** 20,
        "tiny budget: blocks were evicted, bytes within the budget",
        `${mT.herd_prefix_cache_evictions_total} evicted, ${mT.herd_prefix_cache_bytes} bytes`);
    check(await srv.stop() === 0, "tiny budget: clean exit");
    srv = null;
} catch (e) {
    check(false, "no exception", e.stack + (srv ? "\n" + srv.stderr() : ""));
    if (srv) await srv.stop("SIGKILL");
} finally {
    fs.rmSync(dir, {recursive: true, force: true});
}
done("prefix_cache_client");
