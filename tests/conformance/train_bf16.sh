#!/bin/bash
# herd train --base-compute bf16 (LoRA: the frozen base's products with bf16 operands, F32 sums;
# src/train/gemm.h): on a q8_0 and a bf16 base, a 12-step LoRA run's per-step losses stay within 2e-3
# (relative) of the f32 run's — bf16 operands carry up to 2^-9 relative error each, which mostly averages
# out in the sums: the losses here moved by at most 1.5e-4 relative (measured), so 2e-3 leaves a 13x margin
# without hiding a wrong product (a zeroed or transposed one moves a loss of ~11.7 by far more) — and the
# loss still falls; the adapter loads and generates (herd run --lora; its greedy tokens may differ from
# the f32 adapter's on this random model, which is printed, not failed). The default
# is f32: no --base-compute and --base-compute f32 write the same adapter bytes. HERD_ISA=avx512 (no AMX)
# trains too. --base-compute int8 (the products as inference computes them: q8_0 activations and
# gradients, a transposed Q8_0 copy of each frozen matrix) likewise within 5e-3 of the f32 losses (moved by
# at most 4.7e-4 relative here: q8_0 operands carry ~2^-8 of their block's largest magnitude), falls, loads
# and generates, and writes the same adapter bytes with 1 and 3 threads. Refused: --method full with bf16
# or int8 (one line), an unknown value.
. tests/lib.sh
need_ref
for ty in q8_0 bf16; do
    "$HERD" synth --vocab "$VOCAB31" -o "$TMP/$ty.gguf" --type "$ty" --n-embd 64 --n-layer 2 --n-head 4 --n-head-kv 2 \
        --head-dim 16 --n-ff 128 --seed 11 >/dev/null || die "synth $ty"
done
for i in $(seq 1 40); do echo "The little robot found a red ball and a blue box in the garden, number $i."; done >"$TMP/text.txt"
A=(--data "$TMP/text.txt" --objective cpt --method lora --lora-rank 4 --lr 1e-2 --warmup 1 --seq-len 32 --batch 2
   --steps 12 --no-shuffle -t 2)

for ty in q8_0 bf16; do
    "$HERD" train -m "$TMP/$ty.gguf" "${A[@]}" --out "$TMP/d_$ty.gguf" 2>"$TMP/e.log" || { cat "$TMP/e.log"; die "train $ty default"; }
    "$HERD" train -m "$TMP/$ty.gguf" "${A[@]}" --base-compute f32 --out "$TMP/f_$ty.gguf" --metrics "$TMP/f_$ty.jsonl" \
        2>"$TMP/e.log" || { cat "$TMP/e.log"; die "train $ty f32"; }
    cmp -s "$TMP/d_$ty.gguf" "$TMP/f_$ty.gguf" || die "$ty: --base-compute f32 is not the default"
    "$HERD" train -m "$TMP/$ty.gguf" "${A[@]}" --base-compute bf16 --out "$TMP/b_$ty.gguf" --metrics "$TMP/b_$ty.jsonl" \
        2>"$TMP/e.log" || { cat "$TMP/e.log"; die "train $ty bf16"; }
    cmp -s "$TMP/f_$ty.gguf" "$TMP/b_$ty.gguf" && die "$ty: bf16 wrote the f32 adapter bit for bit (not in effect?)"
    python3 - "$TMP/f_$ty.jsonl" "$TMP/b_$ty.jsonl" "$ty" <<'PY' || die "$ty: bf16 losses off the f32 run's"
import json, sys
f = [json.loads(l)["loss"] for l in open(sys.argv[1])]
b = [json.loads(l)["loss"] for l in open(sys.argv[2])]
assert len(f) == len(b) == 12
rel = max(abs(x - y) / abs(x) for x, y in zip(f, b))
print("%s: f32 loss %.4f -> %.4f, bf16 %.4f -> %.4f, largest relative step difference %.2e" % (sys.argv[3], f[0], f[-1], b[0], b[-1], rel))
assert rel < 2e-3, rel
assert sum(b[-3:]) / 3 < b[0] - 0.1, "the bf16 run's loss did not fall"
PY
    "$HERD" train -m "$TMP/$ty.gguf" "${A[@]}" --base-compute int8 --out "$TMP/i_$ty.gguf" --metrics "$TMP/i_$ty.jsonl" \
        2>"$TMP/e.log" || { cat "$TMP/e.log"; die "train $ty int8"; }
    cmp -s "$TMP/f_$ty.gguf" "$TMP/i_$ty.gguf" && die "$ty: int8 wrote the f32 adapter bit for bit (not in effect?)"
    python3 - "$TMP/f_$ty.jsonl" "$TMP/i_$ty.jsonl" "$ty" <<'PY' || die "$ty: int8 losses off the f32 run's"
import json, sys
f = [json.loads(l)["loss"] for l in open(sys.argv[1])]
b = [json.loads(l)["loss"] for l in open(sys.argv[2])]
assert len(f) == len(b) == 12
rel = max(abs(x - y) / abs(x) for x, y in zip(f, b))
print("%s: int8 %.4f -> %.4f, largest relative step difference from f32 %.2e" % (sys.argv[3], b[0], b[-1], rel))
assert rel < 5e-3, rel
assert sum(b[-3:]) / 3 < b[0] - 0.1, "the int8 run's loss did not fall"
PY
    "$HERD" run -m "$TMP/$ty.gguf" -p "The little robot" -n 8 --temp 0 --lora "$TMP/i_$ty.gguf" >/dev/null 2>&1 || die "$ty: run --lora int8 adapter"
    of=$("$HERD" run -m "$TMP/$ty.gguf" -p "The little robot" -n 8 --temp 0 --lora "$TMP/f_$ty.gguf" 2>/dev/null) || die "$ty: run --lora f32 adapter"
    ob=$("$HERD" run -m "$TMP/$ty.gguf" -p "The little robot" -n 8 --temp 0 --lora "$TMP/b_$ty.gguf" 2>/dev/null) || die "$ty: run --lora bf16 adapter"
    [ -n "$ob" ] || die "$ty: the bf16 adapter generated nothing"
    [ "$of" = "$ob" ] || echo "note: $ty: greedy outputs differ: f32 '$of' bf16 '$ob'"
done
# the AVX-512 BF16 path (no AMX) where the CPU has it: same check of the losses
if HERD_ISA=avx512 "$HERD" train -m "$TMP/q8_0.gguf" "${A[@]}" --base-compute bf16 --out "$TMP/x.gguf" \
    --metrics "$TMP/x.jsonl" 2>"$TMP/e.log"; then
    python3 -c "
import json, sys
f = [json.loads(l)['loss'] for l in open('$TMP/f_q8_0.jsonl')]
b = [json.loads(l)['loss'] for l in open('$TMP/x.jsonl')]
assert max(abs(x - y) / abs(x) for x, y in zip(f, b)) < 2e-3" || die "HERD_ISA=avx512: bf16 losses off"
else
    cat "$TMP/e.log"; die "HERD_ISA=avx512 bf16 training"
fi
# int8: the thread count changes nothing (the matmul's outputs are each one thread's, in one order)
B=("${A[@]}"); B[${#B[@]}-1]=1
"$HERD" train -m "$TMP/q8_0.gguf" "${B[@]}" --base-compute int8 --out "$TMP/i1.gguf" 2>"$TMP/e.log" || { cat "$TMP/e.log"; die "int8 -t 1"; }
B[${#B[@]}-1]=3
"$HERD" train -m "$TMP/q8_0.gguf" "${B[@]}" --base-compute int8 --out "$TMP/i3.gguf" 2>"$TMP/e.log" || { cat "$TMP/e.log"; die "int8 -t 3"; }
cmp -s "$TMP/i1.gguf" "$TMP/i3.gguf" && cmp -s "$TMP/i1.gguf" "$TMP/i_q8_0.gguf" || die "int8: the adapter depends on the thread count"
# refused
"$HERD" train -m "$TMP/q8_0.gguf" --data "$TMP/text.txt" --objective cpt --method full --steps 1 --base-compute int8 --out "$TMP/x.gguf" 2>"$TMP/e.log" && die "full + int8 accepted"
grep -q 'base-compute int8 is for LoRA' "$TMP/e.log" || { cat "$TMP/e.log"; die "full + int8: message"; }
"$HERD" train -m "$TMP/q8_0.gguf" --data "$TMP/text.txt" --objective cpt --method full --steps 1 --base-compute bf16 --out "$TMP/x.gguf" 2>"$TMP/e.log" && die "full + bf16 accepted"
grep -q 'base-compute bf16 is for LoRA' "$TMP/e.log" || { cat "$TMP/e.log"; die "full + bf16: message"; }
[ "$(wc -l <"$TMP/e.log")" -eq 1 ] || { cat "$TMP/e.log"; die "full + bf16: more than one line"; }
"$HERD" train -m "$TMP/q8_0.gguf" "${A[@]}" --base-compute fp8 --out "$TMP/x.gguf" 2>"$TMP/e.log" && die "--base-compute fp8 accepted"
grep -q "'fp8' is not one of f32, bf16, int8" "$TMP/e.log" || { cat "$TMP/e.log"; die "bad --base-compute: message"; }
echo "ok"
