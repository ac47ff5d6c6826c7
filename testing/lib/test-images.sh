# shellcheck shell=bash
# The images a test-bed run loads into the running cluster, shared by scripts/e2e.sh and scripts/soak.sh.
# Sourced, not run; call from the repo root, with the cluster up and dist/hearth built.

# load_test_images VERSION: the hearth image (from dist/hearth, as hearth.dev/hearth:VERSION) and the vLLM
# stub's; the real engine (issue 25): llama-server built from source (cached; .ci/run starts that build
# early) in a shell-less image, and a tiny random-weight GGUF for it, written with the project's Python
# (gguf, numpy). Exports HEARTH_E2E_ENGINE_IMAGE and HEARTH_E2E_GGUF for `hearth e2e`.
load_test_images() {
    local version=$1 cluster=testing/cluster/cluster.sh
    python3 testing/image/build_oci_image.py --binary dist/hearth --ref "hearth.dev/hearth:$version" \
        --out dist/images/hearth.tar
    bash testing/stub/build-image.sh
    bash "$cluster" load-image dist/images/hearth.tar
    bash "$cluster" load-image dist/images/vllm-stub.tar
    HEARTH_E2E_ENGINE_IMAGE=$(bash testing/llamacpp/build-image.sh)
    bash "$cluster" load-image dist/images/llama-server.tar
    HEARTH_E2E_GGUF="$PWD/dist/models/e2e.gguf"
    .venv/bin/python testing/llamacpp/make_gguf.py "$HEARTH_E2E_GGUF"
    export HEARTH_E2E_ENGINE_IMAGE HEARTH_E2E_GGUF
}
