#!/bin/bash
# make demo's training step learns: the demo model (random weights, real vocabulary) fine-tuned with LoRA
# on scripts/demo_qa.jsonl exactly as scripts/demo.sh does it answers every training question exactly
# under greedy decoding, and did not before.
. tests/lib.sh
need_ref
model=$TMP/demo.gguf
"$HERD" synth --vocab "$VOCAB_BPE" -o "$model" --shape tiny --type q8_0 --output-type q8_0 >/dev/null || die "synth"
"$HERD" train -m "$model" --data scripts/demo_qa.jsonl --objective sft --method lora --lora-rank 16 --lora-alpha 32 \
    --lr 4e-3 --warmup 10 --weight-decay 0 --steps 120 --batch 6 --seq-len 64 --out "$TMP/qa.gguf" -t 2 2>"$TMP/train.log" ||
    { cat "$TMP/train.log"; die "train"; }
tail -n 2 "$TMP/train.log"
python3 -c 'import json; [print(json.dumps([m["content"] for m in json.loads(l)["messages"]])) for l in open("scripts/demo_qa.jsonl")]' >"$TMP/qa.txt"
n=0
while IFS= read -r pair; do
    q=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])[0])' "$pair")
    a=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])[1])' "$pair")
    before=$("$HERD" chat -m "$model" -p "$q" --temp 0 -n 24 -t 2 2>/dev/null)
    after=$("$HERD" chat -m "$model" --lora "$TMP/qa.gguf" -p "$q" --temp 0 -n 24 -t 2 2>/dev/null)
    echo "Q: $q | before: ${before:0:40} | after: $after"
    [ "$after" = "$a" ] || die "after training, '$q' got '$after', expected '$a'"
    [ "$before" != "$a" ] || die "the untrained model already answered '$q'"
    n=$((n + 1))
done <"$TMP/qa.txt"
[ $n -eq 6 ] || die "expected 6 questions, read $n"
echo ok
