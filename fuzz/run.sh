#!/bin/bash
# Runs every built fuzz target (build/fuzz/fuzz_*) for SECONDS seconds each (default 20) from a seed
# corpus; exits non-zero on the first crash, leak or sanitizer report (the reproducer is kept in
# build/fuzz/). `make fuzz FUZZ_SECONDS=600` for a longer run.
set -u
cd "$(dirname "$0")/.."
secs=${1:-20}
[ -n "$secs" ] || secs=20
status=0
failed=""
for t in build/fuzz/fuzz_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    corpus=build/fuzz/corpus-$name
    mkdir -p "$corpus"
    # seeds: valid GGUFs for the GGUF parser; other targets start from fuzz/seeds/<name>/ if present
    if [ "$name" = fuzz_gguf ]; then python3 fuzz/make_seeds.py "$corpus" || exit 1
    elif [ -d "fuzz/seeds/$name" ]; then cp -n fuzz/seeds/"$name"/* "$corpus"/ 2>/dev/null; fi
    # the unigram reader also starts from a model with nmt_nfkc's charsmap (240 KB: trained, not committed)
    if [ "$name" = fuzz_spm_model ] && command -v spm_train >/dev/null && [ ! -f "$corpus/nfkc.model" ]; then
        head -c 400 tests/data/tokenizer/samples.txt | tail -c 300 > "$corpus.txt"
        spm_train --input="$corpus.txt" --model_prefix="$corpus/nfkc" --model_type=unigram --vocab_size=330 \
            --hard_vocab_limit=false --byte_fallback=true --minloglevel=2 >/dev/null 2>&1; rm -f "$corpus.txt" "$corpus/nfkc.vocab"
    fi
    echo "fuzz: $name for ${secs}s"
    if ! "$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -artifact_prefix=build/fuzz/ \
            -print_final_stats=1 "$corpus" >"build/fuzz/$name.log" 2>&1; then
        echo "fuzz: $name FAILED (see build/fuzz/$name.log)"
        tail -n 30 "build/fuzz/$name.log"
        status=1
        failed="$failed $name"
    else
        grep -E "stat::number_of_executed_units|Done" "build/fuzz/$name.log" | tail -n 2 | sed 's/^/  /'
    fi
done
# repeated at the end, where a truncated log (CI shows its tail) still has it
for name in $failed; do
    echo "fuzz: FAILED $name: $(grep -m1 -E 'runtime error|ERROR: (Address|Leak|libFuzzer)|SUMMARY' build/fuzz/$name.log)"
    echo "fuzz:   reproducer: $(grep -o 'Test unit written to .*' build/fuzz/$name.log | head -1)"
done
exit $status
