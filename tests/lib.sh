# Shared helpers for tests/conformance/*.sh (sourced). Tests run from the repository root.
# Exit codes: 0 pass, 77 skip (with a reason on the last line), anything else fail.
set -u
HERD=${HERD:-$PWD/build/herd}
REF=$PWD/build/ref
VOCAB_BPE=$REF/llama.cpp/models/ggml-vocab-llama-bpe.gguf
VOCAB_SPM=$REF/llama.cpp/models/ggml-vocab-llama-spm.gguf
VOCAB31=$REF/llama31-vocab.gguf   # Llama 3.1 special tokens (<|python_tag|>, <|eom_id|>) + chat template
STORIES=${STORIES:-$PWD/../shared/fixtures/stories260K/stories260K.gguf}

skip() { echo "skipped: $*"; exit 77; }
die() { echo "FAIL: $*"; exit 1; }

# The llama.cpp references must be there; outside CI their absence is a skip, in CI a failure.
need_ref() {
    tests/ref/setup.sh
    local rc=$?
    if [ $rc -ne 0 ] || [ ! -f "$VOCAB_BPE" ]; then
        [ "${CI:-}" = "true" ] && die "the llama.cpp references (tests/ref/setup.sh) are not available"
        skip "the llama.cpp references (npm node-llama-cpp) could not be installed"
    fi
}

# A scratch folder removed when the test exits.
TMP=$(mktemp -d "${TMPDIR:-/tmp}/herd-test.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# llama.cpp's native tools, built once from node-llama-cpp's source bundle (tests/ref/build_llama_tools.sh
# TARGET...; none: llama-perplexity and llama-quantize): sets BIN to their folder. Skips when they cannot be
# built here (no bundle, no cmake), fails when the build itself fails.
need_llama_tools() {
    local rc=0
    BIN=$(tests/ref/build_llama_tools.sh "$@") || rc=$?
    [ $rc = 77 ] && skip "llama.cpp tools cannot be built here"
    [ $rc = 0 ] || die "building llama.cpp's ${*:-llama-perplexity llama-quantize} failed (build/ref/llama-tools/*.log)"
}

# The logits check of a quantized file M (llama.cpp's) on PROMPT ids over N_VOCAB columns: herd's logits
# within TOL (max |delta|) of llama.cpp's on the same file, and herd's mean |logit - F32 model's logit| (F32
# logits in $TMP/f32.bin) no more than 1.1x llama.cpp's own (tests/ref/quant_error.py). Prints what failed;
# returns the number of failed checks. Usage: check_quant_logits M PROMPT N_VOCAB TOL LABEL
check_quant_logits() {
    local m=$1 prompt=$2 nv=$3 tol=$4 label=$5 bad=0
    node tests/ref/logits.mjs "$m" "$prompt" "$TMP/ref.bin" || { echo "FAIL llama.cpp could not run $label"; return 1; }
    "$HERD" logits -m "$m" --prompt-ids "$prompt" -o "$TMP/herd.bin" --kv-type f32 ||
        { echo "FAIL herd could not run $label"; return 1; }
    printf '   logits vs llama.cpp: '
    node tests/ref/compare_logits.mjs "$TMP/ref.bin" "$TMP/herd.bin" "$nv" "$tol" || bad=$((bad + 1))
    /usr/bin/python3 tests/ref/quant_error.py "$TMP/f32.bin" "$TMP/ref.bin" "$TMP/herd.bin" || bad=$((bad + 1))
    return $bad
}
