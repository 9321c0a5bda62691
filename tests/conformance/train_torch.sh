#!/bin/bash
# herd train's gradients against PyTorch (Debian's python3-torch, float64; tests/tools/train_torch.py):
# random-weight models with the real vocabulary (GQA ratios 1/2/4, tied and untied output, rope_freqs),
# every objective (cpt, sft with masking, dpo with NLL, distill with top-k), full fine-tuning (every
# tensor) and LoRA (A and B, from a nonzero adapter) on F32, Q8_0 and Q4_0 bases: one SGD step of
# learning rate 1000 from W gives W - 1000 dL/dW; each tensor's relative gradient error <= 1e-4 and the
# loss to 1e-5. Then one AdamW step equals torch.optim.AdamW's, and a finite-difference check of herd's
# own loss confirms a directional derivative (a second oracle, independent of PyTorch).
. tests/lib.sh
need_ref
/usr/bin/python3 -c 'import torch, numpy' 2>/dev/null || { # Debian's PyTorch 1.13 and numpy, installed at test time
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    ($SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-torch python3-numpy) \
        >/dev/null 2>&1 || true
    /usr/bin/python3 -c 'import torch, numpy' 2>/dev/null || {
        [ "${CI:-}" = "true" ] && die "python3-torch could not be installed"
        skip "python3-torch is not installed"
    }
}
PY="/usr/bin/python3 tests/tools/train_torch.py"
D=tests/data/train
SGD="--optimizer sgd --lr 1000 --schedule constant --warmup 0 --weight-decay 0 --grad-clip 0 --steps 1 --no-shuffle -t 2"
synth() { "$HERD" synth --vocab "$VOCAB31" -o "$TMP/$1.gguf" --n-embd 64 --n-layer 2 --n-head 4 --head-dim 16 --n-ff 128 "${@:2}" >/dev/null || die "synth $1"; }
synth g2 --type f32 --n-head-kv 2 --untied --rope-scale 8 --seed 1
synth g4 --type f32 --n-head-kv 1 --tied --rope-scale 8 --seed 2
synth g1 --type f32 --n-head-kv 4 --untied --seed 3
synth q8 --type q8_0 --n-head-kv 2 --untied --rope-scale 8 --seed 4
synth q4 --type q4_0 --n-head-kv 2 --tied --seed 5
synth teacher --type f32 --n-head-kv 2 --untied --seed 6 --scale 0.05
for i in $(seq 1 12); do echo "Once upon a time, a small robot named Pip found a red ball in the garden."; done >"$TMP/text.txt"

fails=0
check() { # name, model, method, objective, data, batch, extra herd args..., then -- python args
    local name=$1 model=$2 method=$3 obj=$4 data=$5 batch=$6; shift 6
    local hargs=() pargs=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do hargs+=("$1"); shift; done
    [ "${1:-}" = "--" ] && shift
    pargs=("$@")
    if ! "$HERD" train -m "$TMP/$model.gguf" --data "$data" --objective "$obj" --method "$method" $SGD --batch "$batch" \
        --seq-len 256 --out "$TMP/$name.gguf" --dump-data "$TMP/$name.data.jsonl" --metrics "$TMP/$name.metrics.jsonl" \
        "${hargs[@]}" >"$TMP/$name.log" 2>&1; then
        echo "FAIL $name: herd train failed"; cat "$TMP/$name.log"; fails=$((fails + 1)); return
    fi
    if $PY grads --model "$TMP/$model.gguf" --data "$TMP/$name.data.jsonl" --objective "$obj" --method "$method" \
        --out "$TMP/$name.gguf" --metrics "$TMP/$name.metrics.jsonl" --sgd-lr 1000 --examples "$batch" "${pargs[@]}" >"$TMP/$name.py.log" 2>&1; then
        echo "ok   $name: $(tail -n 1 "$TMP/$name.py.log"); $(head -n 1 "$TMP/$name.py.log")"
    else
        echo "FAIL $name:"; sed 's/^/  /' "$TMP/$name.py.log"; fails=$((fails + 1))
    fi
}
# a nonzero starting adapter for each base (3 AdamW steps from B = 0), so A's gradient is not zero
init() {
    "$HERD" train -m "$TMP/$1.gguf" --data "$D/sft.jsonl" --objective sft --method lora --lora-rank 4 --lora-alpha 8 \
        --steps 3 --lr 1e-2 --seq-len 256 --out "$TMP/init_$1.gguf" -t 2 >/dev/null 2>&1 || die "init adapter for $1"
}
for m in g2 g4 g1 q8 q4; do init $m; done
L="--lora-rank 4 --lora-alpha 8"

check full_cpt_gqa2_untied g2 full cpt "$TMP/text.txt" 2 --seq-len 40
# one sequence a step, no clipping: the optimizer steps each tensor inside the backward pass (the layers
# share one gradient buffer): the same gradients, tied and untied
check full_cpt_fused_untied g2 full cpt "$TMP/text.txt" 1 --seq-len 40
check full_cpt_fused_tied g4 full cpt "$TMP/text.txt" 1 --seq-len 40
check full_sft_gqa4_tied g4 full sft "$D/sft.jsonl" 4
check full_sft_gqa1 g1 full sft "$D/sft.jsonl" 4 --train-on-input
check full_dpo g2 full dpo "$D/dpo.jsonl" 2 --dpo-beta 0.5 --nll-coef 0.2 -- --beta 0.5 --nll-coef 0.2
check lora_sft_gqa4 g4 lora sft "$D/sft.jsonl" 4 $L --lora-init "$TMP/init_g4.gguf" -- --init "$TMP/init_g4.gguf"
check lora_cpt_gqa1 g1 lora cpt "$TMP/text.txt" 2 $L --lora-init "$TMP/init_g1.gguf" --seq-len 40 -- --init "$TMP/init_g1.gguf"
check lora_dpo_gqa2 g2 lora dpo "$D/dpo.jsonl" 2 $L --lora-init "$TMP/init_g2.gguf" --dpo-beta 0.5 --nll-coef 0.2 \
    -- --init "$TMP/init_g2.gguf" --beta 0.5 --nll-coef 0.2
check lora_distill g2 lora distill "$D/sft.jsonl" 4 $L --lora-init "$TMP/init_g2.gguf" --teacher "$TMP/teacher.gguf" \
    --kd-ratio 0.7 --kd-temp 2 -- --init "$TMP/init_g2.gguf" --teacher "$TMP/teacher.gguf" --kd-ratio 0.7 --kd-temp 2
check full_distill_topk g4 full distill "$D/sft.jsonl" 4 --teacher "$TMP/teacher.gguf" --teacher-top-k 50 \
    -- --teacher "$TMP/teacher.gguf" --top-k 50
check lora_sft_q8_0 q8 lora sft "$D/sft.jsonl" 4 $L --lora-init "$TMP/init_q8.gguf" -- --init "$TMP/init_q8.gguf"
check lora_sft_q4_0 q4 lora sft "$D/sft.jsonl" 4 $L --lora-init "$TMP/init_q4.gguf" -- --init "$TMP/init_q4.gguf"
"$HERD" train -m "$TMP/g2.gguf" --data "$D/sft.jsonl" --objective sft --method lora --lora-rank 4 --lora-alpha 8 \
    --lora-targets q,v,down --steps 3 --lr 1e-2 --seq-len 256 --out "$TMP/init_qvd.gguf" -t 2 >/dev/null 2>&1 || die "init q,v,down"
check lora_targets_q_v_down g2 lora sft "$D/sft.jsonl" 4 --lora-rank 4 --lora-alpha 8 --lora-targets q,v,down \
    --lora-init "$TMP/init_qvd.gguf" -- --init "$TMP/init_qvd.gguf"

# AdamW: herd's step against torch.optim.AdamW fed herd's gradient (from the SGD run above, lr 1000)
"$HERD" train -m "$TMP/g2.gguf" --data "$TMP/text.txt" --objective cpt --method full --optimizer adamw --lr 1e-3 \
    --weight-decay 0.1 --schedule constant --grad-clip 0 --steps 1 --no-shuffle --batch 2 --seq-len 40 -t 2 \
    --out "$TMP/adamw.gguf" >/dev/null 2>&1 || die "adamw run"
if $PY adamw --model "$TMP/g2.gguf" --sgd "$TMP/full_cpt_gqa2_untied.gguf" --sgd-lr 1000 --out "$TMP/adamw.gguf" \
    --lr 1e-3 --wd 0.1; then :; else
    echo "FAIL adamw"; fails=$((fails + 1)); fi

echo "$fails failed"
[ $fails -eq 0 ]
