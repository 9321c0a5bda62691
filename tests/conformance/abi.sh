#!/bin/bash
# libherd.so's ABI: it exports exactly the functions include/herd.h declares (the library is compiled
# with -fvisibility=hidden; herd.h's pragma makes its declarations default), and that set equals the
# committed list tests/data/abi/libherd.symbols — so a symbol that appears or disappears fails here
# until the list is rewritten on purpose (make abi-update) and VERSION bumped. The soname carries
# VERSION's MAJOR.
. tests/lib.sh
LIB=build/libherd.so
LIST=tests/data/abi/libherd.symbols
VERSION=$(cat VERSION)
[ -f "$LIB" ] || die "$LIB is missing (run make first)"
soname=$(objdump -p "$LIB" | awk '$1 == "SONAME" { print $2 }')
[ "$soname" = "libherd.so.${VERSION%%.*}" ] || die "the soname is '$soname', not libherd.so.${VERSION%%.*} (VERSION $VERSION)"

tools/abi_symbols.sh "$LIB" >"$TMP/exported" || die "nm -D failed on $LIB"
# the functions herd.h declares: identifiers herd_* followed by '(' once comments are gone
${CC:-cc} -E -P -x c include/herd.h | grep -o -E '\bherd_[A-Za-z0-9_]*[[:space:]]*\(' | sed 's/[[:space:]]*($//' |
    LC_ALL=C sort -u >"$TMP/declared"
echo "$(wc -l <"$TMP/exported") symbols exported, $(wc -l <"$TMP/declared") functions declared in include/herd.h"
[ -s "$TMP/declared" ] || die "found no function declarations in include/herd.h"

fail=0
extra=$(LC_ALL=C comm -23 "$TMP/exported" "$TMP/declared")
missing=$(LC_ALL=C comm -13 "$TMP/exported" "$TMP/declared")
if [ -n "$extra" ]; then
    echo "FAIL: $LIB exports symbols include/herd.h does not declare (internal code compiled without"
    echo "      -fvisibility=hidden, or an explicit visibility attribute?):"
    sed 's/^/        /' <<<"$extra"
    fail=1
fi
if [ -n "$missing" ]; then
    echo "FAIL: include/herd.h declares functions $LIB does not export: not defined in the library,"
    echo "      declared below herd.h's closing '#pragma GCC visibility pop', or defined in a file that does"
    echo "      not include herd.h (so it kept -fvisibility=hidden):"
    sed 's/^/        /' <<<"$missing"
    fail=1
fi
if ! diff -u "$LIST" "$TMP/exported" >"$TMP/diff"; then
    echo "FAIL: libherd's exported symbols differ from $LIST (+ new, - gone):"
    tail -n +3 "$TMP/diff" | grep '^[-+]' | sed 's/^/        /'
    echo "      If the API change is intended: run 'make abi-update', commit $LIST, and bump VERSION"
    echo "      (0.x: MINOR for any change; from 1.0: MINOR for additions, MAJOR for removals or changed"
    echo "      signatures, which also changes the soname)."
    fail=1
fi
[ $fail -eq 0 ] || exit 1
echo "ABI: the $(wc -l <"$LIST") symbols of $LIST, each declared in include/herd.h"
