#!/usr/bin/env bash
# The project's test command (README, .ci/run): set everything up, build the frozen binary, run every test.
# Extra arguments go to pytest, e.g. `scripts/test.sh -k stub` or `scripts/test.sh -m "not frozen"`.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
bash scripts/system-deps.sh
bash scripts/bootstrap.sh
bash scripts/build-binary.sh
# Version-matched Kubernetes components from the Go module proxy, cached outside the repo (~9 min cold).
bash testing/cluster/build-components.sh kube-apiserver kube-controller-manager kubectl >/dev/null
# Helm 4 and Helm 3 for the chart's tests (tests/chart), from the Go module proxy, cached (~6 min cold).
bash testing/helm/build.sh >/dev/null
echo "test: setup done in $(( $(date +%s) - started ))s; running pytest"
.venv/bin/pytest -ra "$@"
# The full run (no arguments) also runs the gateway's tests against the modules the frozen binary carries
# compiled by mypyc (hearth/cmd/compiled.py), so what ships is what was tested.
if [ $# -eq 0 ]; then
    .venv/bin/python scripts/compile.py --test tests/gateway -q
fi
