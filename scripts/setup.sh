#!/bin/sh
# Installs what herd needs on Debian 12 when it is missing (idempotent, quick when all is there).
# Build: gcc, make, libjansson-dev (JSON), libmicrohttpd-dev (HTTP server), libcurl (HTTP client). Tests: clang + libclang-rt (fuzz, sanitizers), nodejs + npm
# (llama.cpp reference via node-llama-cpp), git (reads llama.cpp's source bundle), curl, man-db + groff-base
# (the man pages render in tests/conformance/manpages.sh), cmake + g++ (llama.cpp's native tools, built once from the
# bundle by tests/ref/build_llama_tools.sh for the perplexity comparison), openmpi-bin + libopenmpi-dev (build/herd-mpi,
# tensor parallelism: tests/conformance/mpi_tp.sh).
set -e
pkgs="gcc make libc6-dev libjansson-dev libmicrohttpd-dev libcurl4-openssl-dev libsqlite3-dev pkg-config python3 clang libclang-rt-14-dev git ca-certificates curl man-db groff-base cmake g++ openmpi-bin libopenmpi-dev"
[ "${1:-}" = e2e ] && pkgs="chromium curl"   # make test-e2e: the browser test
command -v node >/dev/null 2>&1 || pkgs="$pkgs nodejs"
command -v npm >/dev/null 2>&1 || pkgs="$pkgs npm"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "setup: installing:$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || true
$SUDO apt-get install -y -qq $missing >/dev/null
