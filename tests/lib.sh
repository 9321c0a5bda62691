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
