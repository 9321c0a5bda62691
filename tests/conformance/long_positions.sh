#!/bin/bash
# Long positions with Llama 3 rope scaling: a small random-weight model carrying rope_freqs (factor 8,
# Llama 3.1's; head_dim 32, so its 16 frequencies fall in all three bands of LLAMA31.md: pairs 0-7
# unchanged, pair 8 smoothed, pairs 9-15 divided by 8) runs a 41,000-token prompt; llama.cpp and herd
# give the logits of positions on both sides of every power of two up to 32K and at the end, compared at
# the F32 tolerance of forward_llama_cpp.sh (5e-4). Both keep f32 KV caches, and llama.cpp runs without
# flash attention (its CPU flash kernel rounds through f16: 1.8e-3 off here). One head, one layer: the
# T x T attention is the whole cost (llama.cpp ~30 s of CPU on 2 threads, herd ~5 s). A wrong frequency,
# a wrong band edge or positions wrapping anywhere past 8K moves logits by O(1).
source tests/lib.sh
need_ref
[ -x "$HERD" ] || die "$HERD is not built"
command -v python3 >/dev/null || die "python3 is needed"
N=41000
M=$TMP/long.gguf
"$HERD" synth --vocab "$VOCAB_BPE" -o "$M" --n-embd 32 --n-head 1 --n-head-kv 1 --head-dim 32 --n-ff 64 --n-layer 1 \
    --untied --rope-scale 8 --ctx 131072 --type f32 --scale 0.05 --seed 9 >/dev/null || die "synth"
python3 - "$TMP/ids.json" "$N" <<'PY'
import json, random, sys
random.seed(5)
n = int(sys.argv[2])
json.dump([128000] + [random.randrange(0, 128000) for _ in range(n - 1)], open(sys.argv[1], "w"))
PY
AT='[0, 1, 511, 2047, 2048, 4095, 4096, 8191, 8192, 8193, 12345, 16383, 16384, 24000, 32767, 32768, 36000, 40999]'
t0=$SECONDS
node tests/ref/logits_at.mjs "$M" "$TMP/ids.json" "$AT" "$TMP/ref.bin" --batch 512 || die "llama.cpp failed"
t1=$SECONDS
"$HERD" logits -m "$M" --prompt-ids-file "$TMP/ids.json" --at "$AT" -o "$TMP/herd.bin" --kv-type f32 -t 2 ||
    die "herd logits failed"
t2=$SECONDS
echo "llama.cpp $((t1 - t0)) s, herd $((t2 - t1)) s for $N tokens"
node tests/ref/compare_logits.mjs "$TMP/ref.bin" "$TMP/herd.bin" 128256 5e-4 || die "logits differ at long positions"
