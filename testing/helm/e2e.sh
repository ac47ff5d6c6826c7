#!/usr/bin/env bash
# Hearth installed with real Helm on the test bed, end to end. Needs the cluster up and the images loaded
# (as scripts/e2e.sh does before `hearth install`), dist/hearth, and root. In order:
#   1. helm install --wait (it completes with no model awake: nothing in the chart waits for one);
#   2. helm test (hearth selftest: a throwaway LLMService's gateway must appear, be ready, and go);
#   3. under steady traffic to a warm model, with a second model idle at zero: helm upgrade --reuse-values
#      gateway.replicas 1 -> 2, helm rollback to revision 1, helm rollback to revision 2 (each --wait): every
#      request must succeed, the gateways must run the revision's pods, and no model may wake (nor restart,
#      within one version). Revision 1 is the previous Hearth (testing/helm/previous.sh) when the checkout
#      holds its commit, so the upgrade and the first rollback cross versions;
#   4. hearth e2e --no-skip --pod-security-restricted (now two operators, two gateways, NetworkPolicies and
#      secure metrics, in a namespace enforcing the restricted Pod Security Standard);
#   5. helm test again, then helm uninstall: only the CRDs remain (asserted object by object).
# Prints one line per step with its time, and exits non-zero at the first failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
started=$(date +%s)
run_dir=${HEARTH_CLUSTER_DIR:-/var/tmp/hearth-cluster}
export KUBECONFIG=$run_dir/admin.kubeconfig
kubectl="$(bash testing/cluster/build-components.sh --print-bindir)/kubectl"
helm=$(bash testing/helm/build.sh 4)
version=$(dist/hearth --version | awk '{print $2}')
release=hearth
namespace=hearth-system
apps="helm-e2e"
work=$(mktemp -d)
traffic_pid=""

step_started=$started
step() {
    local now
    now=$(date +%s)
    echo "helm-e2e: [$((now - started))s, +$((now - step_started))s] $*"
    step_started=$now
}
fail() {
    echo "helm-e2e: FAILED: $*" >&2
    exit 1
}
on_exit() {
    local status=$?
    [ -z "$traffic_pid" ] || kill "$traffic_pid" 2>/dev/null || true
    if [ "$status" -ne 0 ]; then
        "$helm" status "$release" -n "$namespace" >&2 || true
        "$kubectl" -n "$namespace" get all >&2 || true
        "$kubectl" -n "$namespace" logs deploy/hearth-operator --tail=100 >&2 || true
    fi
    rm -rf "$work"
    echo "helm-e2e: finished in $(($(date +%s) - started))s (exit $status)"
}
trap on_exit EXIT

# Settings the e2e scenarios need, as chart values (scripts/e2e.sh passes the same as hearth install flags).
values=(--set "image.registry=hearth.dev" --set "image.tag=$version" --set "operator.replicas=2"
    --set "gateway.replicas=1" --set "networkPolicies.enabled=true" --set "metrics.enabled=true")

# Revision 1 is the previous Hearth (testing/helm/previous.sh: its chart and image, from this repository's
# history) when the checkout holds it, else this one; revision 2 is always this one.
first_chart=charts/hearth first_tag=$version first_name="this version ($version)"
if previous=$(bash testing/helm/previous.sh); then
    first_tag="previous-$(basename "$previous" | sed 's/^hearth-previous-//' | cut -c1-12)"
    python3 testing/image/build_oci_image.py --binary "$previous/hearth" --ref "hearth.dev/hearth:$first_tag" \
        --out "$work/previous.tar" >/dev/null
    bash testing/cluster/cluster.sh load-image "$work/previous.tar" >/dev/null
    first_chart=$previous/chart
    first_name="the previous version (commit $(cut -c1-12 testing/helm/previous.ref), image tag $first_tag)"
else
    [ "$?" -eq 3 ] || fail "building the previous version failed"
    step "the previous version is not in this checkout: revision 1 is this version"
fi
"$helm" install "$release" "$first_chart" -n "$namespace" --create-namespace "${values[@]}" \
    --set "image.tag=$first_tag" --wait --timeout 180s
step "helm install --wait: $first_name deployed"

"$helm" test "$release" -n "$namespace" --logs --timeout 180s
step "helm test: passed"

# Two models from the bundled stub runtime: one kept warm (the traffic goes there), one idle at zero.
"$kubectl" create namespace "$apps" >/dev/null
for spec in "steady 1" "idle 0"; do
    read -r name min <<<"$spec"
    set -- "$name" "$min"
    "$kubectl" apply -f - >/dev/null <<EOF
apiVersion: serving.hearth.dev/v1alpha1
kind: LLMService
metadata: {name: $1, namespace: $apps}
spec:
  model: {source: {uri: "hf://hearth/helm-e2e"}}
  runtime: {name: vllm-stub}
  cache: {strategy: None}
  scaling: {min: $2, max: 1, scaleDownStabilization: 5s}
EOF
done
wait_for() { # what, seconds, command...
    local what=$1 within=$2 deadline
    shift 2
    deadline=$(($(date +%s) + within))
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || fail "timed out after ${within}s waiting for $what"
        sleep 1
    done
}
ready_replicas() { # deployment, at least
    [ "$("$kubectl" -n "$apps" get deployment "$1" -o jsonpath='{.status.readyReplicas}' 2>/dev/null || true)" -ge "$2" ] 2>/dev/null
}
replicas_are() { # deployment, exactly (spec)
    [ "$("$kubectl" -n "$apps" get deployment "$1" -o jsonpath='{.spec.replicas}' 2>/dev/null)" = "$2" ]
}
wait_for "the steady model's gateway" 180 ready_replicas steady-gateway 1
wait_for "the steady model's backend" 180 ready_replicas steady 1
wait_for "the idle model's gateway" 180 ready_replicas idle-gateway 1
wait_for "the idle model at zero" 180 replicas_are idle 0
ip=$("$kubectl" -n "$apps" get service steady -o jsonpath='{.spec.clusterIP}')
step "models up: steady warm behind http://$ip, idle at 0 replicas"

# Steady traffic: two clients, one short completion each every 0.1 s at most, until asked to stop.
body='{"model":"steady","messages":[{"role":"user","content":"hi"}],"max_tokens":4}'
client() {
    while [ ! -e "$work/stop" ]; do
        code=$(curl -s -o /dev/null -w '%{http_code}' -m 30 -H 'Content-Type: application/json' \
            -d "$body" "http://$ip/v1/chat/completions" || true)
        echo "$code" >>"$work/codes.$1"
        sleep 0.1
    done
}
backend_pod() { "$kubectl" -n "$apps" get pods -l app.kubernetes.io/name=steady -o jsonpath='{.items[*].metadata.uid}'; }
# under_traffic WHAT GATEWAY_PODS SAME_BACKEND COMMAND...: run a Helm command while the clients send, then
# require every request answered, both gateways at GATEWAY_PODS ready pods, the idle model still at zero and
# the steady model serving; with SAME_BACKEND=same, from the same backend pod (between revisions of one
# version, nothing may restart a model; between versions the backend's pod template may change, and its
# rolling update must fail no request either).
under_traffic() {
    local what=$1 pods=$2 same=$3 total failed steady_backend
    shift 3
    steady_backend=$(backend_pod)
    rm -f "$work"/codes.* "$work/stop"
    (client 1 & client 2 & wait) &
    traffic_pid=$!
    wait_for "the first answers" 30 test -s "$work/codes.1"
    "$@"
    replicas_are idle 0 || fail "$what woke the idle model"
    wait_for "$pods ready pods of the steady gateway" 180 ready_replicas steady-gateway "$pods"
    wait_for "$pods ready pods of the idle gateway" 180 ready_replicas idle-gateway "$pods"
    sleep 5 # traffic on every gateway pod for a moment
    touch "$work/stop"
    wait "$traffic_pid" || true
    traffic_pid=""
    total=$(cat "$work"/codes.* | wc -l)
    failed=$(cat "$work"/codes.* | grep -cv '^200$' || true)
    wait_for "the steady model's backend after $what" 180 ready_replicas steady 1
    if [ "$same" = same ]; then
        [ "$(backend_pod)" = "$steady_backend" ] || fail "$what replaced the steady model's backend pod"
    fi
    step "$what under traffic: $total requests, $failed failed; both gateways at $pods ready pods, the idle model at 0, the steady model serving$([ "$same" = same ] && echo ' from the same pod')"
    [ "$failed" -eq 0 ] || fail "requests failed during $what: $(sort "$work"/codes.* | uniq -c | tr '\n' ' ')"
    [ "$total" -gt 0 ] || fail "no request was sent during $what"
}
same=same
[ "$first_tag" = "$version" ] || same=any
under_traffic "helm upgrade from $first_name to this one (gateway.replicas 1 -> 2)" 2 "$same" \
    "$helm" upgrade "$release" charts/hearth -n "$namespace" --reuse-values \
    --set "image.tag=$version" --set gateway.replicas=2 --wait --timeout 180s
# Back to revision 1 (one gateway replica), then forward again to the upgraded values the scenarios need.
under_traffic "helm rollback to revision 1, $first_name" 1 "$same" \
    "$helm" rollback "$release" 1 -n "$namespace" --wait --timeout 180s
under_traffic "helm rollback to revision 2, this version" 2 "$same" \
    "$helm" rollback "$release" 2 -n "$namespace" --wait --timeout 180s
"$kubectl" delete namespace "$apps" --wait=true --timeout=180s >/dev/null

dist/hearth e2e --kubeconfig "$KUBECONFIG" --timeout 180 --no-skip --pod-security-restricted
step "hearth e2e --no-skip: passed"

"$helm" test "$release" -n "$namespace" --timeout 180s >/dev/null
step "helm test after the upgrade: passed"

"$helm" uninstall "$release" -n "$namespace" --wait --timeout 180s
no_pods() { [ -z "$("$kubectl" -n "$namespace" get pods -o name)" ]; }
wait_for "the operator's pods to go" 120 no_pods
# What may remain: the CRDs (kept), and in the namespace only what Kubernetes and the operator's own
# leader election made there (Helm does not own the namespace it was given).
crds=$("$kubectl" get crd -o name | grep 'serving.hearth.dev' | sed 's|.*/||' | sort | tr '\n' ' ')
# Every CRD the chart ships (its files/crds, kept identical to crds/ by a test), and nothing else.
shipped=$(find charts/hearth/files/crds -name '*.yaml' -printf '%f\n' | sed 's/\.yaml$//' | sort | tr '\n' ' ')
[ "$crds" = "$shipped" ] || fail "expected the chart's CRDs kept ($shipped), found: $crds"
left=$("$kubectl" get clusterroles,clusterrolebindings,inferenceruntimes -l app.kubernetes.io/part-of=hearth -o name)
left+=$("$kubectl" get inferenceruntimes,llmservices,acceleratorpools -A -o name)
# (hearth-prometheus is the test bed's own Prometheus, testing/prometheus, not the chart's.)
left+=$("$kubectl" get clusterroles,clusterrolebindings -o name | grep -E '/hearth-' |
    grep -vE '/hearth-prometheus$' || true)
left+=$("$kubectl" -n "$namespace" get deployments,replicasets,pods,services,secrets,roles,rolebindings,networkpolicies,poddisruptionbudgets -o name)
left+=$("$kubectl" -n "$namespace" get serviceaccounts,configmaps,leases -o name |
    grep -vE '^(serviceaccount/default|configmap/kube-root-ca.crt|lease.coordination.k8s.io/6d7012cb.hearth.dev)$' || true)
[ -z "$left" ] || fail "helm uninstall left: $left"
step "helm uninstall: only the CRDs remain"
# Gone before the next stage of scripts/e2e.sh installs into a namespace of the same name.
"$kubectl" delete namespace "$namespace" --timeout=180s >/dev/null
step "namespace $namespace deleted"
