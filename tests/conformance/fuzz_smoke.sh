#!/bin/bash
# Builds the libFuzzer targets (make fuzz, clang + ASan/UBSan) and runs each briefly from its seed
# corpus: any crash, leak, sanitizer report or timeout fails. FUZZ_SECONDS sets the time per target
# (8 s here, within make test's budget; `make fuzz FUZZ_SECONDS=600` for a real run).
source tests/lib.sh
command -v clang >/dev/null || { [ "${CI:-}" = "true" ] && die "clang is missing"; skip "clang is not installed"; }
need_ref
make --no-print-directory fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-8}" || die "a fuzz target failed"
