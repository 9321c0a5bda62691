#!/bin/bash
# herd train as a user runs it: the loss falls; resume after SIGINT and after kill -9 ends bit-identical
# to an uninterrupted run; progress lines, the metrics JSONL and the SVG curve; the CLI contract
# (full + SGD lr 1 writes W - dL/dW, checked by train_torch.sh); and bad input: a malformed JSONL line
# names file:line and the field, an adapter that does not fit is refused by name, a NaN loss stops the
# run naming the step and the last good checkpoint, bad options.
. tests/lib.sh
need_ref
"$HERD" synth --vocab "$VOCAB31" -o "$TMP/m.gguf" --type f32 --n-embd 64 --n-layer 2 --n-head 4 --n-head-kv 2 \
    --head-dim 16 --n-ff 128 --seed 7 >/dev/null || die "synth"
"$HERD" synth --vocab "$VOCAB31" -o "$TMP/other.gguf" --type f32 --n-embd 32 --n-layer 2 --n-head 2 --n-head-kv 1 \
    --head-dim 16 --n-ff 64 --seed 8 >/dev/null || die "synth"
for i in $(seq 1 40); do echo "The little robot found a red ball and a blue box in the garden, number $i."; done >"$TMP/text.txt"
T=(-m "$TMP/m.gguf" --data "$TMP/text.txt" --objective cpt --method lora --lora-rank 4 --lora-dropout 0.1 --lr 5e-3
   --warmup 2 --seq-len 32 --batch 2 --grad-accum 2 -t 2 --val-split 0.2 --val-every 4)

# 1. an uninterrupted run: progress lines, loss falls, metrics, svg
"$HERD" train "${T[@]}" --steps 24 --out "$TMP/a.gguf" --metrics "$TMP/a.jsonl" 2>"$TMP/a.log" || { cat "$TMP/a.log"; die "train"; }
grep -q '^step 1/24  loss [0-9.]*  lr [0-9.e-]*  grad-norm [0-9.]*  [0-9.]* tok/s  ETA ' "$TMP/a.log" || { cat "$TMP/a.log"; die "no progress line"; }
grep -q 'val-loss' "$TMP/a.log" || die "no validation line"
[ "$(wc -l <"$TMP/a.jsonl")" -eq 24 ] || die "metrics: expected 24 lines"
python3 - "$TMP/a.jsonl" <<'PY' || die "the loss did not fall"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
first, last = rows[0]["loss"], sum(r["loss"] for r in rows[-4:]) / 4
vals = [r["val_loss"] for r in rows if "val_loss" in r]
print("loss %.4f -> %.4f, val %s" % (first, last, ["%.4f" % v for v in vals]))
assert last < first - 0.1 and vals[-1] < vals[0]
PY
grep -q '<polyline' "$TMP/a.loss.svg" || die "no SVG loss curve"

# 2. SIGINT mid-run, then --resume: the same adapter, bit for bit
"$HERD" train "${T[@]}" --steps 24 --save-every 5 --out "$TMP/b.gguf" --metrics "$TMP/b.jsonl" 2>"$TMP/b.log" &
pid=$!
for _ in $(seq 1 200); do grep -q '^step 7/' "$TMP/b.log" && break; sleep 0.05; done
kill -INT $pid
wait $pid; rc=$?
[ $rc -eq 130 ] || { cat "$TMP/b.log"; die "SIGINT: exit $rc, expected 130"; }
grep -q 'interrupted after step' "$TMP/b.log" || die "SIGINT: no message"
"$HERD" train "${T[@]}" --steps 24 --save-every 5 --out "$TMP/b.gguf" --metrics "$TMP/b.jsonl" --resume "$TMP/b.gguf.ckpt" \
    2>>"$TMP/b.log" || { cat "$TMP/b.log"; die "resume after SIGINT"; }
cmp -s "$TMP/a.gguf" "$TMP/b.gguf" || die "resumed after SIGINT: the adapter differs from the uninterrupted run"
[ "$(wc -l <"$TMP/b.jsonl")" -eq 24 ] || die "metrics after resume: expected 24 lines"

# 3. kill -9 after a checkpoint, then --resume
"$HERD" train "${T[@]}" --steps 24 --save-every 3 --out "$TMP/c.gguf" 2>"$TMP/c.log" &
pid=$!
for _ in $(seq 1 200); do grep -q '^step 8/' "$TMP/c.log" && break; sleep 0.05; done
kill -9 $pid; wait $pid 2>/dev/null
[ -f "$TMP/c.gguf.ckpt/state.bin" ] || die "kill -9: no checkpoint"
"$HERD" train "${T[@]}" --steps 24 --save-every 3 --out "$TMP/c.gguf" --resume "$TMP/c.gguf.ckpt" 2>>"$TMP/c.log" ||
    { cat "$TMP/c.log"; die "resume after kill -9"; }
cmp -s "$TMP/a.gguf" "$TMP/c.gguf" || die "resumed after kill -9: the adapter differs from the uninterrupted run"
# a resume with other settings is refused, naming the setting
"$HERD" train "${T[@]}" --steps 24 --lora-rank 8 --out "$TMP/c.gguf" --resume "$TMP/c.gguf.ckpt" 2>"$TMP/e.log" && die "resume with another rank"
grep -q 'rank=8' "$TMP/e.log" || { cat "$TMP/e.log"; die "resume mismatch message"; }

# 4. bad input
printf '%s\n' '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}' \
    '{"messages": [{"role": "user", "content": "hi"}, {"role": "wizard", "content": "x"}]}' >"$TMP/bad.jsonl"
"$HERD" train -m "$TMP/m.gguf" --data "$TMP/bad.jsonl" --objective sft --method lora --out "$TMP/x.gguf" 2>"$TMP/e.log" && die "bad JSONL accepted"
grep -q 'bad.jsonl:2: messages\[1\].role' "$TMP/e.log" || { cat "$TMP/e.log"; die "bad JSONL: no file:line and field"; }
[ "$(wc -l <"$TMP/e.log")" -eq 1 ] || die "bad JSONL: more than one error line"
printf '{"messages": [' >"$TMP/trunc.jsonl"
"$HERD" train -m "$TMP/m.gguf" --data "$TMP/trunc.jsonl" --objective sft --method lora --out "$TMP/x.gguf" 2>"$TMP/e.log" && die "truncated JSONL accepted"
grep -q 'trunc.jsonl:1' "$TMP/e.log" || { cat "$TMP/e.log"; die "truncated JSONL message"; }
# an adapter of another model's shape
"$HERD" train -m "$TMP/other.gguf" --data "$TMP/text.txt" --objective cpt --method lora --steps 1 --seq-len 16 \
    --out "$TMP/other_ad.gguf" -t 2 2>/dev/null || die "train other"
"$HERD" train "${T[@]}" --steps 1 --lora-init "$TMP/other_ad.gguf" --out "$TMP/x.gguf" 2>"$TMP/e.log" && die "a misfit adapter accepted"
grep -q 'blk\.0\.attn_q\.weight\.lora_a' "$TMP/e.log" || { cat "$TMP/e.log"; die "misfit adapter: not refused by name"; }
# a NaN loss: SGD with an absurd learning rate blows the weights up at step 1
"$HERD" train -m "$TMP/m.gguf" --data "$TMP/text.txt" --objective cpt --method full --optimizer sgd --lr 1e38 --grad-clip 0 \
    --schedule constant --steps 4 --save-every 1 --seq-len 16 -t 2 --out "$TMP/nan.gguf" 2>"$TMP/e.log" && die "NaN loss not caught"
grep -Eq 'step [0-9]+: the (loss|gradient norm) is (nan|inf|-nan).*nan.gguf.ckpt, step [0-9]+' "$TMP/e.log" || { cat "$TMP/e.log"; die "NaN: message"; }
# full fine-tuning, one sequence a step, no clipping: the updates made inside the backward pass
# (tmodel grads_ready) give the weights, losses and gradient norms of the ordinary step bit for bit,
# AdamW over 3 steps with a warmup
F=(-m "$TMP/m.gguf" --data "$TMP/text.txt" --objective cpt --method full --grad-clip 0 --lr 1e-3 --warmup 1 --steps 3
   --seq-len 16 -t 2)
for f in 1 0; do
    HERD_TRAIN_FUSED=$f "$HERD" train "${F[@]}" --out "$TMP/fused$f.gguf" --metrics "$TMP/fused$f.jsonl" 2>/dev/null || die "full, fused=$f"
done
cmp -s "$TMP/fused1.gguf" "$TMP/fused0.gguf" || die "full: the in-backward optimizer step changed the weights"
python3 - "$TMP/fused1.jsonl" "$TMP/fused0.jsonl" <<'PY' || die "full: the in-backward step changed the loss or grad norm"
import json, sys
a, b = ([(r["loss"], r["grad_norm"]) for r in map(json.loads, open(f))] for f in sys.argv[1:3])
assert a == b and len(a) == 3, (a, b)
PY
# full fine-tuning of a quantized base is refused; bad options
"$HERD" synth --vocab "$VOCAB31" -o "$TMP/q.gguf" --type q8_0 --n-embd 64 --n-layer 1 --n-head 2 --n-head-kv 1 --head-dim 32 --n-ff 128 >/dev/null
"$HERD" train -m "$TMP/q.gguf" --data "$TMP/text.txt" --objective cpt --method full --out "$TMP/x.gguf" 2>"$TMP/e.log" && die "full on q8_0"
grep -q 'needs F32, F16 or BF16' "$TMP/e.log" || die "full on q8_0: message"
for bad in "--objective foo" "--method half" "--lora-targets q,x" "--lr abc" "--seq-len 0"; do
    "$HERD" train -m "$TMP/m.gguf" --data "$TMP/text.txt" --objective cpt --method lora --out "$TMP/x.gguf" $bad 2>"$TMP/e.log" && die "accepted $bad"
    grep -q '^herd train: error: ' "$TMP/e.log" || { cat "$TMP/e.log"; die "$bad: no error line"; }
done
"$HERD" train -m "$TMP/m.gguf" --data "$TMP/missing.txt" --objective cpt --method lora --out "$TMP/x.gguf" 2>"$TMP/e.log" && die "missing data"
grep -q 'missing.txt' "$TMP/e.log" || die "missing data: message"
echo "ok"
