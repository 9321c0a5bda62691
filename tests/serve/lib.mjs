// Shared helpers of the server tests: start `herd serve` on a free loopback port, wait until it
// answers, stop it with SIGTERM and check it exits cleanly; a tiny assertion tally.
import {spawn, execFileSync} from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

export const root = process.cwd();
export const HERD = process.env.HERD || path.join(root, "build/herd");
export const VOCAB = path.join(root, "build/ref/llama31-vocab.gguf"); // Llama 3.1 special tokens

// A small random-weight Llama 3 model (real vocabulary) shared by the server tests.
export function testModel(dir = path.join(root, "build/test-models")) {
    const m = path.join(dir, "serve-tiny31-q8_0.gguf");
    if (!fs.existsSync(m)) {
        fs.mkdirSync(dir, {recursive: true});
        execFileSync(HERD, ["synth", "--vocab", VOCAB, "-o", m + ".tmp", "--shape", "tiny", "--type", "q8_0",
            "--output-type", "q8_0", "--seed", "11", "--name", "serve-tiny"], {stdio: "inherit"});
        fs.renameSync(m + ".tmp", m);
    }
    return m;
}

export async function startServer(args, {bin = HERD, env = {}} = {}) {
    const p = spawn(bin, ["serve", "--port", "0", ...args], {stdio: ["ignore", "pipe", "pipe"],
        env: {...process.env, ...env}});
    let err = "";
    p.stderr.on("data", d => { err += d; });
    const port = await new Promise((resolve, reject) => {
        let out = "";
        p.stdout.on("data", d => {
            out += d;
            const m = out.match(/^(\d+)\n/);
            if (m) resolve(Number(m[1]));
        });
        p.on("exit", code => reject(new Error(`herd serve exited with ${code}: ${err}`)));
        setTimeout(() => reject(new Error("herd serve did not start in 60 s: " + err)), 60000);
    });
    const base = `http://127.0.0.1:${port}`;
    for (let i = 0; i < 100; i++) {
        try { if ((await fetch(base + "/health")).ok) break; } catch { /* not yet */ }
        await new Promise(r => setTimeout(r, 50));
    }
    return {
        proc: p, port, base, stderr: () => err,
        async stop(signal = "SIGTERM") {
            if (p.exitCode !== null) return p.exitCode;
            const done = new Promise(r => p.on("exit", (code, sig) => r(code ?? sig)));
            p.kill(signal);
            return await done;
        },
    };
}

let passed = 0, failed = 0;
export function check(cond, what, detail = "") {
    if (cond) { passed++; console.log(`ok   ${what}`); }
    else { failed++; console.log(`FAIL ${what}${detail ? ": " + detail : ""}`); }
}
export function done(name) {
    console.log(`${name}: ${passed} checks, ${failed} failed`);
    process.exit(failed ? 1 : 0);
}

// herd's own prompt ids and greedy continuation for a chat, for comparing with the server
export function herdChatIds(messages) {
    const f = path.join(os.tmpdir(), `herd-msgs-${process.pid}.json`);
    fs.writeFileSync(f, JSON.stringify(messages));
    const out = execFileSync(HERD, ["format", "-m", VOCAB, "--messages", f, "--tokens"]).toString();
    fs.unlinkSync(f);
    return JSON.parse(out);
}
export function herdRunGreedy(model, ids, n) {
    const out = execFileSync(HERD, ["run", "-m", model, "--prompt-ids", JSON.stringify(ids), "-n", String(n),
        "--temp", "0", "--json"]).toString();
    return JSON.parse(out);
}
