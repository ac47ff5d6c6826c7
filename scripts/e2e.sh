#!/usr/bin/env bash
# The whole loop on a real single-node cluster on this machine (root; no Docker needed): bring the test bed
# up, build and import the hearth and stub images, then run `hearth e2e --no-skip` in every scaler mode,
# each on its fitting install, and tear the cluster down again:
#   1. builtin, installed with real Helm (testing/helm/e2e.sh: helm install --wait, helm test, helm upgrade
#      1 -> 2 gateways under traffic, the scenarios with 2 operators and 2 gateways, helm uninstall leaving
#      only the CRDs);
#   2. metrics-api (`--scaler-mode auto` with real KEDA served, 2 gateways) and external-push (2 gateways),
#      installed with `hearth install` (testing/keda/e2e.sh);
#   3. throughout, a real NetworkPolicy enforcer (testing/netpol: kube-network-policies), so the backend
#      policy every install renders (--network-policies) is enforced, and N1 probes it;
#   4. with the keda stage: a real Prometheus (testing/prometheus) that scraped everything above evaluates
#      every dashboard panel query and every alert expression (all must parse and return data), and
#      prints one wake broken into phases and the accelerator accounting.
# On failure it prints the operator's and the components' logs.
#
#   scripts/e2e.sh [helm] [keda]     the stages to run (default: both, in this order)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
    echo "e2e: the test bed needs root (containerd, kubelet, iptables)" >&2
    exit 1
fi
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(helm keda)
for stage in "${stages[@]}"; do
    case "$stage" in
        helm | keda) ;;
        *) echo "e2e: unknown stage '$stage' (stages: helm, keda)" >&2; exit 2 ;;
    esac
done
[ -x dist/hearth ] || bash scripts/build-binary.sh
version=$(dist/hearth --version | awk '{print $2}')
cluster=testing/cluster/cluster.sh
run_dir=${HEARTH_CLUSTER_DIR:-/var/tmp/hearth-cluster}
started=$(date +%s)
timings=()

on_exit() {
    status=$?
    if [ "$status" -ne 0 ]; then
        echo "e2e: FAILED; diagnostics follow" >&2
        bash "$cluster" status >&2 || true
        bash "$cluster" kubectl -n hearth-system logs deploy/hearth-operator --tail=200 >&2 || true
        for log in "$run_dir"/logs/*.log "$run_dir"/keda/logs/*.log "$run_dir"/netpol/*.log; do
            [ -f "$log" ] && { echo "==> $log" >&2; tail -n 40 "$log" >&2; }
        done
    fi
    bash testing/prometheus/prometheus.sh down >/dev/null 2>&1 || true
    bash testing/delivery/serve.sh down >/dev/null 2>&1 || true
    bash testing/netpol/netpol.sh down >/dev/null 2>&1 || true
    bash "$cluster" down >/dev/null 2>&1 || true
    printf 'e2e: %s\n' "${timings[@]}"
    echo "e2e: finished in $(( $(date +%s) - started ))s (exit $status)"
    exit "$status"
}
trap on_exit EXIT

timed() {
    local name=$1 since
    shift
    since=$(date +%s)
    "$@"
    timings+=("$name: $(( $(date +%s) - since ))s")
}

# KEDA first, so its (cached) build cannot fail half-way through the run.
for stage in "${stages[@]}"; do
    [ "$stage" != keda ] || timed "KEDA build" bash testing/keda/build.sh >/dev/null
done
# The real engine's build too (cached: a second; from scratch ~12 min, which .ci/run overlaps with the tests).
timed "llama-server build" bash testing/llamacpp/build.sh >/dev/null
timed "delivery servers build" bash testing/delivery/build.sh >/dev/null
timed "NetworkPolicy enforcer build" bash testing/netpol/build.sh >/dev/null
timed "cluster up" bash "$cluster" up
# The registry and S3 store the delivery scenarios (M1-M5) push to, on the cluster bridge address.
HEARTH_E2E_DELIVERY=$(bash testing/delivery/serve.sh up)
export HEARTH_E2E_DELIVERY
# The NetworkPolicy enforcer (issue 29), for every stage: the policies the installs render are enforced, and
# naming it lets N1 run (`hearth e2e --network-policies-enforced`).
HEARTH_E2E_NETWORK_POLICIES=$(bash testing/netpol/netpol.sh up)
export HEARTH_E2E_NETWORK_POLICIES
# shellcheck source=testing/lib/test-images.sh
source testing/lib/test-images.sh
load_test_images "$version"
bash testing/prometheus/prometheus.sh up
# The shared-endpoint scenarios also drive the real openai client, from the project's Python (the frozen
# binary carries neither the SDK nor the script).
HEARTH_E2E_OPENAI_CLIENT=$(printf '%q %q' "$PWD/.venv/bin/python" "$PWD/testing/e2e/openai_client.py")
export HEARTH_E2E_OPENAI_CLIENT
for stage in "${stages[@]}"; do
    case "$stage" in
        # Builtin mode needs KEDA absent (auto would pick metrics-api), so it runs before KEDA comes up.
        # The fault scenarios (X2-X4, builtin) restart or pause the cluster's own processes through this.
        helm) HEARTH_E2E_FAULT_HOOK=$(printf 'bash %q fault' "$PWD/$cluster") \
            timed "builtin via Helm" bash testing/helm/e2e.sh ;;
        keda) timed "metrics-api + external-push" bash testing/keda/e2e.sh --image "hearth.dev/hearth:$version" ;;
    esac
done
# The last install (external-push) is still in place, so every series an alert reads exists now.
case " ${stages[*]} " in
    *" keda "*) timed "Prometheus check" bash testing/prometheus/prometheus.sh check ;;
    *) echo "e2e: Prometheus check skipped (it needs the keda stage's install in place)" ;;
esac
