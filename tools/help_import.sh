#!/bin/sh
# Writes tools/herd/help/*.txt from what a herd binary prints: `OLD --help` (the list line of each
# command, the general text) and `OLD CMD --help`. For merging a branch whose commands still print
# their help with printf: build that branch's herd, run this with it on the merged tree, then replace
# the printf blocks by `return cli_help("CMD");` (the texts are now in the files, byte for byte).
# Existing summary: lines are kept; a new command's summary is its list line's description (edit it).
#   tools/help_import.sh path/to/old/herd
set -eu
[ $# -eq 1 ] && [ -x "$1" ] || { echo "usage: tools/help_import.sh OLD_HERD_BINARY" >&2; exit 2; }
OLD=$1
HELP=$(cd "$(dirname "$0")/.." && pwd)/tools/herd/help
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$OLD" --help >"$TMP/main"

# the command lines: "  herd NAME<spaces>LIST"
sed -n 's/^  herd \([a-z0-9_-]*\) *\(.*\)$/\1\t\2/p' "$TMP/main" >"$TMP/list"
tab=$(printf '\t')
while IFS=$tab read -r c list; do
    "$OLD" "$c" --help >"$TMP/body" || { echo "help_import: $OLD $c --help failed" >&2; exit 1; }
    f=$HELP/$c.txt
    summary=$(sed -n '/^$/q; s/^summary: //p' "$f" 2>/dev/null || true)
    [ -n "$summary" ] || summary=$(printf '%s\n' "$list" | sed 's/.*[^ ]   *\([^ ].*\)$/\1/')
    { printf 'summary: %s\nlist: %s\n\n' "$summary" "$list"; cat "$TMP/body"; } >"$f"
    echo "wrote $f"
done <"$TMP/list"

# herd.txt: the general text with the command lines as @COMMANDS@ and the kernels as @CPU@
f=$HELP/herd.txt
summary=$(sed -n '/^$/q; s/^summary: //p' "$f" 2>/dev/null || true)
{
    printf 'summary: %s\n\n' "${summary:-the Llama 3.1 system in C}"
    awk 'BEGIN { put = 0 }
         /^  herd [a-z0-9_-]+ / { if (!put) print "@COMMANDS@"; put = 1; next }
         { sub(/CPU kernels: [a-z0-9_]+\./, "CPU kernels: @CPU@."); print }
         /^usage: herd COMMAND/ { getline nxt; if (nxt !~ /--version/) print "       herd --version"; print nxt }' "$TMP/main"
} >"$f"
echo "wrote $f"
