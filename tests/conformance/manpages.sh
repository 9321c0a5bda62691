#!/bin/bash
# The man pages: one per command of `herd --help` plus herd(1) and libherd(3); every page renders with
# man -l (and groff -ww) without a warning; and each page's verbatim block is exactly what the program
# prints for --help, since both come from tools/herd/help/CMD.txt (tools/gen_help.sh).
. tests/lib.sh
command -v man >/dev/null || die "man is missing (scripts/setup.sh installs man-db)"
command -v groff >/dev/null || die "groff is missing (scripts/setup.sh installs groff-base)"
make -s --no-print-directory man || die "make man failed"
M=build/man

# the commands herd --help lists, and the help files, and main.c's table agree
listed=$("$HERD" --help | sed -n 's/^  herd \([a-z0-9_-]*\) .*/\1/p')
[ -n "$listed" ] || die "herd --help lists no command"
[ "$listed" = "$(tools/gen_help.sh commands)" ] || die "herd --help lists '$listed', main.c's table $(tools/gen_help.sh commands)"
pages=$(cd $M && ls herd-*.1 | sed 's/^herd-\(.*\)\.1$/\1/' | sort)
[ "$pages" = "$(sort <<<"$listed")" ] || die "man pages for '$pages' but commands '$listed'"

# the .nf ... .fi block that follows the line FIRST (the DESCRIPTION's verbatim text)
block() { awk -v first="$2" 'on && $0 == ".fi" { exit } on { print } $0 == first { getline; if ($0 == ".nf") on = 1 }' "$1"; }

n=0
for c in $listed; do
    page=$M/herd-$c.1
    "$HERD" "$c" --help >"$TMP/help" || die "herd $c --help failed"
    sed '1,/^$/d' "tools/herd/help/$c.txt" | cmp -s - "$TMP/help" || die "herd $c --help is not the text of tools/herd/help/$c.txt"
    tools/gen_help.sh roff <"$TMP/help" >"$TMP/want"
    block "$page" .PP >"$TMP/got"
    [ -s "$TMP/got" ] || die "$page has no verbatim help block"
    cmp -s "$TMP/want" "$TMP/got" || { diff "$TMP/want" "$TMP/got" | head; die "$page's text is not herd $c --help"; }
    n=$((n + 1))
done
# herd(1): herd --help, with the CPU kernels the machine picked written generally
"$HERD" --help | sed 's/CPU kernels: .*\.$/CPU kernels: X./' | tools/gen_help.sh roff >"$TMP/want"
block $M/herd.1 .PP | sed 's/CPU kernels: .*\.$/CPU kernels: X./' >"$TMP/got"
cmp -s "$TMP/want" "$TMP/got" || { diff "$TMP/want" "$TMP/got" | head; die "herd(1)'s text is not herd --help"; }
grep -q 'herd_version' $M/libherd.3 || die "libherd(3) does not show include/herd.h"
echo "$n command pages and herd(1) carry exactly their --help text"

# every page renders, without a warning, in a UTF-8 and in the C locale
for p in $M/*.[13]; do
    for loc in C.UTF-8 C; do
        w=$(LC_ALL=$loc MANWIDTH=80 man -l --warnings=w "$p" 2>&1 >"$TMP/out") || die "man -l $p failed: $w"
        [ -z "$w" ] || die "man -l $p ($loc) warns: $w"
        [ -s "$TMP/out" ] || die "man -l $p rendered nothing"
    done
    w=$(groff -k -ww -man -Tutf8 -z "$p" 2>&1)
    [ -z "$w" ] || die "groff -ww $p warns: $w"
    head -n 1 "$TMP/out" | grep -q "^$(basename "${p%.*}" | tr a-z A-Z)(" || die "man -l $p: no header line"
done
echo "$(ls $M/*.[13] | wc -l) pages render without warnings"
