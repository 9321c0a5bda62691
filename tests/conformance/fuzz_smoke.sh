#!/bin/bash
# Builds the libFuzzer targets (make fuzz, clang + ASan/UBSan) and runs each briefly from its seed
# corpus: any crash, leak, sanitizer report or timeout fails. FUZZ_SECONDS sets the time per target.
source tests/lib.sh
command -v clang >/dev/null || { [ "${CI:-}" = "true" ] && die "clang is missing"; skip "clang is not installed"; }
need_ref
make --no-print-directory fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-15}" || die "a fuzz target failed"
