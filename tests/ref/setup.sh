#!/bin/bash
# Installs the test references into build/ref (once; later calls return at once) and prints
# nothing on success. Afterwards:
#   build/ref/node_modules/            node-llama-cpp (llama.cpp v0.5.0 prebuilt), @huggingface/jinja, and the
#                                      clients the server is tested with: openai, llama-stack-client,
#                                      playwright-core (drives Debian's chromium; downloads no browser)
#   build/ref/llama.cpp/models/        ggml-vocab-llama-bpe.gguf (+ .inp/.out), ggml-vocab-llama-spm.gguf (+ .inp/.out)
#   build/ref/llama.cpp/templates/     meta-llama-Llama-3.1-8B-Instruct.jinja and the 3.2 / 3.3 ones
#   build/ref/llama31-vocab.gguf       the same vocabulary with Llama 3.1's special tokens and chat template
# The vocabularies and templates come out of llama.cpp's source, shipped inside node-llama-cpp as
# llama/gitRelease.bundle. Exit 0 ok; 77 (skip) when npm cannot be reached outside CI; 1 otherwise.
set -u
root="$(cd "$(dirname "$0")/../.." && pwd)"
ref="$root/build/ref"
stamp="$ref/.complete-v3"
# node resolves packages upwards from a script's folder: let tests/ref/*.mjs and bench/*.mjs find
# build/ref's
ln -sfn ../../build/ref/node_modules "$root/tests/ref/node_modules"
ln -sfn ../build/ref/node_modules "$root/bench/node_modules"
[ -f "$stamp" ] && exit 0
mkdir -p "$ref"
exec 9>"$ref/.lock"
flock 9
[ -f "$stamp" ] && exit 0
cp "$root/tests/ref/package.json" "$ref/package.json"
cd "$ref" || exit 1
if ! NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install --omit=optional --no-audit --no-fund --loglevel=error \
        >"$ref/npm-install.log" 2>&1; then
    echo "tests/ref/setup.sh: npm install of the references failed (see build/ref/npm-install.log)" >&2
    [ "${CI:-}" = "true" ] && exit 1
    exit 77
fi
bundle="$ref/node_modules/node-llama-cpp/llama/gitRelease.bundle"
[ -f "$bundle" ] || { echo "tests/ref/setup.sh: $bundle is missing" >&2; exit 1; }
rm -rf "$ref/llama.cpp.git" "$ref/llama.cpp"
git init -q --bare "$ref/llama.cpp.git" &&
    git -C "$ref/llama.cpp.git" fetch -q "$bundle" 'HEAD:refs/heads/main' 2>/dev/null ||
    git -C "$ref/llama.cpp.git" fetch -q "$bundle" '+refs/*:refs/*' || exit 1
rev=$(git -C "$ref/llama.cpp.git" for-each-ref --format='%(objectname)' | head -n 1)
mkdir -p "$ref/llama.cpp/models" "$ref/llama.cpp/templates"
for f in ggml-vocab-llama-bpe.gguf ggml-vocab-llama-bpe.gguf.inp ggml-vocab-llama-bpe.gguf.out \
         ggml-vocab-llama-spm.gguf ggml-vocab-llama-spm.gguf.inp ggml-vocab-llama-spm.gguf.out; do
    git -C "$ref/llama.cpp.git" show "$rev:models/$f" >"$ref/llama.cpp/models/$f" || exit 1
done
for f in meta-llama-Llama-3.1-8B-Instruct.jinja meta-llama-Llama-3.2-3B-Instruct.jinja \
         meta-llama-Llama-3.3-70B-Instruct.jinja; do
    git -C "$ref/llama.cpp.git" show "$rev:models/templates/$f" >"$ref/llama.cpp/templates/$f" || exit 1
done
rm -rf "$ref/llama.cpp.git"
# Llama 3.1's special-token names over the same vocabulary (<|python_tag|>, <|eom_id|>, ...), with
# the official chat template stored in it: what a Llama 3.1 GGUF carries
python3 "$root/tests/tools/llama31_vocab.py" "$ref/llama.cpp/models/ggml-vocab-llama-bpe.gguf" "$ref/llama31-vocab.gguf" \
    "$ref/llama.cpp/templates/meta-llama-Llama-3.1-8B-Instruct.jinja" || exit 1
touch "$stamp"
