#!/bin/bash
# KV cache memory (docs/KVCACHE.md): herd info -c N prints the cache size each type takes, to the byte
# formula 2 x n_layer x N x kv_dim x bytes-per-element (q8_0 34/32, q4_0 18/32); the scratch does not grow
# with N; herd refuses up front, with the numbers, a context whose cache does not fit in MemAvailable;
# bad cache types and a block type on a head_dim that is not whole blocks are one clear error each.
source tests/lib.sh
[ -x "$HERD" ] || die "$HERD is not built"
[ -f "$VOCAB_BPE" ] || skip "no vocabulary GGUF at $VOCAB_BPE (tests/ref/setup.sh)"
m=$TMP/wide.gguf # 32 layers x 8 KV heads of 128 (an 8B's cache shape), tiny everything else
"$HERD" synth --vocab "$VOCAB_BPE" -o "$m" --n-embd 256 --n-head 8 --n-head-kv 8 --head-dim 128 --n-ff 256 \
    --n-layer 32 --type q8_0 --seed 1 >/dev/null || die "synth"
fails=0
# GiB of a 131072-token cache: 2 x 32 x 131072 x 1024 elements
declare -A WANT=([f32]=32.000 [f16]=16.000 [bf16]=16.000 [q8_0]=8.500 [q4_0]=4.500)
for t in f32 f16 bf16 q8_0 q4_0; do
    got=$("$HERD" info "$m" -c 131072 --kv-type "$t" | sed -n 's/^ *KV cache \([0-9.]*\) GiB.*/\1/p')
    if [ "$got" = "${WANT[$t]}" ]; then echo "ok   KV cache $t at 131072 tokens: $got GiB"
    else echo "FAIL KV cache $t at 131072 tokens: $got GiB, want ${WANT[$t]}"; fails=$((fails + 1)); fi
done
got=$("$HERD" info "$m" -c 131072 --kv-type-k q8_0 --kv-type-v q4_0 | sed -n 's/^ *KV cache \([0-9.]*\) GiB (K q8_0, V q4_0).*/\1/p')
[ "$got" = 6.500 ] && echo "ok   K q8_0 + V q4_0: $got GiB" || { echo "FAIL K q8_0 + V q4_0: '$got', want 6.500"; fails=$((fails + 1)); }
s1=$("$HERD" info "$m" -c 1024 | grep 'scratch') s2=$("$HERD" info "$m" -c 131072 | grep 'scratch')
[ "$s1" = "$s2" ] && echo "ok   scratch independent of the context: $s1" ||
    { echo "FAIL scratch grows with the context: '$s1' vs '$s2'"; fails=$((fails + 1)); }
# refusal: a 32 GiB f32 cache where less is available
avail_kb=$(sed -n 's/^MemAvailable: *\([0-9]*\) kB/\1/p' /proc/meminfo)
if [ "${avail_kb:-0}" -gt 0 ] && [ "$avail_kb" -lt $((32 * 1024 * 1024)) ]; then
    out=$("$HERD" run -m "$m" -c 131072 --kv-type f32 -p hi -n 1 2>&1); rc=$?
    if [ $rc -ne 0 ] && [[ "$out" == *"need 32.0"*"KV cache 32.00 GiB"*"available (MemAvailable"* ]]; then
        echo "ok   refused up front: $out"
    else echo "FAIL a 32 GiB cache was not refused (exit $rc): $out"; fails=$((fails + 1)); fi
    if [ "$avail_kb" -gt $((5 * 1024 * 1024)) ]; then # (the cache's pages stay untouched: 2 tokens)
        "$HERD" run -m "$m" -c 131072 --kv-type q4_0 -p hi -n 1 >/dev/null 2>&1 && echo "ok   the same context in q4_0 runs" ||
            { echo "FAIL the 4.5 GiB q4_0 context did not run"; fails=$((fails + 1)); }
    fi
else
    echo "note: MemAvailable is 32 GiB or more here; the refusal is not exercised"
fi
# bad input: one error line each
out=$("$HERD" run -m "$m" --kv-type q5_0 -p hi -n 1 2>&1) && { echo "FAIL --kv-type q5_0 accepted"; fails=$((fails + 1)); }
[[ "$out" == *"must be f32, f16, bf16, q8_0 or q4_0"* ]] && echo "ok   $out" || { echo "FAIL: $out"; fails=$((fails + 1)); }
"$HERD" synth --vocab "$VOCAB_BPE" -o "$TMP/hd40.gguf" --n-embd 160 --n-head 4 --n-head-kv 2 --head-dim 40 --n-ff 256 \
    --n-layer 1 --type f32 --seed 1 >/dev/null || die "synth hd40"
out=$("$HERD" run -m "$TMP/hd40.gguf" --kv-type-k q8_0 -p hi -n 1 2>&1) && { echo "FAIL q8_0 on head_dim 40 accepted"; fails=$((fails + 1)); }
[[ "$out" == *"head_dim a multiple of 32"* ]] && echo "ok   $out" || { echo "FAIL: $out"; fails=$((fails + 1)); }
[ $fails -eq 0 ] || die "$fails checks failed"
echo "KV memory checks passed"
