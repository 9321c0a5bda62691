#!/bin/bash
# Embeddings against llama.cpp (node-llama-cpp's embedding context, f32 KV cache). One random-weight F32 model is
# given llama.cpp's llama.pooling_type (mean 1, cls 2, last 3, none 0); llama.cpp's unnormalised
# vector for 24 token ids is compared with `herd embed --pooling P --no-normalize` (pooling none: the
# last token's row, the one node-llama-cpp returns) and, L2-normalised as common_embd_normalize does,
# with `herd embed --pooling P`. Both must agree to 1e-4 (max |Δ|).
source tests/lib.sh
need_ref
[ -x "$HERD" ] || die "$HERD is not built"
m=$TMP/m.gguf
"$HERD" synth --vocab "$VOCAB_BPE" -o "$m" --n-embd 256 --n-head 4 --n-head-kv 2 --head-dim 64 --n-ff 512 \
    --n-layer 2 --type f32 --scale 0.05 --seed 11 >/dev/null || die "synth"
IDS='[128000, 9906, 11, 1917, 0, 2028, 374, 264, 1296, 315, 279, 11914, 13, 578, 4062, 14198, 39935, 35308, 927, 279, 16053, 5679, 13, 220]'
declare -A PT=([mean]=1 [cls]=2 [last]=3 [none]=0)
fails=0
for pool in mean cls last none; do
    /usr/bin/python3 tests/ref/gguf_set_u32.py "$m" "$TMP/$pool.gguf" llama.pooling_type "${PT[$pool]}" || die "gguf_set_u32"
done
node tests/ref/embedding.mjs "$IDS" "$TMP/mean.gguf" "$TMP/cls.gguf" "$TMP/last.gguf" "$TMP/none.gguf" >"$TMP/refs" ||
    die "llama.cpp embeddings failed"
[ "$(wc -l <"$TMP/refs")" = 4 ] || die "llama.cpp gave $(wc -l <"$TMP/refs") vectors, not 4"
i=0
for pool in mean cls last none; do
    i=$((i + 1))
    sed -n ${i}p "$TMP/refs" >"$TMP/ref.json"
    "$HERD" embed -m "$m" --prompt-ids "$IDS" --pooling $pool --no-normalize -t 2 >"$TMP/raw.json" || die "herd embed $pool"
    "$HERD" embed -m "$m" --prompt-ids "$IDS" --pooling $pool -t 2 >"$TMP/norm.json" || die "herd embed $pool (normalised)"
    node -e '
        const fs = require("fs");
        const ref = JSON.parse(fs.readFileSync(process.argv[1]));
        let raw = JSON.parse(fs.readFileSync(process.argv[2])), norm = JSON.parse(fs.readFileSync(process.argv[3]));
        if (process.argv[4] === "none") { raw = raw[raw.length - 1]; norm = norm[norm.length - 1]; }
        let s = 0; for (const x of ref) s += x * x; s = Math.sqrt(s);
        const refn = ref.map(x => Math.fround(x * Math.fround(1 / s)));
        const md = (a, b) => { if (a.length !== b.length) return Infinity;
            let d = 0; for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i])); return d; };
        const d1 = md(ref, raw), d2 = md(refn, norm);
        const ok = d1 <= 1e-4 && d2 <= 1e-4;
        console.log(`${process.argv[4].padEnd(5)} n_embd ${ref.length}  raw max|d| ${d1.toExponential(2)}  normalised max|d| ${d2.toExponential(2)}  |ref| ${s.toFixed(4)}  ${ok ? "ok" : "FAIL"}`);
        process.exit(ok ? 0 : 1);' "$TMP/ref.json" "$TMP/raw.json" "$TMP/norm.json" $pool || fails=$((fails + 1))
done
# every pooling gives a different vector (the comparison above is not trivially the same row)
[ "$("$HERD" embed -m "$m" --prompt-ids "$IDS" --pooling cls)" != "$("$HERD" embed -m "$m" --prompt-ids "$IDS" --pooling last)" ] ||
    die "cls and last pooling gave the same vector"
"$HERD" embed -m "$m" -p x --pooling max 2>&1 | grep -q "pooling must be" || die "unknown --pooling not refused"
[ $fails -eq 0 ] || die "$fails poolings differ from llama.cpp"
echo "embeddings agree with llama.cpp for mean, cls, last, none, raw and normalised"
