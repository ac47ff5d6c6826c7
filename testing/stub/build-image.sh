#!/usr/bin/env bash
# Build the vLLM stub's image, hearth.dev/vllm-stub:e2e, as an OCI image-layout tarball
# (dist/images/vllm-stub.tar) from the frozen dist/hearth, without Docker. See testing/stub/README.md.
# Needs Debian's busybox-static (apt-get install -y --no-install-recommends busybox-static).
set -euo pipefail
cd "$(dirname "$0")/../.."
ref=${STUB_IMAGE_REF:-hearth.dev/vllm-stub:e2e}
out=${STUB_IMAGE_OUT:-dist/images/vllm-stub.tar}
if [[ ! -x dist/hearth ]]; then
    bash scripts/build-binary.sh
fi
# The entrypoint ends in `stub`, so an InferenceRuntime profile's args are pure vLLM args
# ([vllm serve] MODEL --served-model-name NAME --port 8000 ...), exactly as for a real vLLM image.
# `python3` is the hearth binary under that name (hearth/stub/pyshim.py), so a prewarm Job's
# `python3 -c "from huggingface_hub import snapshot_download; ..."` downloads for real, from HF_ENDPOINT: the
# Service `hearth-hub` of the pod's own namespace (`hearth stub-hub`, which hearth e2e runs).
python3 testing/image/build_oci_image.py \
    --binary dist/hearth \
    --ref "$ref" \
    --out "$out" \
    --entrypoint '["/usr/local/bin/hearth","stub"]' \
    --port 8000/tcp \
    --symlink /usr/local/bin/python3=hearth \
    --env HF_ENDPOINT=http://hearth-hub \
    --label org.opencontainers.image.title=vllm-stub \
    --label org.opencontainers.image.description="Hearth's CPU fake of a vLLM OpenAI-compatible server"
