#!/bin/bash
# Runs every test and ends with the summary line "N passed, N failed, N skipped".
# A test is a program: tests/unit/test_*.c (built normally and under ASan/UBSan) and
# tests/conformance/*.sh. Exit status 0 = pass, 77 = skipped (it says why), anything else = fail.
# TESTS="pattern" runs only tests whose name contains the pattern. `tests/run.sh e2e` runs the
# end-to-end tests instead (tests/e2e/*.sh: the load test and the browser test).
cd "$(dirname "$0")/.." || exit 1
export HERD_ROOT=$PWD
passed=0; failed=0; skipped=0; failures=()
mkdir -p build/test-logs

run_one() {
    local name=$1; shift
    [ -n "${TESTS:-}" ] && [[ "$name" != *"$TESTS"* ]] && return
    local log="build/test-logs/${name//\//_}.log" t0=$SECONDS rc
    "$@" >"$log" 2>&1; rc=$?
    local dt=$((SECONDS - t0))
    if [ $rc -eq 0 ]; then
        passed=$((passed + 1)); printf 'PASS  %-40s %4ds\n' "$name" "$dt"
    elif [ $rc -eq 77 ]; then
        skipped=$((skipped + 1)); printf 'SKIP  %-40s %s\n' "$name" "$(tail -n 1 "$log")"
    else
        failed=$((failed + 1)); failures+=("$name")
        printf 'FAIL  %-40s %4ds (exit %d)\n' "$name" "$dt" "$rc"
        tail -n 25 "$log" | sed 's/^/      | /'
    fi
}

# the llama.cpp references (npm) that conformance tests compare against; installed once into build/ref
run_one "ref/setup" tests/ref/setup.sh

if [ "${1:-}" = e2e ]; then
    for t in tests/e2e/*.sh; do
        [ -f "$t" ] && run_one "e2e/$(basename "$t" .sh)" bash "$t"
    done
    [ ${#failures[@]} -gt 0 ] && echo "failed: ${failures[*]}"
    echo "$passed passed, $failed failed, $skipped skipped"
    [ $failed -eq 0 ]
    exit
fi

for t in build/tests/test_*; do
    [ -x "$t" ] && run_one "unit/$(basename "$t")" "$t"
done
for t in build/asan/tests/test_*; do
    [ -x "$t" ] && run_one "asan/$(basename "$t")" env ASAN_OPTIONS=detect_leaks=1 "$t"
done
for t in tests/conformance/*.sh; do
    [ -f "$t" ] && run_one "conformance/$(basename "$t" .sh)" bash "$t"
done

[ ${#failures[@]} -gt 0 ] && echo "failed: ${failures[*]}"
echo "$passed passed, $failed failed, $skipped skipped"
[ $failed -eq 0 ]
