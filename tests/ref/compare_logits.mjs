// Compares two float32 logit files [n][n_vocab]: node tests/ref/compare_logits.mjs REF.bin HERD.bin N_VOCAB TOL
// Prints max |Δ|, the largest |logit|, and per-row argmax agreement; exits 1 if max |Δ| > TOL.
import fs from "node:fs";
const [refPath, herdPath, nv, tol] = process.argv.slice(2);
const nVocab = Number(nv), limit = Number(tol);
const a = new Float32Array(fs.readFileSync(refPath).buffer.slice(0));
const b = new Float32Array(fs.readFileSync(herdPath).buffer.slice(0));
if (a.length !== b.length || a.length % nVocab !== 0) {
    console.log(`size mismatch: reference ${a.length} floats, herd ${b.length} floats, n_vocab ${nVocab}`);
    process.exit(1);
}
const rows = a.length / nVocab;
let maxd = 0, maxAt = -1, maxAbs = 0, argmaxSame = 0, nan = 0, closeRows = 0;
for (let r = 0; r < rows; r++) {
    let ia = 0, ib = 0, rowMax = 0;
    for (let i = 0; i < nVocab; i++) {
        const x = a[r * nVocab + i], y = b[r * nVocab + i];
        if (!Number.isFinite(y)) nan++;
        const d = Math.abs(x - y);
        if (d > maxd) { maxd = d; maxAt = r; }
        if (d > rowMax) rowMax = d;
        if (Math.abs(x) > maxAbs) maxAbs = Math.abs(x);
        if (x > a[r * nVocab + ia]) ia = i;
        if (y > b[r * nVocab + ib]) ib = i;
    }
    if (ia === ib) argmaxSame++;
    if (rowMax <= 1e-5) closeRows++;
}
const ok = nan === 0 && maxd <= limit;
console.log(`${ok ? "OK  " : "FAIL"} rows ${rows}  max|Δ| ${maxd.toExponential(3)} (row ${maxAt}, tolerance ${limit})  ` +
    `max|logit| ${maxAbs.toFixed(3)}  argmax agree ${argmaxSame}/${rows}  rows within 1e-5 ${closeRows}/${rows}${nan ? `  non-finite ${nan}` : ""}`);
process.exit(ok ? 0 : 1);
