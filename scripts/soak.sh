#!/usr/bin/env bash
# The soak (issue 29) on a fresh single-node test bed on this machine, in one command: bring the cluster up,
# build and load the hearth, stub and llama-server images (as scripts/e2e.sh does), install Hearth in builtin
# mode (2 operators, 2 gateway replicas, NetworkPolicies, secure metrics), run `hearth e2e --soak DURATION`
# and tear the cluster down again. Not part of CI's default run.
#
#   scripts/soak.sh DURATION [SEED]      e.g. scripts/soak.sh 60m; SEED repeats an earlier run's traffic
#
# The report is printed (a line each minute, the summary at the end) and written as JSON to
# dist/soak-report.json. Exits non-zero if a request was lost or the gateway's or operator's RSS grew over
# 10 % (testing/README.md, "The soak"). On a bed that is already up, run the same `hearth e2e --soak` line
# against it instead (the test bed's lock script does: E2E_FLAGS="--soak 60m" bedrun.sh WORKTREE builtin).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: scripts/soak.sh DURATION [SEED]   (e.g. scripts/soak.sh 60m)" >&2
    exit 2
fi
duration=$1
seed_flags=()
[ $# -lt 2 ] || seed_flags=(--soak-seed "$2")
if [ "$(id -u)" -ne 0 ]; then
    echo "soak: the test bed needs root (containerd, kubelet, iptables)" >&2
    exit 1
fi
[ -x dist/hearth ] || bash scripts/build-binary.sh
version=$(dist/hearth --version | awk '{print $2}')
cluster=testing/cluster/cluster.sh
run_dir=${HEARTH_CLUSTER_DIR:-/var/tmp/hearth-cluster}
kubeconfig=$run_dir/admin.kubeconfig

on_exit() {
    status=$?
    if [ "$status" -ne 0 ]; then
        bash "$cluster" kubectl -n hearth-system logs deploy/hearth-operator --tail=100 >&2 || true
    fi
    bash "$cluster" down >/dev/null 2>&1 || true
    echo "soak: finished (exit $status)"
    exit "$status"
}
trap on_exit EXIT

bash testing/llamacpp/build.sh >/dev/null
bash "$cluster" up
# shellcheck source=testing/lib/test-images.sh
source testing/lib/test-images.sh
load_test_images "$version"
dist/hearth install --kubeconfig "$kubeconfig" --image "hearth.dev/hearth:$version" --replicas 2 \
    --network-policies --metrics-port 8443 --scaler-mode builtin --gateway-replicas 2 --wait 180
dist/hearth e2e --kubeconfig "$kubeconfig" --timeout 180 --soak "$duration" "${seed_flags[@]}" \
    --soak-report dist/soak-report.json
