#!/usr/bin/env bash
# Build llama.cpp's llama-server (testing/llamacpp/build.sh, cached) and pack it into the OCI image
# hearth.dev/llama-server:<version> (dist/images/llama-server.tar) without Docker: the binary and the host
# libraries it links, no shell (build_oci_image.py --plain), entrypoint llama-server as in the upstream
# ghcr.io/ggml-org/llama.cpp:server image, so an InferenceRuntime's args are pure llama-server options.
# Prints the image reference on stdout.
set -euo pipefail
cd "$(dirname "$0")/../.."
version=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
ref=${LLAMA_IMAGE_REF:-hearth.dev/llama-server:$version}
out=${LLAMA_IMAGE_OUT:-dist/images/llama-server.tar}
binary=$(bash testing/llamacpp/build.sh)
python3 testing/image/build_oci_image.py --plain \
    --binary "$binary" \
    --binary-path /usr/local/bin/llama-server \
    --ref "$ref" \
    --out "$out" \
    --entrypoint '["/usr/local/bin/llama-server"]' \
    --port 8080/tcp \
    --label org.opencontainers.image.title=llama-server \
    --label "org.opencontainers.image.description=llama.cpp's llama-server from llama-cpp-python $version's sources" >&2
printf '%s\n' "$ref"
