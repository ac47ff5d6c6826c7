#!/usr/bin/env bash
# The main job, on this machine with no cluster: build the single `hearth` executable and run its CPU fake
# of vLLM on 127.0.0.1:8000 (Ctrl-C stops it). Talk to it with curl or any OpenAI client (README).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-binary.sh
echo "run: serving a fake model 'demo' on http://127.0.0.1:8000/v1 (healthy after a 5s 'load'; Ctrl-C stops)"
exec dist/hearth stub --listen 127.0.0.1:8000 --startup-delay 5s --token-count 16 --token-delay 100ms \
    --served-model-name demo "$@"
