#!/bin/sh
# The symbols a shared library exports (defined, in its dynamic symbol table), sorted, one per line:
# the ABI list that tests/conformance/abi.sh checks and `make abi-update` writes.
set -eu
[ $# -eq 1 ] || { echo "usage: tools/abi_symbols.sh LIB.so" >&2; exit 2; }
nm -D --defined-only "$1" | awk '{ print $NF }' | sed 's/@.*//' | LC_ALL=C sort -u
