#!/bin/bash
# herd imatrix and herd quantize --imatrix against llama.cpp's llama-imatrix and llama-quantize (built once from
# node-llama-cpp's source bundle by tests/ref/build_llama_tools.sh into build/ref/llama-tools/), on one small
# random-weight F32 model (2 layers, n_embd 256, n_ff 512; stories260K's 512-token vocabulary):
# (a) herd's imatrix (GGUF) equals llama-imatrix's on the same file and text (-c 128, 6 windows, KV cache f32,
#     flash attention off, one window per pass in both): the same metadata, entries, shapes and token counts
#     exactly; the sums within TOL relative (max |a - b| / max |a| per matrix): both sum the same squares in the
#     same token order in F32, so they differ only by the activations' own last-bit differences (herd's and
#     llama.cpp's matmuls add in different orders);
# (b) llama-quantize --imatrix accepts herd's file (GGUF and .dat); herd reads llama-imatrix's (GGUF and .dat;
#     `herd imatrix --show`);
# (c) with the same importance matrix, herd quantize --pure writes the same bytes as llama-quantize --pure for
#     every blk.* tensor (the ones the matrix covers; token_embd / output have no entry and get each program's
#     plain quantizer) for Q2_K Q3_K Q4_K Q5_K Q6_K Q4_0 Q5_1 IQ4_NL IQ4_XS, from llama.cpp's GGUF matrix, and
#     for Q4_K and IQ4_XS from its .dat and from herd's own file;
# (d) bad input: a truncated or foreign imatrix file, an imatrix of another model's shape -> one error line;
# (e) without --pure, with a matrix, herd gives every tensor the type llama-quantize gives it (IQ4_XS, Q4_0 on an
#     8-layer model: llama.cpp's imatrix-dependent ffn_down rules).
source tests/lib.sh
set -o pipefail
need_ref
[ -x "$HERD" ] || die "$HERD is not built"
[ -f "$STORIES" ] || skip "the stories260K fixture ($STORIES) is missing"
need_llama_tools llama-imatrix llama-quantize
GGUF_PY=$REF/llama-tools/src/gguf-py
[ -f "$GGUF_PY/gguf/gguf_reader.py" ] || die "gguf-py missing under build/ref/llama-tools"
/usr/bin/python3 -c 'import numpy' 2>/dev/null || skip "python3-numpy is not installed"
TOL=1e-5
T=2
fails=0
cmp_py() { /usr/bin/python3 tests/ref/imatrix_compare.py "$GGUF_PY" "$@"; }
li() { "$BIN/llama-imatrix" -t $T -fa off -ctk f32 -ctv f32 -nr --no-ppl -c 128 -b 128 --chunks 6 "$@"; }
lq() { "$BIN/llama-quantize" --pure "$@" >"$TMP/lq.log" 2>&1 || { tail -5 "$TMP/lq.log"; return 1; }; }
hq() { "$HERD" quantize --pure -t $T -q "$@" >/dev/null 2>"$TMP/hq.log" || { cat "$TMP/hq.log"; return 1; }; }

f32=$TMP/f32.gguf
"$HERD" synth --vocab "$STORIES" -o "$f32" --n-embd 256 --n-head 4 --n-head-kv 2 --head-dim 64 --n-ff 512 \
    --n-layer 2 --untied --rope-scale 0 --type f32 --scale 0.05 --seed 11 >/dev/null || die "synth"
cd "$TMP" || die "cd"
/usr/bin/python3 - <<'PY'
import random
r = random.Random(7)
names = ["Lily", "Tom", "Ben", "Sue", "Max", "Anna"]; verbs = ["played", "ran", "jumped", "laughed", "looked", "sang"]
things = ["ball", "park", "cat", "tree", "box", "cake", "dog", "car"]
open("text.txt", "w").write(" ".join(f"{r.choice(names)} {r.choice(verbs)} with the {r.choice(things)}. " +
    r.choice(["She was happy.", "He was sad.", "They had fun.", "It was big.", ""]) for _ in range(200)) + "\n")
PY
cd - >/dev/null || die "cd"
TEXT=$TMP/text.txt

echo "== (a) herd imatrix vs llama-imatrix"
li -m "$f32" -f "$TEXT" -o "$TMP/ref.gguf" >"$TMP/li.log" 2>&1 || { tail -5 "$TMP/li.log"; die "llama-imatrix"; }
li -m "$f32" -f "$TEXT" -o "$TMP/ref.dat" --output-format dat >"$TMP/li.log" 2>&1 || { tail -5 "$TMP/li.log"; die "llama-imatrix dat"; }
"$HERD" imatrix -m "$f32" -f "$TEXT" -o "$TMP/herd.gguf" -c 128 --chunks 6 -t $T --kv-type f32 2>"$TMP/hi.log" ||
    { cat "$TMP/hi.log"; die "herd imatrix"; }
"$HERD" imatrix -m "$f32" -f "$TEXT" -o "$TMP/herd.dat" -c 128 --chunks 6 -t $T --kv-type f32 --output-format dat \
    2>"$TMP/hi.log" || { cat "$TMP/hi.log"; die "herd imatrix dat"; }
cmp_py imatrix "$TMP/ref.gguf" "$TMP/herd.gguf" "$TOL" || fails=$((fails + 1))

echo "== (b) each program reads the other's files"
for f in herd.gguf herd.dat; do
    if lq --imatrix "$TMP/$f" "$f32" "$TMP/lq-herd.gguf" Q4_K 2 && grep -q "loaded 14 importance matrix entries" "$TMP/lq.log"; then
        echo "ok   llama-quantize --imatrix $f: $(grep -o 'loaded 14 importance matrix entries.*' "$TMP/lq.log")"
    else
        echo "FAIL llama-quantize did not take herd's $f"; fails=$((fails + 1))
    fi
done
for f in ref.gguf ref.dat; do
    if "$HERD" imatrix --show "$TMP/$f" >"$TMP/show.txt" 2>&1 && [ "$(grep -c '^blk\.' "$TMP/show.txt")" = 14 ]; then
        echo "ok   herd imatrix --show $f: $(head -1 "$TMP/show.txt" | sed 's|.*/||')"
    else
        echo "FAIL herd could not read llama-imatrix's $f:"; cat "$TMP/show.txt"; fails=$((fails + 1))
    fi
done

echo "== (c) herd quantize --imatrix vs llama-quantize --imatrix (same matrix): blk.* bytes"
check_bytes() { # imatrix type
    lq --imatrix "$1" "$f32" "$TMP/l.gguf" "$2" 2 || { echo "FAIL llama-quantize $2"; fails=$((fails + 1)); return; }
    hq --imatrix "$1" "$f32" "$TMP/h.gguf" "$2" || { echo "FAIL herd quantize $2"; fails=$((fails + 1)); return; }
    printf '%-7s %-10s' "$2" "$(basename "$1")"
    cmp_py same-blk "$TMP/l.gguf" "$TMP/h.gguf" || fails=$((fails + 1))
}
for t in Q2_K Q3_K Q4_K Q5_K Q6_K Q4_0 Q5_1 IQ4_NL IQ4_XS; do check_bytes "$TMP/ref.gguf" $t; done
for t in Q4_K IQ4_XS; do check_bytes "$TMP/ref.dat" $t; check_bytes "$TMP/herd.gguf" $t; done

echo "== (e) the mix with an importance matrix: types as llama-quantize's (8 layers, 4 query heads per KV head)"
# IQ4_XS drops its first-eighth ffn_down Q5_K rule with a matrix; Q4_0 gets layer 0's ffn_down Q4_1
"$HERD" synth --vocab "$STORIES" -o "$TMP/l8.gguf" --n-embd 256 --n-head 8 --n-head-kv 2 --head-dim 32 --n-ff 512 \
    --n-layer 8 --untied --rope-scale 0 --type f32 --scale 0.05 --seed 5 >/dev/null || die "synth 8 layers"
"$HERD" imatrix -m "$TMP/l8.gguf" -f "$TEXT" -o "$TMP/l8-im.gguf" -c 128 --chunks 2 -t $T 2>"$TMP/hi.log" ||
    { cat "$TMP/hi.log"; die "herd imatrix (8 layers)"; }
for t in IQ4_XS Q4_0; do
    "$BIN/llama-quantize" --imatrix "$TMP/l8-im.gguf" "$TMP/l8.gguf" "$TMP/l.gguf" $t 2 >"$TMP/lq.log" 2>&1 ||
        { tail -3 "$TMP/lq.log"; die "llama-quantize $t (8 layers)"; }
    "$HERD" quantize --imatrix "$TMP/l8-im.gguf" "$TMP/l8.gguf" "$TMP/h.gguf" $t -t $T -q >/dev/null 2>"$TMP/hq.log" ||
        { cat "$TMP/hq.log"; die "herd quantize $t (8 layers)"; }
    printf '%-7s ' $t
    /usr/bin/python3 tests/ref/gguf_dequant.py "$GGUF_PY" types "$TMP/l.gguf" "$TMP/h.gguf" | grep -v ' F32:' ||
        fails=$((fails + 1))
done

echo "== (d) bad input: one error line"
bad_case() { # what, then the command
    local what=$1; shift
    if "$@" >/dev/null 2>"$TMP/err.txt"; then
        echo "FAIL $what was accepted"; fails=$((fails + 1))
    elif [ "$(grep -c 'error' "$TMP/err.txt")" -ne 1 ] || [ "$(grep -vc '^imatrix: ' "$TMP/err.txt")" -ne 1 ]; then
        echo "FAIL $what: expected one error line (beside herd imatrix's progress lines), got:"; cat "$TMP/err.txt"
        fails=$((fails + 1))
    else
        echo "ok   $what: $(grep -v '^imatrix: ' "$TMP/err.txt")"
    fi
}
head -c $(($(stat -c %s "$TMP/ref.gguf") - 100)) "$TMP/ref.gguf" >"$TMP/trunc.gguf"
head -c 2000 "$TMP/ref.dat" >"$TMP/trunc.dat"
bad_case "truncated GGUF imatrix" "$HERD" quantize "$f32" "$TMP/x.gguf" Q4_K --imatrix "$TMP/trunc.gguf"
bad_case "truncated .dat imatrix" "$HERD" imatrix --show "$TMP/trunc.dat"
bad_case "a model file as imatrix" "$HERD" quantize "$f32" "$TMP/x.gguf" Q4_K --imatrix "$f32"
"$HERD" synth --vocab "$STORIES" -o "$TMP/wide.gguf" --n-embd 512 --n-head 8 --n-head-kv 2 --head-dim 64 --n-ff 512 \
    --n-layer 2 --untied --rope-scale 0 --type f32 --scale 0.05 --seed 3 >/dev/null || die "synth wide"
bad_case "an imatrix of another shape" "$HERD" quantize "$TMP/wide.gguf" "$TMP/x.gguf" Q4_K --imatrix "$TMP/herd.gguf"
bad_case "too short a text" "$HERD" imatrix -m "$f32" -f "$TEXT" -c 4096 -o "$TMP/x.gguf"

[ $fails -eq 0 ] || die "$fails check(s) failed"
echo "all imatrix checks passed"
