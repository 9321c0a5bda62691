#!/bin/bash
# Prompt processing (pp512) on an AMX CPU: herd with its AMX kernels, herd with HERD_ISA=avx512 (the
# VNNI kernels, as before AMX) and llama.cpp's llama-bench, interleaved, on 1B-shaped random models
# (n_embd 2048, 4 layers, 32/8 heads, n_ff 8192, tied, Llama 3.1 vocab). Never part of make test.
#   bench/amx_pp.sh [TYPE ...]        default: q8_0 q4_0 iq4_xs (also: q4_k, q6_k, q4_k_m = the mix)
# Env: THREADS (2), ROUNDS (2), PP (512), LLAMA_BENCH (default: tests/ref/build_llama_tools.sh's llama-bench).
#
# llama.cpp's AMX path (which llama-bench uses here for q8_0, q4_0, q4_K, q6_K and iq4_xs) faulted when built
# by gcc 12: tests/ref/build_llama_tools.sh now builds it with the work-around (see there).
set -eu
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}; ROUNDS=${ROUNDS:-2}; PP=${PP:-512}
LB=${LLAMA_BENCH:-$(tests/ref/build_llama_tools.sh llama-bench)/llama-bench}
types=("$@"); [ ${#types[@]} -eq 0 ] && types=(q8_0 q4_0 iq4_xs)
make -s build/herd >/dev/null
D=build/amx; mkdir -p $D
load() { cut -d' ' -f1 /proc/loadavg; }
herd_pp() { build/herd bench -m "$1" -p "$PP" -n 0 -t "$THREADS" -r 1 --json |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).pp.tokens_per_s.toFixed(1)))'; }
lb_pp() { "$LB" -m "$1" -p "$PP" -n 0 -t "$THREADS" -r 1 -o json 2>/dev/null |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s)[0].avg_ts.toFixed(1)))'; }
printf '%s | %s threads | pp%s, %s rounds (herd AMX, herd VNNI, llama-bench) | figure@load1\n' \
    "$(date -u +%Y-%m-%dT%H:%MZ)" "$THREADS" "$PP" "$ROUNDS"
printf '| type | herd AMX | herd HERD_ISA=avx512 | llama-bench (AMX) |\n|---|---|---|---|\n'
for t in "${types[@]}"; do
    m=$D/$t.gguf
    st=$t; [ $t = q4_k_m ] && st=f16 # Q4_K_M: llama-quantize's mix (q4_K, q6_K for attn_v / ffn_down / output)
    [ -f $m ] || [ -f $D/$st.gguf ] || build/herd synth --vocab build/ref/llama31-vocab.gguf -o $D/$st.gguf --type $st \
        --n-embd 2048 --n-layer 4 --n-head 32 --n-head-kv 8 --head-dim 64 --n-ff 8192 --rope-scale 32 --tied >&2
    [ -f $m ] || build/herd quantize $D/f16.gguf $m Q4_K_M -q >&2
    a=""; v=""; l=""
    for ((r = 0; r < ROUNDS; r++)); do
        a+="$(herd_pp $m)@$(load) "
        v+="$(HERD_ISA=avx512 herd_pp $m)@$(load) "
        l+="$(lb_pp $m)@$(load) "
    done
    printf '| %s | %s | %s | %s |\n' "$t" "$a" "$v" "$l"
done
