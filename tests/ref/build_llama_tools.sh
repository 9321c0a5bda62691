#!/usr/bin/env bash
# Build llama.cpp's native tools (llama-perplexity, llama-quantize) from the source bundle that
# node-llama-cpp ships, once, into build/ref/llama-tools/bin. CPU only. Guarded by flock so two
# worktrees sharing build/ref never build at the same time; later callers reuse the binaries.
# Usage: tests/ref/build_llama_tools.sh [TARGET...]  -> prints the bin dir on success.
#   With no TARGET: llama-perplexity llama-quantize; others (llama-imatrix, llama-embedding, ...) are asked
#   for by name. Example programs (llama-speculative, llama-lookup, llama-finetune) switch LLAMA_BUILD_EXAMPLES on,
#   llama-server LLAMA_BUILD_SERVER (CPU only, no web UI: nothing is downloaded; no curl/OpenSSL); an
#   existing build is reconfigured and built incrementally.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
REF="$ROOT/build/ref"
BUNDLE="$REF/node_modules/node-llama-cpp/llama/gitRelease.bundle"
OUTD="$REF/llama-tools"
TARGETS="${*:-llama-perplexity llama-quantize}"
EXAMPLES=OFF SERVER=OFF
for t in $TARGETS; do case $t in llama-speculative*|llama-lookup*|llama-finetune) EXAMPLES=ON ;; llama-server) SERVER=ON ;; esac; done
[ -f "$BUNDLE" ] || { echo "no llama.cpp bundle at $BUNDLE (run tests/ref/setup.sh)" >&2; exit 77; }
mkdir -p "$OUTD"
exec 9>"$OUTD/.lock"
flock 9
# binaries built before the AMX work-around below are rebuilt (incrementally: one file and the links)
grep -qs 'herd: gcc 12' "$OUTD/src/ggml/src/ggml-cpu/amx/mmq.cpp" || rm -f "$OUTD"/bin/*
have_all() { for t in $TARGETS; do [ -x "$OUTD/bin/$t" ] || return 1; done; }
if ! have_all; then
    command -v cmake >/dev/null || { echo "cmake missing" >&2; exit 77; }
    # build/ref is shared through symlinks: an existing build is reused through the path its cache was
    # made with (CMake refuses another) when that still leads to the same folder; else it starts afresh
    SRC="$OUTD/src" BLD="$OUTD/build"
    if [ -f "$BLD/CMakeCache.txt" ]; then
        cdir=$(sed -n 's/^CMAKE_CACHEFILE_DIR:INTERNAL=//p' "$BLD/CMakeCache.txt")
        hdir=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$BLD/CMakeCache.txt")
        if [ -d "$cdir" ] && [ -d "$hdir" ] && [ "$(cd -P "$cdir" && pwd)" = "$(cd -P "$BLD" && pwd)" ]; then
            SRC=$hdir BLD=$cdir
        else
            rm -rf "$OUTD/build"
        fi
    fi
    if [ ! -f "$BLD/CMakeCache.txt" ]; then
        rm -rf "$OUTD/src" "$OUTD/build"
        git clone -q "$BUNDLE" "$OUTD/src" 2>/dev/null
    fi
    # gcc 12 takes _tile_loadconfig to read only 8 bytes and drops the stores that fill ggml's AMX tile
    # configuration as dead: on a CPU with AMX-INT8 every tool then faults at ldtilecfg (llama.cpp #20824).
    # Dead-store elimination off in that one file (a pragma in this build's copy of the source, never in the
    # bundle) makes llama.cpp's AMX path work as it does when built by a newer compiler.
    MMQ=$SRC/ggml/src/ggml-cpu/amx/mmq.cpp
    if [ -f "$MMQ" ] && ! grep -q 'herd: gcc 12' "$MMQ"; then
        sed -i '1i #if defined(__GNUC__) \&\& !defined(__clang__) \&\& __GNUC__ < 13 /* herd: gcc 12 dead-store bug, see build_llama_tools.sh */\n#pragma GCC optimize("no-tree-dse", "no-dse")\n#endif' "$MMQ"
    fi
    cmake -S "$SRC" -B "$BLD" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
        -DBUILD_SHARED_LIBS=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=$EXAMPLES \
        -DLLAMA_BUILD_SERVER=$SERVER -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_APP=OFF -DGGML_CUDA=OFF -DGGML_VULKAN=OFF -DGGML_METAL=OFF \
        > "$OUTD/cmake.log" 2>&1
    cmake --build "$BLD" -j2 --target $TARGETS > "$OUTD/build.log" 2>&1
    mkdir -p "$OUTD/bin"
    # --remove-destination: a binary another test is running cannot be overwritten (text file busy)
    for t in $TARGETS; do cp --remove-destination "$BLD/bin/$t" "$OUTD/bin/$t"; done
fi
echo "$OUTD/bin"
