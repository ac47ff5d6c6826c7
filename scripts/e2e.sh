#!/usr/bin/env bash
# The whole loop on a real single-node cluster on this machine (root; no Docker needed):
# bring the test bed up, build and import the hearth and stub images, `hearth install`, `hearth e2e`,
# and tear the cluster down again. On failure it prints the operator's and the components' logs.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
    echo "e2e: the test bed needs root (containerd, kubelet, iptables)" >&2
    exit 1
fi
[ -x dist/hearth ] || bash scripts/build-binary.sh
version=$(dist/hearth --version | awk '{print $2}')
cluster=testing/cluster/cluster.sh
kubeconfig=${HEARTH_CLUSTER_DIR:-/var/tmp/hearth-cluster}/admin.kubeconfig
started=$(date +%s)

on_exit() {
    status=$?
    if [ "$status" -ne 0 ]; then
        echo "e2e: FAILED; diagnostics follow" >&2
        bash "$cluster" status >&2 || true
        bash "$cluster" kubectl -n hearth-system logs deploy/hearth-operator --tail=200 >&2 || true
        for log in "${HEARTH_CLUSTER_DIR:-/var/tmp/hearth-cluster}"/logs/*.log; do
            [ -f "$log" ] && { echo "==> $log" >&2; tail -n 40 "$log" >&2; }
        done
    fi
    bash "$cluster" down >/dev/null 2>&1 || true
    echo "e2e: finished in $(( $(date +%s) - started ))s (exit $status)"
    exit "$status"
}
trap on_exit EXIT

bash "$cluster" up
python3 testing/image/build_oci_image.py --binary dist/hearth --ref "hearth.dev/hearth:$version" \
    --out dist/images/hearth.tar
bash testing/stub/build-image.sh
bash "$cluster" load-image dist/images/hearth.tar
bash "$cluster" load-image dist/images/vllm-stub.tar
# Two operators (one leads) and two gateways per LLMService, so the HA scenarios run (and may not skip);
# NetworkPolicies on, so the operator's RBAC and their lifecycle are exercised (this CNI does not enforce
# them, and nothing here needs it to); secure operator metrics on, for the metrics scenario.
dist/hearth install --kubeconfig "$kubeconfig" --image "hearth.dev/hearth:$version" \
    --replicas 2 --gateway-replicas 2 --network-policies --metrics-port 8443 --wait 180
dist/hearth e2e --kubeconfig "$kubeconfig" --timeout 180 --no-skip
