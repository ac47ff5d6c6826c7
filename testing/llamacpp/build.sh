#!/usr/bin/env bash
# Build llama.cpp's llama-server (the real engine of the e2e's llamacpp scenarios) from the llama.cpp
# sources vendored in the llama-cpp-python sdist on PyPI: no Docker, no GitHub, only the package registry.
#
#   testing/llamacpp/build.sh                 build what is missing, print the binary's path
#   testing/llamacpp/build.sh --print-path    only print the binary's path (builds nothing)
#
# Cached outside the repo, keyed by version, under $HEARTH_TESTBED_CACHE (default ~/.cache/hearth-testbed):
#   store/llama-server-<version>        the built binary (never overwritten; a warm run takes a second)
#   work/llamacpp-<version>/            the unpacked sdist and its CMake build tree (kept for incremental
#                                       rebuilds; safe to delete)
# Only the binary's path is printed on stdout: LLAMA_SERVER=$(testing/llamacpp/build.sh)
#
# Flags (llama.cpp docs/build.md): a static ggml/llama (BUILD_SHARED_LIBS=OFF) so the binary needs only
# the C/C++ runtime libraries the image builder copies from the host; no libcurl (LLAMA_CURL=OFF: models
# come from the cache volume, never downloaded by the engine); GGML_NATIVE=OFF so the binary does not
# require the build machine's exact CPU features; no OpenMP (ggml's own thread pool), one library less.
# The server target alone takes ~12 min on 2 busy cores.
#
# Environment: LLAMA_CPP_PYTHON_VERSION (default below), HEARTH_TESTBED_CACHE, PYTHON (for pip download),
# JOBS (default: the number of cores).
set -euo pipefail

VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
CACHE_ROOT="${HEARTH_TESTBED_CACHE:-$HOME/.cache/hearth-testbed}"
STORE="$CACHE_ROOT/store"
BINARY="$STORE/llama-server-$VERSION"
WORK="$CACHE_ROOT/work/llamacpp-$VERSION"
PYTHON="${PYTHON:-python3}"
JOBS="${JOBS:-$(nproc)}"

log() { printf '%s\n' "$*" >&2; }
die() { log "llama-server build: $*"; exit 1; }

case "${1:-}" in
  "") ;;
  --print-path) printf '%s\n' "$BINARY"; exit 0 ;;
  *) die "unknown argument '$1' (--print-path, or nothing)" ;;
esac
if [[ -x "$BINARY" ]]; then
  printf '%s\n' "$BINARY"
  exit 0
fi
for tool in cmake c++ "$PYTHON"; do
  command -v "$tool" >/dev/null || die "needs $tool (Debian: apt-get install -y cmake g++)"
done

started=$(date +%s)
mkdir -p "$STORE" "$WORK"
sdist=$(find "$WORK" -maxdepth 1 -name "llama_cpp_python-$VERSION.tar.gz" -print -quit)
if [[ -z "$sdist" ]]; then
  log "llama-server build: downloading the llama-cpp-python $VERSION sdist"
  "$PYTHON" -m pip download --quiet --no-deps --no-binary :all: --dest "$WORK" \
    "llama-cpp-python==$VERSION" >&2 || die "pip download llama-cpp-python==$VERSION failed"
  sdist="$WORK/llama_cpp_python-$VERSION.tar.gz"
fi
source_dir="$WORK/llama_cpp_python-$VERSION/vendor/llama.cpp"
if [[ ! -f "$source_dir/CMakeLists.txt" ]]; then
  tar -xzf "$sdist" -C "$WORK"
fi
[[ -f "$source_dir/CMakeLists.txt" ]] || die "no vendor/llama.cpp in $sdist"

cmake -S "$source_dir" -B "$WORK/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF -DGGML_NATIVE=OFF -DGGML_OPENMP=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON >&2
cmake --build "$WORK/build" --target llama-server -j "$JOBS" >&2
built=$(find "$WORK/build" -type f -name llama-server -perm -u+x -print -quit)
[[ -n "$built" ]] || die "the build produced no llama-server"
# Into the store under a temporary name first: an interrupted copy never looks like a finished binary.
cp "$built" "$BINARY.partial"
strip "$BINARY.partial" 2>/dev/null || true
mv "$BINARY.partial" "$BINARY"
log "llama-server build: $BINARY built in $(($(date +%s) - started))s"
printf '%s\n' "$BINARY"
